//! The dbrmt runtime and its public API, [`Engine`]: load a model for a device (the CPU model or a CUDA GPU),
//! prefill token ids under a sequential or diagonal schedule, get logits and the memory state back, or open a
//! generation [`Session`]. The backends themselves (model, executor, session of each) are in `dbrmt-model`; the
//! runtime picks one and orchestrates.

mod engine;
mod error;
pub mod requests;
pub mod selftest;

pub use dbrmt_model::Session;
pub use engine::{Device, Engine, ModelInfo, ScheduleKind};
pub use error::EngineError;
pub use requests::{Event, FinishReason, Generate, Limits, Request, RequestError, RequestId, Requests};
