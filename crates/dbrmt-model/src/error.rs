//! The one error type of this crate: every bad input becomes one of these, never a panic.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("token id {id} at position {position} is outside the vocabulary (size {vocab})")]
    IdOutOfRange { position: usize, id: i64, vocab: usize },
    #[error("the input has no tokens")]
    EmptyInput,
    #[error("invalid input: {0}")]
    InvalidInput(String),
}
