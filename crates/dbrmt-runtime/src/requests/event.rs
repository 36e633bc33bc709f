//! What a step tells the caller about each request.

use dbrmt_formats::SavedState;

use super::RequestId;

/// Something that happened to one request during a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `done` of the request's `total` input tokens have left the top layer.
    Progress { id: RequestId, done: usize, total: usize },
    /// Logits of a prefill request: rows `first_row..first_row + rows` of its input, `[rows, vocab]` (all rows
    /// segment by segment as they leave the top layer, or the last row only).
    Logits {
        id: RequestId,
        first_row: usize,
        rows: usize,
        logits: Vec<f32>,
    },
    /// A generated token, with the logits it was sampled from.
    Token {
        id: RequestId,
        token: u32,
        logits: Vec<f32>,
    },
    /// The request is done and its state and cache are freed; `state` continues it (the memory after its closed
    /// segments, and the open segment's ids; a generation's last token is in it only with `keep_last_token` or
    /// after [`super::Requests::end`]), copied out only when the request's state is kept
    /// ([`Requests::keep_states`](super::Requests::keep_states), the default, or
    /// [`Requests::keep_state`](super::Requests::keep_state)), else `None`.
    Finished {
        id: RequestId,
        reason: FinishReason,
        state: Option<SavedState>,
    },
}

impl Event {
    /// The request the event is about.
    pub fn id(&self) -> RequestId {
        match self {
            Event::Progress { id, .. }
            | Event::Logits { id, .. }
            | Event::Token { id, .. }
            | Event::Finished { id, .. } => *id,
        }
    }
}

/// Why a request finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// A prefill request ran its whole input.
    Prefilled,
    /// Generation sampled this stop token (not emitted).
    Stop(u32),
    /// Generation emitted its maximum number of tokens (or read its prompt, asked for none).
    Length,
    /// The caller ended the generation ([`super::Requests::end`]).
    Ended,
}
