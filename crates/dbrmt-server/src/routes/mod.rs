//! The HTTP handlers, one file per group of routes.

pub mod generate;
pub mod info;
mod prompt_ids;
pub mod states;
mod stream;
pub mod tokenize;

use axum::body::{Body, Bytes, HttpBody};
use futures_util::StreamExt;

use crate::error::ApiError;

/// How much of an oversized body is read (and dropped) before the 413: a client that is still sending when the
/// answer comes would otherwise see the connection reset instead of the error.
const DRAIN_FACTOR: usize = 4;

/// The body, at most `limit` bytes; past that a 413, once the body is read to its end (up to `DRAIN_FACTOR` ×
/// the limit; a body declared larger still is refused unread).
async fn body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared = body.size_hint().lower() as usize;
    if declared > DRAIN_FACTOR * limit {
        return Err(ApiError::too_large(limit));
    }
    let mut stream = body.into_data_stream();
    let (mut buf, mut seen) = (Vec::new(), 0usize);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::invalid(format!("reading the request body: {e}")))?;
        seen += chunk.len();
        if seen > DRAIN_FACTOR * limit {
            break;
        }
        if seen <= limit {
            buf.extend_from_slice(&chunk);
        }
    }
    if seen > limit {
        return Err(ApiError::too_large(limit));
    }
    Ok(Bytes::from(buf))
}
