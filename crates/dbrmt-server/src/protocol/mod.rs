//! The OpenAI-compatible wire format: requests as they are read and checked, and the JSON of responses and
//! stream chunks.

mod chat;
mod prompt;
mod request;
mod response;

pub use chat::Message;
pub use prompt::PromptInput;
pub use request::{Endpoint, GenerateRequest};
pub use response::Shape;

/// Reads a JSON body into `T`, turning every failure (bad JSON, wrong types, unknown fields) into a 400 that
/// names the field at fault and quotes the parser.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, crate::error::ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(invalid)?;
    de.end()
        .map_err(|e| crate::error::ApiError::invalid(format!("invalid request body: {e}")))?;
    Ok(value)
}

fn invalid(e: serde_path_to_error::Error<serde_json::Error>) -> crate::error::ApiError {
    let path = e.path().to_string();
    let message = if path == "." {
        format!("invalid request body: {}", e.inner())
    } else {
        format!("invalid request body: `{path}`: {}", e.inner())
    };
    crate::error::ApiError::invalid(message)
}
