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
    /// ([`crate::identity::model_identity`]), the segments consumed and the open ids in the metadata.
    pub fn save(&self, path: &Path, model_identity: &str) -> Result<(), FormatError> {
        let open: Vec<String> = self.open_ids.iter().map(u32::to_string).collect();
        let meta = HashMap::from([
            (KEY_MODEL.to_string(), model_identity.to_string()),
            (KEY_SEGMENTS.to_string(), self.segments.to_string()),
            (KEY_OPEN.to_string(), open.join(",")),
        ]);
        self.state.write(path, Some(meta))
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
        let bad = |msg: String| FormatError::Checkpoint {
            path: path.to_path_buf(),
            msg,
        };
        let bytes = std::fs::read(path).map_err(|e| FormatError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(format!("not a state file: {e}")))?;
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
        let tensors = SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("not a state file: {e}")))?;
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
        Ok(Self {
            state: MemoryState { d_key, hidden, layers },
            segments,
            open_ids,
        })
    }
}

impl MemoryState {
    /// Writes `layers.{i}.A` (f32 `[D, d]`) and `layers.{i}.z` (f32 `[D]`) to a safetensors file.
    pub fn save_safetensors(&self, path: &Path) -> Result<(), FormatError> {
        self.write(path, None)
    }

    fn write(&self, path: &Path, meta: Option<HashMap<String, String>>) -> Result<(), FormatError> {
        let io = |e: std::io::Error| FormatError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        let mut views = Vec::with_capacity(2 * self.layers.len());
        for (i, l) in self.layers.iter().enumerate() {
            let a = TensorView::new(Dtype::F32, vec![self.d_key, self.hidden], bytemuck::cast_slice(&l.a));
            let z = TensorView::new(Dtype::F32, vec![self.d_key], bytemuck::cast_slice(&l.z));
            let (a, z) = match (a, z) {
                (Ok(a), Ok(z)) => (a, z),
                _ => return Err(io(std::io::Error::other("state tensor has an inconsistent size"))),
            };
            views.push((format!("layers.{i}.A"), a));
            views.push((format!("layers.{i}.z"), z));
        }
        safetensors::serialize_to_file(views, meta, path).map_err(|e| io(std::io::Error::other(e.to_string())))
    }
}
