//! What `dbrmt serve` is told: where to listen, the model's public name, and the limits it keeps.

use std::time::Duration;

/// Where to listen and what to serve.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub host: String,
    /// 0 takes a free port (the address is printed).
    pub port: u16,
    /// The `model` name clients send and `/v1/models` lists.
    pub model_name: String,
    pub limits: Limits,
}

/// Bounds on the work and memory the server takes on; past each one a request gets a clear 4xx.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Requests computed at once in the engine's packed schedule (each holds its memory state and the KV cache of
    /// its open segment).
    pub max_concurrent: usize,
    /// Device bytes the live requests may hold (`None`: what the GPU has free, less a reserve); a request that
    /// does not fit waits for one to finish.
    pub max_device_bytes: Option<usize>,
    /// Requests waiting for a slot; past `max_concurrent + max_queued` the answer is 429.
    pub max_queued: usize,
    /// The largest `max_tokens` a request may ask for.
    pub max_tokens: usize,
    /// `max_tokens` when a completion request leaves it out (OpenAI's default is 16); chat takes `max_tokens`.
    pub default_max_tokens: usize,
    /// Bytes of a request body (a state upload may be as large as `max_state_bytes`).
    pub max_body_bytes: usize,
    /// Stored memory states, in count and host bytes; the least recently used goes first.
    pub max_states: usize,
    pub max_state_bytes: usize,
    /// Comment lines on a quiet stream (a long prefill), so clients and proxies do not time out.
    pub keep_alive: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrent: 8,
            max_device_bytes: None,
            max_queued: 64,
            max_tokens: 4096,
            default_max_tokens: 16,
            max_body_bytes: 32 << 20,
            max_states: 64,
            max_state_bytes: 4 << 30,
            keep_alive: Duration::from_secs(5),
        }
    }
}
