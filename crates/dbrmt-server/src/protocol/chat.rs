//! `messages` of a chat request: roles and text content (a string, or an array of `{"type": "text"}` parts).

use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;

/// One message as sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    pub role: String,
    pub content: Option<Value>,
    /// Accepted and ignored (OpenAI's participant name), so clients that send it are not refused.
    #[serde(default)]
    #[allow(dead_code)]
    pub name: Option<String>,
}

/// Roles the chat template renders.
const ROLES: &[&str] = &["system", "user", "assistant"];

impl Message {
    /// `(role, text)`, checked.
    pub fn into_turn(self, i: usize) -> Result<(String, String), ApiError> {
        let bad = |m: String| ApiError::invalid_field("messages", m);
        if !ROLES.contains(&self.role.as_str()) {
            return Err(bad(format!(
                "`messages[{i}].role` is `{}`; this server takes system, user and assistant messages",
                self.role
            )));
        }
        let text = match self.content {
            Some(Value::String(s)) => s,
            Some(Value::Array(parts)) => parts
                .iter()
                .map(|p| {
                    match (
                        p.get("type").and_then(Value::as_str),
                        p.get("text").and_then(Value::as_str),
                    ) {
                        (Some("text"), Some(t)) => Ok(t),
                        _ => Err(bad(format!(
                            "`messages[{i}].content` parts must be {{\"type\": \"text\", \"text\": …}}; got {p}"
                        ))),
                    }
                })
                .collect::<Result<Vec<_>, _>>()?
                .concat(),
            _ => return Err(bad(format!("`messages[{i}].content` must be a string or text parts"))),
        };
        Ok((self.role, text))
    }
}
