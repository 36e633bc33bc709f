//! Errors of the runtime: a model problem, or a device problem.

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Model(#[from] dbrmt_model::ModelError),
    #[error(transparent)]
    Kernel(#[from] dbrmt_kernels::KernelError),
    #[error("CUDA device: {0}")]
    Gpu(String),
}

impl From<cudarc::driver::DriverError> for EngineError {
    fn from(e: cudarc::driver::DriverError) -> Self {
        EngineError::Kernel(e.into())
    }
}
