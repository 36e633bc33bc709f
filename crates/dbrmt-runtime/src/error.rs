//! Errors of the runtime: a model problem, or a device problem.

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Model(#[from] dbrmt_model::ModelError),
    #[error("CUDA device: {0}")]
    Gpu(String),
}
