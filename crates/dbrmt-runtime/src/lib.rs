//! The dbrmt executor and its public API, [`Engine`]: load a model directory, prefill token ids on the CPU model
//! or a CUDA GPU under a sequential or diagonal schedule, get logits and the memory state back.

mod engine;
mod error;
mod gpu;
pub mod selftest;

pub use engine::{Device, Engine, ScheduleKind};
pub use error::EngineError;
pub use gpu::{DeviceTiming, GpuEngine};
