//! The associative memory state of every layer: `A` `[D, d]` and `z` `[D]`, f32.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

use crate::checkpoint::SafetensorsFile;
use crate::error::{printable, FormatError};
use crate::identity::Fnv;
use crate::identity_parts::ModelParts;

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
/// The readable parts of the model's identity ([`ModelParts`]), to say what differs when the identity does.
const KEY_PARTS: &str = "dbrmt.model_parts";
/// FNV-1a over the other metadata values and every tensor's bytes ([`checksum`]).
const KEY_CHECKSUM: &str = "dbrmt.checksum";

/// What a state file must fit: the model it was saved from and its shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateExpect<'a> {
    /// The model's identity ([`crate::identity`]).
    pub identity: &'a str,
    pub layers: usize,
    pub d_key: usize,
    pub hidden: usize,
    /// Open ids must lie below this (`None`: not checked).
    pub vocab: Option<usize>,
    /// The open segment holds at most this many ids (`None`: not checked).
    pub segment_size: Option<usize>,
    /// The model's readable parts, compared with the state's when the identities differ (`None`: the message
    /// shows the two identities).
    pub parts: Option<ModelParts>,
}

impl<'a> StateExpect<'a> {
    /// Everything a state of the model `cfg` with identity `identity` must fit.
    pub fn for_model(identity: &'a str, cfg: &crate::ModelConfig) -> Self {
        Self {
            identity,
            layers: cfg.llama.num_layers,
            d_key: cfg.d_key(),
            hidden: cfg.llama.hidden_size,
            vocab: Some(cfg.llama.vocab_size),
            segment_size: Some(cfg.armt.segment_size),
            parts: None,
        }
    }

    /// Also names what differs from a state of another model, given where this model's memory came from.
    pub fn with_parts(mut self, parts: ModelParts) -> Self {
        self.parts = Some(parts);
        self
    }
}

/// A state read by [`SavedState::load_checked`], with a warning when it had no checksum to verify.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedState {
    pub saved: SavedState,
    pub warning: Option<String>,
}

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
    /// ([`crate::identity::model_identity`]), the segments consumed, the open ids and a checksum of all of it in
    /// the metadata. The file is replaced atomically: an error leaves any old file as it was.
    pub fn save(&self, path: &Path, model_identity: &str) -> Result<(), FormatError> {
        self.state.write(path, Some(self.metadata(model_identity, None)))
    }

    /// As [`SavedState::save`], also recording the model's readable parts, so that loading the state into another
    /// model can say what differs.
    pub fn save_with_parts(&self, path: &Path, model_identity: &str, parts: &ModelParts) -> Result<(), FormatError> {
        self.state.write(path, Some(self.metadata(model_identity, Some(parts))))
    }

    /// The bytes of the file [`SavedState::save`] writes (what a server exports; [`SavedState::from_bytes`] reads
    /// them back).
    pub fn to_bytes(&self, model_identity: &str) -> Result<Vec<u8>, FormatError> {
        self.state
            .serialize(Some(self.metadata(model_identity, None)))
            .map_err(|e| FormatError::StateShape(format!("serialising the state: {e}")))
    }

    /// Host bytes the state holds (A, z and the open ids).
    pub fn bytes(&self) -> usize {
        let floats: usize = self.state.layers.iter().map(|l| l.a.len() + l.z.len()).sum();
        4 * (floats + self.open_ids.len())
    }

    /// The identity, segment count, open ids and their checksum, and the model's readable parts when given.
    fn metadata(&self, model_identity: &str, parts: Option<&ModelParts>) -> HashMap<String, String> {
        let open: Vec<String> = self.open_ids.iter().map(u32::to_string).collect();
        let (segments, open) = (self.segments.to_string(), open.join(","));
        let sum = checksum(model_identity, &segments, &open, &self.state.layers);
        let mut meta = HashMap::from([
            (KEY_MODEL.to_string(), model_identity.to_string()),
            (KEY_SEGMENTS.to_string(), segments),
            (KEY_OPEN.to_string(), open),
            (KEY_CHECKSUM.to_string(), sum),
        ]);
        if let Some(parts) = parts {
            meta.insert(KEY_PARTS.to_string(), parts.to_text());
        }
        meta
    }

    /// Reads a state written by [`SavedState::save`] for the model `model_identity` of `layers` layers, `D` and
    /// `d`; a state of another model, or of other shapes, is refused. See [`SavedState::load_checked`], which also
    /// checks the open ids against the model and returns the warning for a file without a checksum.
    pub fn load(
        path: &Path,
        model_identity: &str,
        layers: usize,
        d_key: usize,
        hidden: usize,
    ) -> Result<Self, FormatError> {
        let expect = StateExpect {
            identity: model_identity,
            layers,
            d_key,
            hidden,
            vocab: None,
            segment_size: None,
            parts: None,
        };
        Self::load_checked(path, &expect).map(|l| l.saved)
    }

    /// Reads and checks a state file against `expect`: the model's identity; exactly the tensors `layers.{i}.A`
    /// and `layers.{i}.z` of f32 and the model's shapes, every value finite; a plausible segment count (a state of
    /// no closed segment is all zeros); at most T open ids, each inside the vocabulary; and the checksum over all
    /// of it. A file without a checksum (written before dbrmt stored one) is accepted when everything else holds,
    /// with a warning.
    pub fn load_checked(path: &Path, expect: &StateExpect<'_>) -> Result<LoadedState, FormatError> {
        Self::check_file(path, SafetensorsFile::open(path), expect)
    }

    /// As [`SavedState::load_checked`], from bytes in memory (`path` only names them in messages).
    pub fn from_bytes(path: &Path, bytes: &[u8], expect: &StateExpect<'_>) -> Result<LoadedState, FormatError> {
        Self::check_file(path, SafetensorsFile::from_bytes(path, bytes), expect)
    }

    fn check_file(
        path: &Path,
        file: Result<SafetensorsFile, FormatError>,
        expect: &StateExpect<'_>,
    ) -> Result<LoadedState, FormatError> {
        let bad = |msg: String| FormatError::Checkpoint {
            path: path.to_path_buf(),
            msg,
        };
        let file = file.map_err(|e| match e {
            FormatError::Checkpoint { msg, .. } => bad(format!("not a state file: {msg}")),
            other => other,
        })?;
        let meta = file.metadata();
        let get = |k: &str| {
            meta.get(k)
                .ok_or_else(|| bad(format!("not a dbrmt state file (no `{k}` in its metadata)")))
        };
        let saved_for = get(KEY_MODEL)?;
        if saved_for != expect.identity {
            return Err(bad(another_model(saved_for, meta.get(KEY_PARTS), expect)));
        }
        let segments_text = get(KEY_SEGMENTS)?;
        let segments = segments_text
            .parse::<u64>()
            .ok()
            .filter(|&n| n <= crate::limits::MAX_SEGMENTS)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                bad(format!(
                    "bad `{KEY_SEGMENTS}` {:?}: expected a segment count of at most {}",
                    printable(segments_text),
                    crate::limits::MAX_SEGMENTS
                ))
            })?;
        let open = get(KEY_OPEN)?;
        let open_ids: Vec<u32> = if open.is_empty() {
            Vec::new()
        } else {
            open.split(',')
                .map(|x| x.parse::<u32>())
                .collect::<Result<_, _>>()
                .map_err(|_| bad(format!("bad `{KEY_OPEN}`: expected token ids separated by commas")))?
        };
        if let Some(t) = expect.segment_size {
            if open_ids.len() > t {
                return Err(bad(format!(
                    "`{KEY_OPEN}` holds {} ids, more than a segment of the model ({t})",
                    open_ids.len()
                )));
            }
        }
        if let Some(vocab) = expect.vocab {
            if let Some((i, id)) = open_ids.iter().enumerate().find(|(_, &id)| id as usize >= vocab) {
                return Err(bad(format!(
                    "open id {id} (at {i}) is outside the model's vocabulary (size {vocab})"
                )));
            }
        }

        let expected_tensors = expect.layers.saturating_mul(2);
        if file.tensors().len() != expected_tensors {
            return Err(bad(format!(
                "holds {} tensors; a state of this model has {expected_tensors} (layers.{{i}}.A and layers.{{i}}.z)",
                file.tensors().len()
            )));
        }
        let read = |name: String, shape: Vec<usize>| -> Result<Vec<f32>, FormatError> {
            let entry = file
                .tensors()
                .get(&name)
                .ok_or_else(|| bad(format!("missing tensor `{name}`")))?;
            if entry.dtype != Dtype::F32 || entry.shape != shape {
                return Err(bad(format!(
                    "`{name}` is {:?} {:?}, expected F32 {shape:?}",
                    entry.dtype, entry.shape
                )));
            }
            let bytes = file
                .bytes(entry)
                .ok_or_else(|| bad(format!("`{name}` lies outside the file")))?;
            let values: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if let Some(i) = values.iter().position(|x| !x.is_finite()) {
                return Err(bad(format!(
                    "`{name}` holds {} at element {i}; a memory state is finite",
                    values[i]
                )));
            }
            Ok(values)
        };
        crate::memory::check_host(
            &format!("the memory state of {}", path.display()),
            crate::memory::mul_bytes(&[expect.layers, expect.d_key.saturating_add(1), expect.hidden, 4]),
        )?;
        let layers = (0..expect.layers)
            .map(|i| {
                Ok(LayerState {
                    a: read(format!("layers.{i}.A"), vec![expect.d_key, expect.hidden])?,
                    z: read(format!("layers.{i}.z"), vec![expect.d_key])?,
                })
            })
            .collect::<Result<Vec<_>, FormatError>>()?;
        if segments == 0 && layers.iter().any(|l| l.a.iter().chain(&l.z).any(|&x| x != 0.0)) {
            return Err(bad(format!(
                "`{KEY_SEGMENTS}` is 0 but the state is not all zeros (only a closed segment writes the memory)"
            )));
        }
        let warning = match meta.get(KEY_CHECKSUM) {
            Some(stored) => {
                let sum = checksum(expect.identity, segments_text, open, &layers);
                if *stored != sum {
                    return Err(bad(format!(
                        "checksum mismatch (stored {}, contents give {sum}): the file was modified or damaged \
                         since it was saved",
                        printable(stored)
                    )));
                }
                None
            }
            None => Some(format!(
                "{}: this state has no checksum (saved by an older dbrmt); its shapes, values and metadata were \
                 checked, but edits to it cannot be detected",
                path.display()
            )),
        };
        Ok(LoadedState {
            saved: Self {
                state: MemoryState {
                    d_key: expect.d_key,
                    hidden: expect.hidden,
                    layers,
                },
                segments,
                open_ids,
            },
            warning,
        })
    }
}

/// Why a state of another model is refused: what differs in the parts both record, else the weights, else (a state
/// without parts) the two identities.
fn another_model(saved_for: &str, saved_parts: Option<&String>, expect: &StateExpect<'_>) -> String {
    let there = saved_parts.and_then(|t| ModelParts::parse(t));
    match (there, expect.parts) {
        (Some(there), Some(here)) => {
            let differences = there.differences(&here);
            if differences.is_empty() {
                "this state was saved from another model: the same shape and memory, other weights (another \
                 checkpoint)"
                    .to_string()
            } else {
                format!("this state was saved from another model: {}", differences.join("; "))
            }
        }
        _ => format!(
            "this state was saved from another model ({}); the loaded model is {}",
            printable(saved_for),
            expect.identity
        ),
    }
}

/// `dbrmt-sum1:<16 hex digits>`: FNV-1a over the identity, segment count and open ids as stored, then every
/// layer's `A` and `z` bytes in order.
fn checksum(identity: &str, segments: &str, open: &str, layers: &[LayerState]) -> String {
    let mut h = Fnv::new();
    for part in [identity, segments, open] {
        h.bytes(&(part.len() as u64).to_le_bytes());
        h.bytes(part.as_bytes());
    }
    for l in layers {
        h.bytes(bytemuck::cast_slice(&l.a));
        h.bytes(bytemuck::cast_slice(&l.z));
    }
    format!("dbrmt-sum1:{:016x}", h.0)
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
        let bytes = self.serialize(meta).map_err(io)?;
        crate::files::write_atomically(path, |out| out.write_all(&bytes))
    }

    /// The safetensors bytes of `layers.{i}.A` and `layers.{i}.z` with `meta`.
    fn serialize(&self, meta: Option<HashMap<String, String>>) -> Result<Vec<u8>, std::io::Error> {
        let mut views = Vec::with_capacity(2 * self.layers.len());
        for (i, l) in self.layers.iter().enumerate() {
            let a = TensorView::new(Dtype::F32, vec![self.d_key, self.hidden], bytemuck::cast_slice(&l.a));
            let z = TensorView::new(Dtype::F32, vec![self.d_key], bytemuck::cast_slice(&l.z));
            let (a, z) = match (a, z) {
                (Ok(a), Ok(z)) => (a, z),
                _ => return Err(std::io::Error::other("state tensor has an inconsistent size")),
            };
            views.push((format!("layers.{i}.A"), a));
            views.push((format!("layers.{i}.z"), z));
        }
        let mut bytes = safetensors::serialize(views, meta).map_err(|e| std::io::Error::other(e.to_string()))?;
        sort_header(&mut bytes);
        Ok(bytes)
    }
}

/// Rewrites a serialised safetensors header with its keys in sorted order. The crate writes the metadata map in hash
/// order, which changes from process to process, so two runs that compute the same state would write different
/// bytes; sorted, the same state is the same file. The header keeps its length (the same JSON, reordered), so the
/// data offsets and the padding stand; anything unexpected leaves the bytes as they were.
fn sort_header(bytes: &mut [u8]) {
    let Some(len) = bytes
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
    else {
        return;
    };
    let Some(end) = usize::try_from(len).ok().and_then(|l| l.checked_add(8)) else {
        return;
    };
    let Some(header) = bytes.get_mut(8..end) else {
        return;
    };
    // serde_json's map is ordered by key (no `preserve_order`), so writing the parsed header sorts it
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(header) else {
        return;
    };
    let Ok(sorted) = serde_json::to_vec(&value) else {
        return;
    };
    if sorted.len() <= header.len() {
        header[..sorted.len()].copy_from_slice(&sorted);
        header[sorted.len()..].fill(b' ');
    }
}
