//! The body of `/v1/completions` and `/v1/chat/completions`: OpenAI's fields this server implements, dbrmt's
//! extensions, and nothing else (an unknown field is a 400, not silently ignored).

use serde::Deserialize;
use serde_json::Value;

use super::chat::Message;
use super::prompt::PromptInput;
use crate::config::Limits;
use crate::error::ApiError;

/// Which endpoint a body was sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Completions,
    Chat,
}

/// Both endpoints' fields; [`GenerateRequest::validate`] refuses the other endpoint's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateRequest {
    pub model: Option<String>,
    /// Completions only.
    pub prompt: Option<Value>,
    /// Chat only.
    pub messages: Option<Vec<Message>>,
    pub max_tokens: Option<i64>,
    /// Chat only: the newer name of `max_tokens`.
    pub max_completion_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub seed: Option<i64>,
    pub stop: Option<Value>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub n: Option<i64>,
    /// Accepted and ignored (OpenAI's end-user id), so clients that send it are not refused.
    #[allow(dead_code)]
    pub user: Option<String>,
    /// dbrmt: continue from this stored memory state (only the new text is read).
    pub state: Option<String>,
    /// dbrmt: store the memory after this request and return its `state_id`.
    pub store_state: Option<bool>,
    /// dbrmt: stream prefill progress events (`"object": "prefill.progress"`).
    pub return_progress: Option<bool>,
    /// dbrmt: return the generated token ids beside the text.
    pub return_token_ids: Option<bool>,
    /// dbrmt: do not stop at end-of-sequence tokens.
    pub ignore_eos: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamOptions {
    pub include_usage: Option<bool>,
}

/// A request that passed every check that needs no model.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    pub prompt: PromptInput,
    pub max_tokens: usize,
    pub temperature: f32,
    pub top_p: f32,
    pub seed: Option<u64>,
    pub stop: Vec<String>,
    pub stream: bool,
    pub include_usage: bool,
    pub state: Option<String>,
    pub store_state: bool,
    pub progress: bool,
    pub token_ids: bool,
    pub ignore_eos: bool,
}

/// Stop strings a request may give (OpenAI's limit).
const MAX_STOPS: usize = 4;

impl GenerateRequest {
    /// Checks every field against `endpoint`, the served model's name and the server's limits.
    pub fn validate(self, endpoint: Endpoint, model_name: &str, limits: &Limits) -> Result<Validated, ApiError> {
        let unknown = |f: &str| ApiError::invalid(format!("invalid request body: unknown field `{f}`"));
        if let Some(m) = &self.model {
            if m != model_name {
                return Err(ApiError::not_found(
                    "model_not_found",
                    format!("the model `{m}` does not exist; this server serves `{model_name}`"),
                ));
            }
        }
        let prompt = match endpoint {
            Endpoint::Completions => {
                if self.messages.is_some() {
                    return Err(unknown("messages"));
                }
                if self.max_completion_tokens.is_some() {
                    return Err(unknown("max_completion_tokens"));
                }
                let v = self
                    .prompt
                    .ok_or_else(|| ApiError::invalid_field("prompt", "`prompt` is required"))?;
                PromptInput::from_value(v)?
            }
            Endpoint::Chat => {
                if self.prompt.is_some() {
                    return Err(unknown("prompt"));
                }
                let messages = self
                    .messages
                    .ok_or_else(|| ApiError::invalid_field("messages", "`messages` is required"))?;
                if messages.is_empty() {
                    return Err(ApiError::invalid_field("messages", "`messages` is empty"));
                }
                let turns = messages
                    .into_iter()
                    .enumerate()
                    .map(|(i, m)| m.into_turn(i))
                    .collect::<Result<_, _>>()?;
                PromptInput::Chat(turns)
            }
        };
        if let Some(n) = self.n {
            if n != 1 {
                return Err(ApiError::invalid_field(
                    "n",
                    format!("`n` is {n}; this server returns one choice per request (n = 1)"),
                ));
            }
        }
        let default_max = match endpoint {
            Endpoint::Completions => limits.default_max_tokens,
            Endpoint::Chat => limits.max_tokens,
        };
        let max_tokens = match self.max_tokens.or(self.max_completion_tokens) {
            None => default_max,
            Some(m) if m < 0 => {
                return Err(ApiError::invalid_field(
                    "max_tokens",
                    format!("`max_tokens` is {m}; it must be ≥ 0"),
                ))
            }
            Some(m) if m as u64 > limits.max_tokens as u64 => {
                return Err(ApiError::invalid_field(
                    "max_tokens",
                    format!(
                        "`max_tokens` is {m}, more than this server generates per request ({}, --max-tokens)",
                        limits.max_tokens
                    ),
                ))
            }
            Some(m) => m as usize,
        };
        let temperature = self.temperature.unwrap_or(1.0);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(ApiError::invalid_field(
                "temperature",
                format!("`temperature` is {temperature}; it must be between 0 and 2"),
            ));
        }
        let top_p = self.top_p.unwrap_or(1.0);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(ApiError::invalid_field(
                "top_p",
                format!("`top_p` is {top_p}; it must be in (0, 1]"),
            ));
        }
        let stream = self.stream.unwrap_or(false);
        if self.stream_options.is_some() && !stream {
            return Err(ApiError::invalid_field(
                "stream_options",
                "`stream_options` is only allowed with `stream: true`",
            ));
        }
        let store_state = self.store_state.unwrap_or(false);
        if let Some(id) = &self.state {
            if id.is_empty() {
                return Err(ApiError::invalid_field("state", "`state` is empty"));
            }
        }
        Ok(Validated {
            prompt,
            max_tokens,
            temperature: temperature as f32,
            top_p: top_p as f32,
            // any integer is a seed; a negative one reads as its two's complement
            seed: self.seed.map(|s| s as u64),
            stop: stops(self.stop)?,
            stream,
            include_usage: self.stream_options.and_then(|o| o.include_usage).unwrap_or(false),
            state: self.state,
            store_state,
            progress: self.return_progress.unwrap_or(false),
            token_ids: self.return_token_ids.unwrap_or(false),
            ignore_eos: self.ignore_eos.unwrap_or(false),
        })
    }
}

/// `stop`: null, a string, or up to four strings, none empty.
fn stops(v: Option<Value>) -> Result<Vec<String>, ApiError> {
    let bad = |m: String| ApiError::invalid_field("stop", m);
    let list = match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|x| match x {
                Value::String(s) => Ok(s),
                other => Err(bad(format!("`stop` holds {other}, not a string"))),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(bad(format!("`stop` is {other}; it must be a string or strings"))),
    };
    if list.len() > MAX_STOPS {
        return Err(bad(format!("`stop` has {} strings; at most {MAX_STOPS}", list.len())));
    }
    if list.iter().any(String::is_empty) {
        return Err(bad("`stop` holds an empty string".into()));
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(endpoint: Endpoint, body: Value) -> Result<Validated, ApiError> {
        let r: GenerateRequest = crate::protocol::parse_json(body.to_string().as_bytes())?;
        r.validate(endpoint, "m", &Limits::default())
    }

    #[test]
    fn a_plain_request_gets_the_defaults() {
        let v = check(Endpoint::Completions, json!({"model": "m", "prompt": "hi"})).unwrap();
        assert_eq!(v.prompt, PromptInput::Text("hi".into()));
        assert_eq!((v.max_tokens, v.temperature, v.top_p, v.stream), (16, 1.0, 1.0, false));
        let v = check(
            Endpoint::Chat,
            json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
                   "max_completion_tokens": 3, "stop": "x", "seed": -1, "stream": true,
                   "stream_options": {"include_usage": true}, "state": "s", "store_state": true}),
        )
        .unwrap();
        assert_eq!(v.prompt, PromptInput::Chat(vec![("user".into(), "ab".into())]));
        assert_eq!(
            (v.max_tokens, v.seed, v.stop.clone()),
            (3, Some(u64::MAX), vec!["x".to_string()])
        );
        assert!(v.stream && v.include_usage && v.store_state && v.state.as_deref() == Some("s"));
    }

    #[test]
    fn every_bad_field_is_a_4xx_naming_it() {
        let cases = [
            (Endpoint::Completions, json!({"prompt": "x", "bogus": 1}), 400, "bogus"),
            (
                Endpoint::Completions,
                json!({"prompt": "x", "messages": []}),
                400,
                "messages",
            ),
            (
                Endpoint::Chat,
                json!({"messages": [{"role": "user", "content": "x"}], "prompt": "x"}),
                400,
                "prompt",
            ),
            (
                Endpoint::Chat,
                json!({"messages": [{"role": "tool", "content": "x"}]}),
                400,
                "tool",
            ),
            (
                Endpoint::Chat,
                json!({"messages": [{"role": "user", "content": "x", "extra": 1}]}),
                400,
                "extra",
            ),
            (Endpoint::Chat, json!({"messages": []}), 400, "empty"),
            (Endpoint::Completions, json!({}), 400, "prompt"),
            (
                Endpoint::Completions,
                json!({"prompt": "x", "model": "other"}),
                404,
                "other",
            ),
            (
                Endpoint::Completions,
                json!({"prompt": "x", "temperature": -0.5}),
                400,
                "temperature",
            ),
            (
                Endpoint::Completions,
                json!({"prompt": "x", "temperature": "hot"}),
                400,
                "temperature",
            ),
            (Endpoint::Completions, json!({"prompt": "x", "top_p": 0}), 400, "top_p"),
            (
                Endpoint::Completions,
                json!({"prompt": "x", "max_tokens": 4097}),
                400,
                "max_tokens",
            ),
            (
                Endpoint::Completions,
                json!({"prompt": "x", "max_tokens": -1}),
                400,
                "max_tokens",
            ),
            (Endpoint::Completions, json!({"prompt": "x", "n": 2}), 400, "n"),
            (
                Endpoint::Completions,
                json!({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}),
                400,
                "stop",
            ),
            (Endpoint::Completions, json!({"prompt": "x", "stop": [""]}), 400, "stop"),
            (
                Endpoint::Completions,
                json!({"prompt": "x", "stream_options": {}}),
                400,
                "stream_options",
            ),
            (
                Endpoint::Completions,
                json!({"prompt": "x", "stream": "yes"}),
                400,
                "stream",
            ),
        ];
        for (endpoint, body, status, needle) in cases {
            let e = check(endpoint, body.clone()).unwrap_err();
            assert_eq!(e.status.as_u16(), status, "{body}: {e}");
            assert!(e.message.contains(needle), "{body}: {}", e.message);
        }
        let e = crate::protocol::parse_json::<GenerateRequest>(b"{\"prompt\": ").unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
    }
}
