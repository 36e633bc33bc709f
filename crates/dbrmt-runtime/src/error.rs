//! Errors of the runtime: a bad file, a model problem, or a device problem.

use dbrmt_formats::FormatError;
use dbrmt_kernels::KernelError;
use dbrmt_model::ModelError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Format(#[from] FormatError),
    /// Bad input to a forward (ids, schedule, state); file and device problems are the other variants.
    #[error(transparent)]
    Model(ModelError),
    #[error(transparent)]
    Kernel(#[from] KernelError),
}

/// A model error that is really a file or device problem is reported as one, so callers match one level deep.
impl From<ModelError> for EngineError {
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::Format(f) => EngineError::Format(f),
            ModelError::Kernel(k) => EngineError::Kernel(k),
            other => EngineError::Model(other),
        }
    }
}

impl From<cudarc::driver::DriverError> for EngineError {
    fn from(e: cudarc::driver::DriverError) -> Self {
        EngineError::Kernel(e.into())
    }
}
