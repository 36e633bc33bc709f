//! The dbrmt executor and its public API, [`Engine`]: load a model directory, prefill token ids on the CPU model
//! or a CUDA GPU under a sequential or diagonal schedule, get logits and the memory state back.

mod engine;
mod error;
mod gpu;
mod gpu_session;
pub mod selftest;
mod session;

pub use engine::{Device, Engine, ScheduleKind};
pub use error::EngineError;
pub use gpu::{DeviceTiming, GpuEngine};
pub use gpu_session::GpuSession;
pub use session::Session;
