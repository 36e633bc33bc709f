//! The one error type of this crate: every malformed or mismatched file becomes one of these, never a panic.

use std::path::PathBuf;

use crate::names::NameLayout;

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A memory state does not fit the model it is given to (layers, D or d differ).
    #[error("{0}")]
    StateShape(String),
    /// `config.json` is unreadable as a model config: a field is missing, has the wrong type, or is unsupported.
    #[error("{path}: {msg}")]
    Config { path: PathBuf, msg: String },
    /// A checkpoint file or directory is malformed (bad header, offsets, index, …) or absent.
    #[error("{path}: {msg}")]
    Checkpoint { path: PathBuf, msg: String },
    /// A tensor the model needs is not in the checkpoint.
    #[error("{path}: missing tensor `{name}` (looked for {layout})")]
    MissingTensor {
        path: PathBuf,
        name: String,
        layout: NameLayout,
    },
    /// A tensor's shape does not match the config.
    #[error("{path}: tensor `{name}` has shape {found:?}, expected {expected:?} from config.json")]
    Shape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// A tensor is stored in a dtype the loader does not convert.
    #[error("{path}: tensor `{name}` has dtype {dtype}; only BF16, F16 and F32 are supported")]
    Dtype { path: PathBuf, name: String, dtype: String },
    /// A plain LLaMA checkpoint (no ARMT tensors) and no seed to initialise the memory from.
    #[error("{path}: no ARMT tensors found; pass --armt-init SEED to initialise the memory")]
    NoArmtTensors { path: PathBuf },
    /// The checkpoint has trained ARMT tensors and a seed to initialise them was given too.
    #[error("{path}: the checkpoint has ARMT tensors, so --armt-init would discard them; drop --armt-init")]
    ArmtInitConflict { path: PathBuf },
    /// A `.npy` file is malformed or holds an array of the wrong dtype, order or shape.
    #[error("{path}: {msg}")]
    Npy { path: PathBuf, msg: String },
    /// A GGUF file is malformed: wrong magic or version, truncated, absurd counts or lengths, an unknown tensor
    /// type, tensor data outside the file, …
    #[error("{path}: invalid GGUF file: {msg}")]
    Gguf { path: PathBuf, msg: String },
    /// A GGUF tensor is of a known type that the loader does not dequantise.
    #[error(
        "{path}: tensor `{name}` has type {ggml_type}, which is not supported \
         (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K)"
    )]
    GgufTensorType {
        path: PathBuf,
        name: String,
        ggml_type: String,
    },
    /// A run would need more memory than the machine has (estimated before allocating; see [`crate::memory`]).
    #[error(
        "not enough memory for {what}: needs {}, has {} ({limited_by})",
        crate::memory::human(*needed),
        crate::memory::human(*available)
    )]
    OutOfMemory {
        what: String,
        needed: u64,
        available: u64,
        limited_by: String,
    },
    /// A tensor holds a NaN or an infinity: the model would compute NaN logits (or none) without a word.
    #[error("{path}: tensor `{name}` holds {value} at element {index}; the weights must be finite")]
    NonFinite {
        path: PathBuf,
        name: String,
        index: usize,
        value: f32,
    },
    /// A trained ARMT memory file (`--armt`) cannot be applied to the model.
    #[error(transparent)]
    ArmtFile(#[from] crate::armt_file::ArmtFileError),
    /// A GGUF tensor's shape (row-major, i.e. ggml's `ne` reversed) does not match the metadata.
    #[error("{path}: tensor `{name}` has shape {found:?}, expected {expected:?} from the GGUF metadata")]
    GgufShape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
}

/// `s` with control characters escaped, for messages: a name or value from a hostile file may hold terminal
/// escape sequences, which must not reach the terminal as such.
pub fn printable(s: &str) -> String {
    if s.chars().any(char::is_control) {
        s.escape_debug().to_string()
    } else {
        s.to_string()
    }
}
