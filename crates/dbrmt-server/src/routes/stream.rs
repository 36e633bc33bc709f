//! A request's events as server-sent events: a chunk per piece of text, prefill progress when asked, the final
//! chunk (finish reason, stored state id), the usage chunk when asked, then `data: [DONE]`. An error after the
//! stream began is sent as an OpenAI error object (clients read every `data:` line as JSON). Keep-alive comments
//! flow while a long prefill is silent. Dropping the stream (the client left) drops the receiver, which cancels
//! the request.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::error::ApiError;
use crate::protocol::Shape;
use crate::scheduler::Event;

/// What the client asked the stream to carry.
#[derive(Debug, Clone, Copy)]
pub struct StreamOptions {
    pub token_ids: bool,
    pub include_usage: bool,
}

/// Where a stream is.
struct Cursor {
    events: UnboundedReceiver<Event>,
    /// No text chunk sent yet (a chat stream's first names the role).
    first: bool,
}

pub fn sse(
    shape: Shape,
    events: UnboundedReceiver<Event>,
    opts: StreamOptions,
    keep_alive: Duration,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let shape = Arc::new(shape);
    let start = Some(Cursor { events, first: true });
    let batches = stream::unfold(start, move |cursor| {
        let shape = shape.clone();
        async move {
            let mut c = cursor?;
            let (out, more) = match c.events.recv().await {
                Some(event) => translate(&shape, event, &mut c.first, opts),
                None => (
                    finale(ApiError::internal("the engine stopped before the request finished")),
                    false,
                ),
            };
            Some((out, more.then_some(c)))
        }
    });
    let events = batches.flat_map(|batch| stream::iter(batch.into_iter().map(Ok)));
    Sse::new(events).keep_alive(KeepAlive::new().interval(keep_alive))
}

/// The SSE events of one scheduler event, and whether more follow.
fn translate(shape: &Shape, event: Event, first: &mut bool, opts: StreamOptions) -> (Vec<SseEvent>, bool) {
    let data = |v: serde_json::Value| SseEvent::default().data(v.to_string());
    match event {
        Event::Progress {
            processed,
            total,
            elapsed,
        } => (vec![data(shape.progress(processed, total, elapsed))], true),
        Event::Delta { text, ids } => {
            if text.is_empty() && !opts.token_ids {
                return (Vec::new(), true);
            }
            let chunk = shape.chunk(&text, opts.token_ids.then_some(ids.as_slice()), *first);
            *first = false;
            (vec![data(chunk)], true)
        }
        Event::Finished {
            reason,
            usage,
            state_id,
        } => {
            let mut out = vec![data(shape.last_chunk(reason, state_id.as_deref()))];
            if opts.include_usage {
                out.push(data(shape.usage_chunk(usage)));
            }
            out.push(SseEvent::default().data("[DONE]"));
            (out, false)
        }
        Event::Failed(e) => (finale(e), false),
    }
}

fn finale(e: ApiError) -> Vec<SseEvent> {
    vec![
        SseEvent::default().data(e.body().to_string()),
        SseEvent::default().data("[DONE]"),
    ]
}
