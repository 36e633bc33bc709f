//! ARMT-LLaMA: the config, checkpoint loading, host weights, and the f32 CPU model that is the oracle for every
//! GPU result.

pub mod checkpoint;
pub mod config;
pub mod cpu;
pub mod error;
pub mod input;
pub mod npy;
pub mod output;
pub mod state;
pub mod weights;

pub use config::{ArmtParams, ModelConfig};
pub use error::ModelError;
pub use output::{LogitsMode, Output};
pub use state::MemoryState;
pub use weights::{LayerWeights, Weights};
