//! ARMT-LLaMA: the config, checkpoint loading, host weights, and the f32 CPU model that is the oracle for every
//! GPU result.

pub mod armt_init;
pub mod checkpoint;
pub mod config;
pub mod cpu;
pub mod error;
pub mod gguf;
pub mod gpu;
pub mod identity;
pub mod input;
pub mod load;
mod mmap;
pub mod names;
pub mod npy;
pub mod output;
pub mod random;
pub mod sampling;
pub mod state;
pub mod weights;

pub use config::{ArmtParams, ModelConfig};
pub use error::ModelError;
pub use load::{load_model, LoadOptions, Model};
pub use names::NameLayout;
pub use output::{LogitsMode, Output};
pub use state::{MemoryState, SavedState};
pub use weights::{LayerWeights, Weights};
