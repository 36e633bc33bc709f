//! How many requests an engine holds at once, and the errors of the request API.

use dbrmt_model::ModelError;
use dbrmt_schedule::WavefrontError;

use super::RequestId;
use crate::EngineError;

/// The limits of a set of live requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Live requests at once (admitted and not yet finished or cancelled).
    pub max_requests: usize,
    /// Device bytes the requests' state, caches and step buffers may hold (GPU only; `None`: what the device has
    /// free, less a reserve).
    pub device_bytes: Option<usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_requests: 64,
            device_bytes: None,
        }
    }
}

/// Why a request was refused, or a step failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("{live} requests are live, the limit is {limit}; wait for one to finish or cancel one")]
    TooManyRequests { live: usize, limit: usize },
    #[error(
        "a new request needs {need} more bytes of device memory but {available} are available \
         (free on the device less a reserve, or under the limit given); wait for one to finish or cancel one"
    )]
    OutOfDeviceMemory { need: usize, available: usize },
    #[error("no live request {0}")]
    UnknownRequest(RequestId),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<ModelError> for RequestError {
    fn from(e: ModelError) -> Self {
        RequestError::Engine(e.into())
    }
}

impl From<dbrmt_kernels::KernelError> for RequestError {
    fn from(e: dbrmt_kernels::KernelError) -> Self {
        RequestError::Engine(e.into())
    }
}

/// The schedule refusing a call is a bug of the request set, reported rather than panicking.
impl From<WavefrontError> for RequestError {
    fn from(e: WavefrontError) -> Self {
        RequestError::Invalid(format!("schedule: {e}"))
    }
}
