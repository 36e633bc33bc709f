//! CUDA kernels for ARMT-LLaMA and their f32 CPU references.
pub mod armt_read;
pub mod armt_write;
pub mod attention;
pub mod attention_sm90;
pub mod check;
pub mod cubins;
pub mod dpfp;
pub mod embed;
pub mod error;
pub mod gemm;
pub mod gemm_sm90;
pub mod gpu;
pub mod hidden;
pub mod kernel;
pub(crate) mod launch;
pub mod params;
pub mod poison;
pub mod reference;
pub mod rms_norm;
pub mod rope;
pub mod swiglu;
pub(crate) mod tma;

pub use cubins::cubins_built;
pub use error::KernelError;
pub use gpu::{driver_present, Gpu};
pub use hidden::HiddenElem;
pub use kernel::Kernel;
