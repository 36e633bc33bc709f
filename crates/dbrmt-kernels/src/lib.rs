//! CUDA kernels for ARMT-LLaMA and their f32 CPU references.
pub mod reference;
