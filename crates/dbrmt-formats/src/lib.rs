//! The files dbrmt reads and writes, with no GPU dependency: `config.json`, safetensors checkpoints (single or
//! sharded, plain HF or original-ARMT tensor names), llama.cpp's GGUF (reader, metadata, dequantisation, the q/k
//! un-permute), `.npy` arrays, saved memory states, and the host weights a checkpoint becomes.
//!
//! The tokenizer, the CPU model and the GPU model all start here; nothing in this crate knows about devices.

pub mod armt_file;
pub mod armt_init;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod files;
pub mod gguf;
pub mod identity;
pub mod identity_parts;
pub mod limits;
pub mod load;
pub mod memory;
mod mmap;
pub mod names;
pub mod npy;
pub mod presets;
pub mod random;
pub mod rng;
pub mod source;
pub mod state;
pub mod weights;

pub use config::{ArmtParams, Llama3Scaling, LlamaConfig, MemShape, ModelConfig};
pub use error::FormatError;
pub use load::{load_model, LoadOptions, Model};
pub use names::NameLayout;
pub use source::{ModelSource, TensorRead};
pub use state::{LoadedState, MemoryState, SavedState, StateExpect};
pub use weights::{LayerWeights, Weights};
