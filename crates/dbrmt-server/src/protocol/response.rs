//! The JSON a generation answers with: a whole completion, or the chunks of a stream, in the shape of the
//! endpoint it was asked on (`text_completion` or `chat.completion`).

use std::time::Duration;

use serde_json::{json, Value};

use super::request::Endpoint;
use crate::scheduler::{FinishReason, Usage};

/// What every response of one request shares: its endpoint, id, creation time and model name.
#[derive(Debug, Clone)]
pub struct Shape {
    pub endpoint: Endpoint,
    pub id: String,
    pub created: u64,
    pub model: String,
}

fn usage_json(u: Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
    })
}

impl Shape {
    fn object(&self, chunk: bool) -> &'static str {
        match (self.endpoint, chunk) {
            (Endpoint::Completions, _) => "text_completion",
            (Endpoint::Chat, false) => "chat.completion",
            (Endpoint::Chat, true) => "chat.completion.chunk",
        }
    }

    fn envelope(&self, chunk: bool, choices: Vec<Value>) -> Value {
        json!({
            "id": self.id,
            "object": self.object(chunk),
            "created": self.created,
            "model": self.model,
            "choices": choices,
        })
    }

    /// The answer to a request that did not stream.
    pub fn full(
        &self,
        text: String,
        reason: FinishReason,
        usage: Usage,
        ids: Option<&[u32]>,
        state_id: Option<&str>,
    ) -> Value {
        let mut choice = match self.endpoint {
            Endpoint::Completions => json!({"index": 0, "text": text, "logprobs": null}),
            Endpoint::Chat => json!({"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": null}),
        };
        choice["finish_reason"] = reason.as_str().into();
        if let Some(ids) = ids {
            choice["token_ids"] = json!(ids);
        }
        let mut v = self.envelope(false, vec![choice]);
        v["usage"] = usage_json(usage);
        if let Some(id) = state_id {
            v["state_id"] = id.into();
        }
        v
    }

    /// A chunk of new text (`first`: a chat stream's first chunk also names the role).
    pub fn chunk(&self, text: &str, ids: Option<&[u32]>, first: bool) -> Value {
        let mut choice = match self.endpoint {
            Endpoint::Completions => json!({"index": 0, "text": text, "logprobs": null, "finish_reason": null}),
            Endpoint::Chat => {
                let mut delta = json!({"content": text});
                if first {
                    delta["role"] = "assistant".into();
                }
                json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": null})
            }
        };
        if let Some(ids) = ids {
            choice["token_ids"] = json!(ids);
        }
        self.envelope(true, vec![choice])
    }

    /// The chunk that ends a stream's choice, with the stored state's id.
    pub fn last_chunk(&self, reason: FinishReason, state_id: Option<&str>) -> Value {
        let mut v = self.chunk("", None, false);
        v["choices"][0]["finish_reason"] = reason.as_str().into();
        if let Some(id) = state_id {
            v["state_id"] = id.into();
        }
        v
    }

    /// The usage chunk `stream_options.include_usage` asks for (no choices, as OpenAI sends it).
    pub fn usage_chunk(&self, usage: Usage) -> Value {
        let mut v = self.envelope(true, Vec::new());
        v["usage"] = usage_json(usage);
        v
    }

    /// A prefill progress event (llama.cpp's `prompt_progress`).
    pub fn progress(&self, processed: usize, total: usize, elapsed: Duration) -> Value {
        json!({
            "id": self.id,
            "object": "prefill.progress",
            "created": self.created,
            "model": self.model,
            "prompt_progress": {
                "total": total,
                "processed": processed,
                "time_ms": elapsed.as_secs_f64() * 1e3,
            },
        })
    }
}
