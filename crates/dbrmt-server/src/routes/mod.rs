//! The HTTP handlers, one file per group of routes.

pub mod generate;
pub mod info;
mod prompt_ids;
pub mod states;
mod stream;
pub mod tokenize;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;

use crate::error::ApiError;

/// The body, or the 4xx for one that could not be read (413 past the limit).
fn body(b: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    b.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(limit)
        } else {
            ApiError::invalid(format!("reading the request body: {}", e.body_text()))
        }
    })
}
