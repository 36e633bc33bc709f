//! One live request on the worker: what the engine is asked for, the tokens the engine samples turned into text
//! (stop strings), its timings, and the events it sends back.

use std::time::Instant;

use dbrmt_runtime::Generate;
use dbrmt_tokenizer::Tokenizer;
use tokio::sync::mpsc::UnboundedSender;

use super::{Event, FinishReason, Job, Usage};
use crate::error::ApiError;
use crate::metrics::{Latency, Metrics};
use crate::text::TextOutput;

/// What the worker does after a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Keep generating (the engine decides when `max_tokens` or a stop id ends it).
    Continue,
    /// A stop string ended the text: end the request in the engine.
    Stop,
}

#[derive(Debug)]
pub struct Request<'t> {
    events: UnboundedSender<Event>,
    text: Option<TextOutput<'t>>,
    pub store_state: bool,
    progress: bool,
    /// Prompt tokens the engine reads before the new ones (the stored state's open segment).
    reopened: usize,
    /// New prompt tokens reported as read so far.
    reported: usize,
    usage: Usage,
    arrived: Instant,
    started: Instant,
    last_token: Option<Instant>,
    /// Set once a stop string has ended the text; the engine is finishing the request (its state is wanted).
    pub ending: Option<FinishReason>,
}

impl<'t> Request<'t> {
    /// A request whose compute starts now, and what the engine is asked to do for it. Its sampling parameters
    /// were checked when it was read (the engine checks them again).
    pub fn new(
        job: &Job,
        events: UnboundedSender<Event>,
        tokenizer: Option<&'t Tokenizer>,
        cached_tokens: usize,
    ) -> (Self, Generate) {
        let stop_ids = match tokenizer {
            Some(t) if !job.ignore_eos => t.stop_ids().to_vec(),
            _ => Vec::new(),
        };
        let generate = Generate {
            prompt: job.ids.iter().map(|&id| id as i64).collect(),
            max_new_tokens: job.max_tokens,
            temperature: job.temperature,
            top_p: job.top_p,
            seed: job.seed,
            stop: stop_ids,
            resume: job.state.as_deref().cloned(),
            // a stored state holds every generated token, the last one and a stop token included
            keep_last_token: job.store_state,
            // the answer is text or ids: a greedy token is chosen on the device
            token_logits: false,
        };
        let request = Self {
            events,
            text: tokenizer.map(|t| TextOutput::new(t, job.stop.clone())),
            store_state: job.store_state,
            progress: job.progress,
            reopened: job.state.as_ref().map_or(0, |s| s.open_ids.len()),
            reported: 0,
            usage: Usage {
                prompt_tokens: job.ids.len(),
                completion_tokens: 0,
                cached_tokens,
            },
            arrived: job.arrived,
            started: Instant::now(),
            last_token: None,
            ending: None,
        };
        (request, generate)
    }

    /// Whether the client has gone (its receiver was dropped).
    pub fn abandoned(&self) -> bool {
        self.events.is_closed()
    }

    /// The engine has read `done` of its `total` input tokens (the reopened ones of a stored state first).
    pub fn prefill_progress(&mut self, done: usize) {
        let processed = done.saturating_sub(self.reopened).min(self.usage.prompt_tokens);
        if self.progress && processed > self.reported {
            self.reported = processed;
            let _ = self.events.send(Event::Progress {
                processed,
                total: self.usage.prompt_tokens,
                elapsed: self.started.elapsed(),
            });
        }
    }

    /// The engine sampled `id` (a stop id too, when the engine finished on it): send its text, and say whether a
    /// stop string ended the text.
    pub fn on_token(&mut self, id: u32, is_stop_id: bool, metrics: &Metrics) -> Result<Next, ApiError> {
        let now = Instant::now();
        match self.last_token {
            None => metrics.observe(Latency::TimeToFirstToken, now - self.arrived),
            Some(t) => metrics.observe(Latency::InterToken, now - t),
        }
        self.last_token = Some(now);
        self.usage.completion_tokens += 1;
        metrics.add_generated_token();

        let mut stopped = false;
        let text = match (&mut self.text, is_stop_id) {
            (Some(out), false) => {
                let piece = out
                    .push(id)
                    .map_err(|e| ApiError::internal(format!("detokenising: {e}")))?;
                stopped = piece.stopped;
                piece.text
            }
            _ => String::new(),
        };
        let _ = self.events.send(Event::Delta { text, ids: vec![id] });
        Ok(if stopped { Next::Stop } else { Next::Continue })
    }

    /// Sends the held-back text and the end.
    pub fn finish(self, reason: FinishReason, state_id: Option<String>, metrics: &Metrics) {
        if let Some(out) = self.text {
            match out.finish() {
                Ok(text) if !text.is_empty() => {
                    let _ = self.events.send(Event::Delta { text, ids: Vec::new() });
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = self
                        .events
                        .send(Event::Failed(ApiError::internal(format!("detokenising: {e}"))));
                    return;
                }
            }
        }
        metrics.observe(Latency::EndToEnd, self.arrived.elapsed());
        metrics.outcome(reason.as_str());
        let _ = self.events.send(Event::Finished {
            reason,
            usage: self.usage,
            state_id,
        });
    }

    /// Sends an error as the request's end.
    pub fn fail(self, error: ApiError, metrics: &Metrics) {
        metrics.outcome("error");
        let _ = self.events.send(Event::Failed(error));
    }
}
