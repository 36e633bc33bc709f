//! The model's error type: a bad file (from `dbrmt-formats`), bad input to a forward, or a failed kernel.

use dbrmt_formats::FormatError;
use dbrmt_kernels::KernelError;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error("token id {id} at position {position} is outside the vocabulary (size {vocab})")]
    IdOutOfRange { position: usize, id: i64, vocab: usize },
    #[error("the input has no tokens")]
    EmptyInput,
    #[error("invalid schedule: {0}")]
    InvalidSchedule(String),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("the model produced a non-finite logit after {tokens} tokens: its weights or memory state are broken")]
    NonFiniteLogits { tokens: usize },
}

impl From<cudarc::driver::DriverError> for ModelError {
    fn from(e: cudarc::driver::DriverError) -> Self {
        ModelError::Kernel(e.into())
    }
}
