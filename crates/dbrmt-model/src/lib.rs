//! ARMT-LLaMA on two backends, side by side: the f32 CPU model (`cpu/`, the oracle for every GPU result) and the
//! GPU model on raw device buffers (`gpu/`). Each backend has its model (one cell, or one step of cells), an
//! executor that walks any schedule over it, and a generation session; [`Session`] is either session.
//!
//! The files a model comes from (config, checkpoints, GGUF, saved states) are `dbrmt-formats`; the kernels and
//! their references are `dbrmt-kernels`; the schedules are `dbrmt-schedule`.

pub mod cpu;
pub mod error;
pub mod gpu;
pub mod input;
pub mod output;
pub mod packed;
pub mod sampling;
mod session;

pub use error::ModelError;
pub use output::{LogitsMode, Output};
pub use session::Session;
