//! A trained ARMT memory as a file of its own (`--armt FILE`): the memory parameters of every layer and the
//! memory-token embeddings, applied on top of a GGUF backbone that stays as it is.
//!
//! The file is safetensors. Tensors carry the names the original ARMT code saves:
//! `memory_cell.memory` `[M, d]` and, per layer i, `memory_cell.model.model.layers.{i}.W_mq.weight` `[d_mem, d]`,
//! `….W_mk.weight` `[d_mem, d]`, `….W_mv.weight` `[d, d]`, `….W_mb.weight` `[1, d]`, `….W_mb.bias` `[1]` — or
//! the `memory_cell.layers.{i}.…` alias that the original's `state_dict` also carries (both may be present; they
//! must then be equal). F32, F16 or BF16. The header's `__metadata__` says what the memory was trained with and on:
//!
//! | key | value |
//! |---|---|
//! | `format` | `dbrmt-armt-1` |
//! | `d_mem`, `nu`, `num_mem_tokens`, `segment_size` | integers (d_mem, ν, M, T: T text tokens per segment) |
//! | `correction` | `true` or `false` (the γ correction of the z update) |
//! | `base_sha256` | the sha256 of the GGUF file the memory was trained on (64 lowercase hex digits) |
//!
//! Other metadata keys are kept for people (training settings, results) and ignored. Nothing else may be in the
//! file: a backbone tensor would be silently unused, so it is refused.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::checkpoint::{convert, SafetensorsFile};
use crate::config::ArmtParams;
use crate::names::{LayerTensor, TensorId};

/// The value of the `format` metadata key this loader reads.
pub const FORMAT: &str = "dbrmt-armt-1";

/// Why an ARMT file cannot be applied to a model.
#[derive(Debug, thiserror::Error)]
pub enum ArmtFileError {
    /// The file is unreadable or not a valid safetensors file.
    #[error("{path}: {msg}")]
    Unreadable { path: PathBuf, msg: String },
    /// A metadata key the loader needs is absent.
    #[error("{path}: the metadata has no `{key}` (an ARMT file names d_mem, nu, num_mem_tokens, segment_size, correction and base_sha256)")]
    MissingMetadata { path: PathBuf, key: &'static str },
    /// A metadata value is not what its key calls for.
    #[error("{path}: metadata `{key}` = {value:?}: {msg}")]
    BadMetadata {
        path: PathBuf,
        key: &'static str,
        value: String,
        msg: String,
    },
    /// The memory was trained on another backbone file.
    #[error("{path}: trained on the GGUF with sha256 {expected}, but {model} has sha256 {found}")]
    BaseMismatch {
        path: PathBuf,
        model: PathBuf,
        expected: String,
        found: String,
    },
    /// A tensor the model needs is in neither name layout.
    #[error("{path}: missing tensor `{name}` (or its alias `{alias}`)")]
    MissingTensor { path: PathBuf, name: String, alias: String },
    /// A tensor's shape does not fit the backbone and the metadata.
    #[error(
        "{path}: tensor `{name}` has shape {found:?}, expected {expected:?} (from the model and the file's metadata)"
    )]
    Shape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// A tensor is stored in a dtype that is not a float the loader converts.
    #[error("{path}: tensor `{name}` has dtype {dtype}; only F32, F16 and BF16 are supported")]
    Dtype { path: PathBuf, name: String, dtype: String },
    /// Both aliases of a tensor are present and differ.
    #[error("{path}: `{name}` and its alias `{alias}` differ")]
    AliasesDiffer { path: PathBuf, name: String, alias: String },
    /// A tensor that is not a memory parameter of this model (a backbone tensor, a layer beyond the model's, …).
    #[error("{path}: tensor `{name}` is not a memory parameter of this {layers}-layer model (an ARMT file holds only `memory_cell.memory` and the layers' W_mq, W_mk, W_mv, W_mb)")]
    Unexpected { path: PathBuf, name: String, layers: usize },
    /// A value is a NaN or an infinity.
    #[error("{path}: tensor `{name}` holds {value} at element {index}; the weights must be finite")]
    NonFinite {
        path: PathBuf,
        name: String,
        index: usize,
        value: f32,
    },
}

/// The memory parameters of one layer, f32.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmtFileLayer {
    pub mem_q: Vec<f32>,
    pub mem_k: Vec<f32>,
    pub mem_v: Vec<f32>,
    pub mem_beta: Vec<f32>,
    pub mem_beta_bias: f32,
}

/// A loaded ARMT file: the parameters its metadata gives, and every memory tensor as f32.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmtFile {
    pub path: PathBuf,
    pub params: ArmtParams,
    /// The sha256 of the backbone file it was trained on, lowercase hex.
    pub base_sha256: String,
    pub layers: Vec<ArmtFileLayer>,
    /// `[M, d]`.
    pub memory: Vec<f32>,
}

/// Hex sha256 of `bytes`, lowercase.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The metadata keys an ARMT file's header holds, as [`ArmtFile::metadata`] writes them.
pub fn metadata(params: &ArmtParams, base_sha256: &str) -> BTreeMap<String, String> {
    [
        ("format", FORMAT.to_string()),
        ("d_mem", params.d_mem.to_string()),
        ("nu", params.nu.to_string()),
        ("num_mem_tokens", params.num_mem_tokens.to_string()),
        ("segment_size", params.segment_size.to_string()),
        ("correction", params.correction.to_string()),
        ("base_sha256", base_sha256.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The canonical name (the original's first alias) of memory tensor `id`, and its `memory_cell.layers.` alias.
pub fn tensor_names(id: TensorId) -> (String, String) {
    match id {
        TensorId::Layer(i, t) => (
            format!("memory_cell.model.model.layers.{i}.{}", t.key()),
            format!("memory_cell.layers.{i}.{}", t.key()),
        ),
        _ => ("memory_cell.memory".to_string(), "memory_cell.memory".to_string()),
    }
}

impl ArmtFile {
    /// Reads the ARMT file at `path` for a backbone of `layers` layers of width `hidden` whose file has sha256
    /// `model_sha256` (`model` names it in messages). Checks, in this order: the metadata, the backbone's
    /// sha256, that every tensor is a memory tensor of this model, then each tensor's presence, shape, dtype and
    /// values.
    pub fn open(
        path: &Path,
        layers: usize,
        hidden: usize,
        model: &Path,
        model_sha256: &str,
    ) -> Result<Self, ArmtFileError> {
        let p = || path.to_path_buf();
        let file = SafetensorsFile::open(path).map_err(|e| ArmtFileError::Unreadable {
            path: p(),
            msg: match e {
                crate::FormatError::Checkpoint { msg, .. } => msg,
                other => other.to_string(),
            },
        })?;
        let meta = file.metadata();
        let get = |key: &'static str| -> Result<&String, ArmtFileError> {
            meta.get(key).ok_or(ArmtFileError::MissingMetadata { path: p(), key })
        };
        let bad = |key: &'static str, value: &str, msg: &str| ArmtFileError::BadMetadata {
            path: p(),
            key,
            value: crate::error::printable(value),
            msg: msg.to_string(),
        };
        let format = get("format")?;
        if format != FORMAT {
            return Err(bad("format", format, &format!("this loader reads `{FORMAT}`")));
        }
        let int = |key: &'static str| -> Result<usize, ArmtFileError> {
            let v = get(key)?;
            v.parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| bad(key, v, "must be a positive integer"))
        };
        let params = ArmtParams {
            d_mem: int("d_mem")?,
            nu: int("nu")?,
            num_mem_tokens: int("num_mem_tokens")?,
            segment_size: int("segment_size")?,
            correction: match get("correction")?.as_str() {
                "true" => true,
                "false" => false,
                v => return Err(bad("correction", v, "must be `true` or `false`")),
            },
        };
        let base = get("base_sha256")?;
        if base.len() != 64 || !base.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(bad("base_sha256", base, "must be 64 lowercase hex digits"));
        }
        if base != model_sha256 {
            return Err(ArmtFileError::BaseMismatch {
                path: p(),
                model: model.to_path_buf(),
                expected: base.clone(),
                found: model_sha256.to_string(),
            });
        }

        // every tensor must be one the model reads
        let ids: Vec<TensorId> = TensorId::armt_tensors(layers).collect();
        let known: BTreeMap<String, TensorId> = ids
            .iter()
            .flat_map(|&id| {
                let (a, b) = tensor_names(id);
                [(a, id), (b, id)]
            })
            .collect();
        if let Some(name) = file.tensors().keys().find(|n| !known.contains_key(*n)) {
            return Err(ArmtFileError::Unexpected {
                path: p(),
                name: crate::error::printable(name),
                layers,
            });
        }

        let shape = |id: TensorId| -> Vec<usize> {
            match id {
                TensorId::Memory => vec![params.num_mem_tokens, hidden],
                TensorId::Layer(_, LayerTensor::MemQ | LayerTensor::MemK) => vec![params.d_mem, hidden],
                TensorId::Layer(_, LayerTensor::MemV) => vec![hidden, hidden],
                TensorId::Layer(_, LayerTensor::MemBeta) => vec![1, hidden],
                _ => vec![1],
            }
        };
        let read = |id: TensorId| -> Result<Vec<f32>, ArmtFileError> {
            let (name, alias) = tensor_names(id);
            let present: Vec<&String> = [&name, &alias]
                .into_iter()
                .filter(|n| file.tensors().contains_key(*n))
                .collect();
            let Some(&first) = present.first() else {
                return Err(ArmtFileError::MissingTensor { path: p(), name, alias });
            };
            let entry = &file.tensors()[first];
            let expected = shape(id);
            if entry.shape != expected {
                return Err(ArmtFileError::Shape {
                    path: p(),
                    name: first.clone(),
                    expected,
                    found: entry.shape.clone(),
                });
            }
            let bytes = file.bytes(entry).unwrap_or_default();
            let values = convert::to_f32(entry.dtype, bytes).ok_or_else(|| ArmtFileError::Dtype {
                path: p(),
                name: first.clone(),
                dtype: entry.dtype.to_string(),
            })?;
            if let Some(&other) = present.get(1).filter(|o| **o != first) {
                let e2 = &file.tensors()[other];
                if e2.dtype != entry.dtype || e2.shape != entry.shape || file.bytes(e2) != Some(bytes) {
                    return Err(ArmtFileError::AliasesDiffer {
                        path: p(),
                        name: first.clone(),
                        alias: other.clone(),
                    });
                }
            }
            if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(ArmtFileError::NonFinite {
                    path: p(),
                    name: first.clone(),
                    index,
                    value,
                });
            }
            Ok(values)
        };
        let mut out_layers = Vec::with_capacity(layers);
        for i in 0..layers {
            let l = |t| read(TensorId::Layer(i, t));
            out_layers.push(ArmtFileLayer {
                mem_q: l(LayerTensor::MemQ)?,
                mem_k: l(LayerTensor::MemK)?,
                mem_v: l(LayerTensor::MemV)?,
                mem_beta: l(LayerTensor::MemBeta)?,
                mem_beta_bias: l(LayerTensor::MemBetaBias)?[0],
            });
        }
        let memory = read(TensorId::Memory)?;
        Ok(Self {
            path: p(),
            params,
            base_sha256: base.clone(),
            layers: out_layers,
            memory,
        })
    }

    /// The values of memory tensor `id`; `None` for a tensor that is not a memory tensor of this file.
    pub fn values(&self, id: TensorId) -> Option<&[f32]> {
        match id {
            TensorId::Memory => Some(&self.memory),
            TensorId::Layer(i, t) => {
                let l = self.layers.get(i)?;
                match t {
                    LayerTensor::MemQ => Some(&l.mem_q),
                    LayerTensor::MemK => Some(&l.mem_k),
                    LayerTensor::MemV => Some(&l.mem_v),
                    LayerTensor::MemBeta => Some(&l.mem_beta),
                    LayerTensor::MemBetaBias => Some(std::slice::from_ref(&l.mem_beta_bias)),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_strings() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn names_are_the_originals() {
        let (a, b) = tensor_names(TensorId::Layer(7, LayerTensor::MemBetaBias));
        assert_eq!(a, "memory_cell.model.model.layers.7.W_mb.bias");
        assert_eq!(b, "memory_cell.layers.7.W_mb.bias");
        assert_eq!(tensor_names(TensorId::Memory).0, "memory_cell.memory");
    }
}
