//! CUDA kernels for ARMT-LLaMA and their f32 CPU references.
pub mod cubins;
pub mod error;
pub mod gpu;
pub mod kernel;
pub mod poison;
pub mod reference;

pub use cubins::cubins_built;
pub use error::KernelError;
pub use gpu::{driver_present, Gpu};
pub use kernel::Kernel;
