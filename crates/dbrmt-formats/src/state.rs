//! The associative memory state of every layer: `A` `[D, d]` and `z` `[D]`, f32.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::error::FormatError;

/// `A` and `z` of one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerState {
    pub a: Vec<f32>,
    pub z: Vec<f32>,
}

/// The state of all layers of one request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MemoryState {
    pub d_key: usize,
    pub hidden: usize,
    pub layers: Vec<LayerState>,
}

impl MemoryState {
    /// The state before segment 0: all zeros.
    pub fn zeros(layers: usize, d_key: usize, hidden: usize) -> Self {
        let layer = LayerState {
            a: vec![0.0; d_key * hidden],
            z: vec![0.0; d_key],
        };
        Self {
            d_key,
            hidden,
            layers: vec![layer; layers],
        }
    }

    /// Whether this state fits a model of `layers` layers, feature size `d_key` and hidden size `hidden`; a clear
    /// error if not (a state of another model shape must not reach the kernels or the reference ops).
    pub fn check_shape(&self, layers: usize, d_key: usize, hidden: usize) -> Result<(), FormatError> {
        let shape = (self.layers.len(), self.d_key, self.hidden);
        if shape == (layers, d_key, hidden) {
            return Ok(());
        }
        Err(FormatError::StateShape(format!(
            "memory state of {} layers × D {} × d {} does not fit this model ({layers} × {d_key} × {hidden})",
            shape.0, shape.1, shape.2
        )))
    }
}

/// What continues a request elsewhere: the memory state after `segments` closed segments, and the text ids of
/// the open (not yet closed) segment.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedState {
    pub state: MemoryState,
    pub segments: usize,
    pub open_ids: Vec<u32>,
}

const KEY_MODEL: &str = "dbrmt.model";
const KEY_SEGMENTS: &str = "dbrmt.segments";
const KEY_OPEN: &str = "dbrmt.open_ids";
const KEY_CHECKSUM: &str = "dbrmt.checksum";

impl SavedState {
    /// A new request's state.
    pub fn fresh(state: MemoryState) -> Self {
        Self {
            state,
            segments: 0,
            open_ids: Vec::new(),
        }
    }

    /// Writes `layers.{i}.A` (f32 `[D, d]`) and `layers.{i}.z` (f32 `[D]`), with the model's identity
    /// ([`crate::identity::model_identity`]), the segments consumed, the open ids and a checksum in the metadata.
    /// The file is written beside `path` and renamed over it, so a crash never leaves half a state.
    pub fn save(&self, path: &Path, model_identity: &str) -> Result<(), FormatError> {
        let io = |e: std::io::Error| FormatError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        let bytes = self.to_bytes(model_identity)?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".tmp{}", std::process::id()));
        let tmp = std::path::PathBuf::from(tmp);
        std::fs::write(&tmp, &bytes)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                io(e)
            })
    }

    /// The bytes of the state file [`SavedState::save`] writes.
    pub fn to_bytes(&self, model_identity: &str) -> Result<Vec<u8>, FormatError> {
        let open: Vec<String> = self.open_ids.iter().map(u32::to_string).collect();
        let mut meta = HashMap::from([
            (KEY_MODEL.to_string(), model_identity.to_string()),
            (KEY_SEGMENTS.to_string(), self.segments.to_string()),
            (KEY_OPEN.to_string(), open.join(",")),
        ]);
        meta.insert(KEY_CHECKSUM.to_string(), checksum(&meta, &self.state));
        safetensors::serialize(self.state.views()?, Some(meta))
            .map_err(|e| FormatError::StateShape(format!("serialising the state: {e}")))
    }

    /// Reads a state written by [`SavedState::save`] for the model `model_identity` of `layers` layers, `D` and
    /// `d`; a state of another model, or of other shapes, is refused.
    pub fn load(
        path: &Path,
        model_identity: &str,
        layers: usize,
        d_key: usize,
        hidden: usize,
    ) -> Result<Self, FormatError> {
        let bytes = std::fs::read(path).map_err(|e| FormatError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        Self::from_bytes(&bytes, path, model_identity, layers, d_key, hidden)
    }

    /// As [`SavedState::load`], from the bytes of a state file (`origin` names them in errors). A file that has a
    /// checksum (every file this version writes) must match it, so a corrupted state is refused.
    pub fn from_bytes(
        bytes: &[u8],
        origin: &Path,
        model_identity: &str,
        layers: usize,
        d_key: usize,
        hidden: usize,
    ) -> Result<Self, FormatError> {
        let bad = |msg: String| FormatError::Checkpoint {
            path: origin.to_path_buf(),
            msg,
        };
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("not a state file: {e}")))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let get = |k: &str| {
            meta.get(k)
                .ok_or_else(|| bad(format!("not a dbrmt state file (no `{k}` in its metadata)")))
        };
        let saved_for = get(KEY_MODEL)?;
        if saved_for != model_identity {
            return Err(bad(format!(
                "this state was saved from another model ({saved_for}); the loaded model is {model_identity}"
            )));
        }
        let segments = get(KEY_SEGMENTS)?
            .parse()
            .map_err(|_| bad(format!("bad `{KEY_SEGMENTS}`")))?;
        let open = get(KEY_OPEN)?;
        let open_ids = if open.is_empty() {
            Vec::new()
        } else {
            open.split(',')
                .map(|x| x.parse::<u32>())
                .collect::<Result<_, _>>()
                .map_err(|_| bad(format!("bad `{KEY_OPEN}`")))?
        };
        let tensors = SafeTensors::deserialize(bytes).map_err(|e| bad(format!("not a state file: {e}")))?;
        let read = |name: String, shape: Vec<usize>| -> Result<Vec<f32>, FormatError> {
            let t = tensors
                .tensor(&name)
                .map_err(|_| bad(format!("missing tensor `{name}`")))?;
            if t.dtype() != Dtype::F32 || t.shape() != shape.as_slice() {
                return Err(bad(format!(
                    "`{name}` is {:?} {:?}, expected F32 {shape:?}",
                    t.dtype(),
                    t.shape()
                )));
            }
            Ok(t.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
        let layers = (0..layers)
            .map(|i| {
                Ok(LayerState {
                    a: read(format!("layers.{i}.A"), vec![d_key, hidden])?,
                    z: read(format!("layers.{i}.z"), vec![d_key])?,
                })
            })
            .collect::<Result<Vec<_>, FormatError>>()?;
        let state = MemoryState { d_key, hidden, layers };
        if let Some(sum) = meta.get(KEY_CHECKSUM) {
            let mut fields = meta.clone();
            fields.remove(KEY_CHECKSUM);
            if *sum != checksum(&fields, &state) {
                return Err(bad(
                    "the state is corrupted (its checksum does not match its contents)".into()
                ));
            }
        }
        Ok(Self {
            state,
            segments,
            open_ids,
        })
    }

    /// Whether the state file `bytes` carries a checksum (files written before checksums were added do not).
    pub fn has_checksum(bytes: &[u8]) -> bool {
        SafeTensors::read_metadata(bytes)
            .ok()
            .and_then(|(_, h)| h.metadata().as_ref().map(|m| m.contains_key(KEY_CHECKSUM)))
            .unwrap_or(false)
    }

    /// Host bytes the state holds (A, z and the open ids).
    pub fn bytes(&self) -> usize {
        let floats: usize = self.state.layers.iter().map(|l| l.a.len() + l.z.len()).sum();
        4 * (floats + self.open_ids.len())
    }
}

/// `fnv1a64:<16 hex digits>` over the metadata fields (sorted by key) and every tensor's bits in layer order:
/// catches a flipped or truncated byte anywhere in a state file. Words of 8 bytes keep it fast (~50 MB: tens of ms).
fn checksum(meta: &HashMap<String, String>, state: &MemoryState) -> String {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut word = |w: u64| {
        h ^= w;
        h = h.wrapping_mul(PRIME);
    };
    let mut keys: Vec<&String> = meta.keys().collect();
    keys.sort();
    for k in keys {
        for b in k.bytes().chain([0]).chain(meta[k].bytes()).chain([0]) {
            word(b as u64);
        }
    }
    for l in &state.layers {
        for pair in l.a.chunks(2).chain(l.z.chunks(2)) {
            let lo = pair[0].to_bits() as u64;
            let hi = pair.get(1).map_or(0, |x| x.to_bits() as u64);
            word(lo | hi << 32);
        }
    }
    format!("fnv1a64:{h:016x}")
}

impl MemoryState {
    /// Writes `layers.{i}.A` (f32 `[D, d]`) and `layers.{i}.z` (f32 `[D]`) to a safetensors file.
    pub fn save_safetensors(&self, path: &Path) -> Result<(), FormatError> {
        self.write(path, None)
    }

    fn write(&self, path: &Path, meta: Option<HashMap<String, String>>) -> Result<(), FormatError> {
        safetensors::serialize_to_file(self.views()?, meta, path).map_err(|e| FormatError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })
    }

    /// `layers.{i}.A` and `layers.{i}.z` as safetensors views of the host buffers.
    fn views(&self) -> Result<Vec<(String, TensorView<'_>)>, FormatError> {
        let mut views = Vec::with_capacity(2 * self.layers.len());
        for (i, l) in self.layers.iter().enumerate() {
            let a = TensorView::new(Dtype::F32, vec![self.d_key, self.hidden], bytemuck::cast_slice(&l.a));
            let z = TensorView::new(Dtype::F32, vec![self.d_key], bytemuck::cast_slice(&l.z));
            let (Ok(a), Ok(z)) = (a, z) else {
                return Err(FormatError::StateShape(format!(
                    "layer {i}'s state does not have the shape [{}, {}]",
                    self.d_key, self.hidden
                )));
            };
            views.push((format!("layers.{i}.A"), a));
            views.push((format!("layers.{i}.z"), z));
        }
        Ok(views)
    }
}
