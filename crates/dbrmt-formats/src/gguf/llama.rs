//! A llama.cpp LLaMA GGUF as a model: the config from the `llama.*` metadata and the llama.cpp names of the
//! backbone tensors. [`crate::source::ModelSource`] reads them (dequantised, `attn_q`/`attn_k` rows put back in
//! Hugging Face order) and initialises the ARMT memory — which no GGUF file has — from `LoadOptions::armt_init`.

use std::path::PathBuf;

use super::metadata::MetaValue;
use super::reader::GgufFile;
use crate::config::LlamaConfig;
use crate::error::FormatError;
use crate::names::{LayerTensor, TensorId};

/// The only `general.architecture` this loader maps.
pub const ARCHITECTURE: &str = "llama";

/// The tensor that carries llama3-style RoPE frequency factors in a GGUF file.
const ROPE_FREQS: &str = "rope_freqs.weight";

/// The llama.cpp name of a model tensor; `None` for the ARMT tensors, which GGUF files do not have.
pub fn tensor_name(id: TensorId) -> Option<String> {
    let layer_key = |t: LayerTensor| -> Option<&'static str> {
        Some(match t {
            LayerTensor::InputNorm => "attn_norm",
            LayerTensor::Q => "attn_q",
            LayerTensor::K => "attn_k",
            LayerTensor::V => "attn_v",
            LayerTensor::O => "attn_output",
            LayerTensor::PostNorm => "ffn_norm",
            LayerTensor::Gate => "ffn_gate",
            LayerTensor::Up => "ffn_up",
            LayerTensor::Down => "ffn_down",
            _ => return None,
        })
    };
    match id {
        TensorId::Embed => Some("token_embd.weight".into()),
        TensorId::Norm => Some("output_norm.weight".into()),
        TensorId::LmHead => Some("output.weight".into()),
        TensorId::Layer(i, t) => layer_key(t).map(|k| format!("blk.{i}.{k}.weight")),
        TensorId::Memory => None,
    }
}

/// The backbone config from the metadata of a `general.architecture = "llama"` file. Tied embeddings are
/// inferred from the absence of `output.weight`, as llama.cpp does.
pub fn llama_config(file: &GgufFile) -> Result<LlamaConfig, FormatError> {
    let meta = Meta { file };
    let arch = meta
        .get("general.architecture")
        .ok_or_else(|| meta.error("missing `general.architecture`".into()))?;
    match arch.as_str() {
        Some(ARCHITECTURE) => {}
        Some(other) => {
            return Err(meta.error(format!(
                "architecture `{other}` is not supported (only `{ARCHITECTURE}`)"
            )))
        }
        None => return Err(meta.error(format!("`general.architecture` must be a string, found {arch}"))),
    }
    if let Some(experts) = meta.usize("llama.expert_count")? {
        if experts > 0 {
            return Err(meta.error(format!(
                "mixture of experts (llama.expert_count = {experts}) is not supported"
            )));
        }
    }
    // each size against its limit as it is read, before anything is computed from it
    use crate::limits::{check_size, GGUF, MAX_HEADS, MAX_HIDDEN};
    let hidden_size = meta.size("llama.embedding_length")?;
    check_size(GGUF.hidden_size, hidden_size, MAX_HIDDEN, "Llama-3.1-405B has 16384").map_err(|m| meta.error(m))?;
    let num_heads = meta.size("llama.attention.head_count")?;
    check_size(GGUF.num_heads, num_heads, MAX_HEADS, "Llama-3.1-405B has 128").map_err(|m| meta.error(m))?;
    let num_kv_heads = meta.usize("llama.attention.head_count_kv")?.unwrap_or(num_heads);
    if num_kv_heads > 0 {
        check_size(GGUF.num_kv_heads, num_kv_heads, MAX_HEADS, "Llama-3.1-405B has 8").map_err(|m| meta.error(m))?;
    }
    if num_kv_heads == 0 || !num_heads.is_multiple_of(num_kv_heads) {
        return Err(meta.error(format!(
            "llama.attention.head_count ({num_heads}) must be a multiple of llama.attention.head_count_kv \
             ({num_kv_heads})"
        )));
    }
    let head_dim = head_dim(&meta, hidden_size, num_heads)?;
    let vocab_size = match meta.usize("llama.vocab_size")? {
        Some(v) => v,
        None => meta
            .get("tokenizer.ggml.tokens")
            .and_then(MetaValue::as_array)
            .map(<[MetaValue]>::len)
            .ok_or_else(|| meta.error("neither `llama.vocab_size` nor `tokenizer.ggml.tokens` is present".into()))?,
    };
    if vocab_size == 0 {
        return Err(meta.error("the vocabulary is empty".into()));
    }
    let config = LlamaConfig {
        vocab_size,
        hidden_size,
        intermediate_size: meta.size("llama.feed_forward_length")?,
        num_layers: meta.size("llama.block_count")?,
        num_heads,
        num_kv_heads,
        head_dim,
        rms_norm_eps: meta.positive("llama.attention.layer_norm_rms_epsilon")?.unwrap_or(1e-5) as f32,
        rope_theta: meta.positive("llama.rope.freq_base")?.unwrap_or(10000.0),
        rope_scaling: rope_scaling(&meta)?,
        tie_word_embeddings: file.tensor("output.weight").is_none(),
    };
    crate::limits::check_llama(&config, &crate::limits::GGUF).map_err(|msg| meta.error(msg))?;
    check_block_count(file, config.num_layers).map_err(|msg| meta.error(msg))?;
    Ok(config)
}

/// `llama.block_count` must be the number of `blk.N` layers the file holds: fewer would drop layers without a
/// word, more would be missing tensors.
fn check_block_count(file: &GgufFile, block_count: usize) -> Result<(), String> {
    let mut layers: Option<u64> = None;
    for t in file.tensors() {
        let Some(rest) = t.name.strip_prefix("blk.") else {
            continue;
        };
        let index = rest.split('.').next().and_then(|n| n.parse::<u64>().ok());
        match index {
            Some(i) => layers = Some(layers.map_or(i, |m| m.max(i))),
            None => return Err(format!("tensor `{}` is named blk.* but has no layer number", t.name)),
        }
    }
    let present = layers.map_or(0, |m| m.saturating_add(1));
    if present != block_count as u64 {
        return Err(format!(
            "`llama.block_count` = {block_count} but the file holds tensors of {present} layers (blk.N): the \
             block count must equal the layers present"
        ));
    }
    Ok(())
}

/// `llama.attention.key_length` or hidden/heads; RoPE must rotate all of it and values must have its width.
fn head_dim(meta: &Meta, hidden_size: usize, num_heads: usize) -> Result<usize, FormatError> {
    let head_dim = match meta.usize("llama.attention.key_length")? {
        Some(hd) => hd,
        None if hidden_size.is_multiple_of(num_heads) => hidden_size / num_heads,
        None => {
            return Err(meta.error(format!(
                "no `llama.attention.key_length` and llama.embedding_length ({hidden_size}) is not a multiple of \
                 llama.attention.head_count ({num_heads})"
            )))
        }
    };
    if head_dim == 0 || !head_dim.is_multiple_of(2) {
        return Err(meta.error(format!(
            "the head dimension must be even and at least 2 (RoPE rotates pairs), found {head_dim}"
        )));
    }
    crate::limits::check_size(
        crate::limits::GGUF.head_dim,
        head_dim,
        crate::limits::MAX_HEAD_DIM,
        "LLaMA uses 64 or 128",
    )
    .map_err(|m| meta.error(m))?;
    for key in ["llama.attention.value_length", "llama.rope.dimension_count"] {
        if let Some(n) = meta.usize(key)? {
            if n != head_dim {
                return Err(meta.error(format!(
                    "`{key}` = {n} differs from the head dimension {head_dim} (not supported)"
                )));
            }
        }
    }
    Ok(head_dim)
}

/// Absent or `none` → no scaling. llama3 scaling is stored as the `rope_freqs.weight` tensor, which the model
/// cannot take yet; other kinds (linear, yarn, …) are refused rather than run with the wrong positions.
fn rope_scaling(meta: &Meta) -> Result<Option<crate::config::Llama3Scaling>, FormatError> {
    if meta.file.tensor(ROPE_FREQS).is_some() {
        return Err(meta.error(format!(
            "llama3 RoPE scaling (tensor `{ROPE_FREQS}`) is not supported yet"
        )));
    }
    match meta.get("llama.rope.scaling.type") {
        None => Ok(None),
        Some(v) => match v.as_str() {
            Some("none") => Ok(None),
            Some(kind) => Err(meta.error(format!(
                "RoPE scaling type `{kind}` (llama.rope.scaling.type) is not supported"
            ))),
            None => Err(meta.error(format!("`llama.rope.scaling.type` must be a string, found {v}"))),
        },
    }
}

/// LLaMA projections have no bias; a file with attention biases is another model, not one to run without them.
pub(crate) fn refuse_biases(file: &GgufFile) -> Result<(), FormatError> {
    let bias = file
        .tensors()
        .iter()
        .find(|t| t.name.starts_with("blk.") && t.name.contains(".attn_") && t.name.ends_with(".bias"));
    match bias {
        None => Ok(()),
        Some(t) => Err(FormatError::Config {
            path: file.path().to_path_buf(),
            msg: format!(
                "tensor `{}`: attention biases are not supported (LLaMA has none)",
                t.name
            ),
        }),
    }
}

/// Typed, required-or-optional access to the metadata; errors name the file and the key.
struct Meta<'a> {
    file: &'a GgufFile,
}

impl Meta<'_> {
    fn get(&self, key: &str) -> Option<&MetaValue> {
        self.file.meta(key)
    }

    fn error(&self, msg: String) -> FormatError {
        FormatError::Config {
            path: self.path(),
            msg: format!("GGUF metadata: {msg}"),
        }
    }

    fn path(&self) -> PathBuf {
        self.file.path().to_path_buf()
    }

    fn usize(&self, key: &str) -> Result<Option<usize>, FormatError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        v.as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| self.error(format!("`{key}` must be a non-negative integer, found {v}")))
    }

    /// A required size of at least 1.
    fn size(&self, key: &str) -> Result<usize, FormatError> {
        match self.usize(key)? {
            None => Err(self.error(format!("missing `{key}`"))),
            Some(0) => Err(self.error(format!("`{key}` must be at least 1"))),
            Some(n) => Ok(n),
        }
    }

    /// A number that must be finite and positive when present.
    fn positive(&self, key: &str) -> Result<Option<f64>, FormatError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        match v.as_f64() {
            Some(x) if x.is_finite() && x > 0.0 => Ok(Some(x)),
            _ => Err(self.error(format!("`{key}` must be a positive number, found {v}"))),
        }
    }
}
