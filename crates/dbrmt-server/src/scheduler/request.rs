//! One live request on the worker: sampling its next token from the logits the backend gives, its text and stop
//! strings, its timings, and the events it sends back.

use std::time::Instant;

use dbrmt_model::sampling::Sampler;
use dbrmt_tokenizer::Tokenizer;
use tokio::sync::mpsc::UnboundedSender;

use super::{Event, FinishReason, Job, Usage};
use crate::error::ApiError;
use crate::metrics::{Latency, Metrics};
use crate::text::TextOutput;

/// What the worker does next for a request, after its logits came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Push this sampled id into the backend.
    Push(u32),
    /// Finished: store its state first (the last sampled id, if any, has been run).
    Save(FinishReason),
    /// Finished.
    Done(FinishReason),
}

#[derive(Debug)]
pub struct Request<'t> {
    events: UnboundedSender<Event>,
    sampler: Sampler,
    max_tokens: usize,
    /// Ids that end generation (none with `ignore_eos` or without a tokenizer).
    stop_ids: &'t [u32],
    text: Option<TextOutput<'t>>,
    store_state: bool,
    progress: bool,
    usage: Usage,
    arrived: Instant,
    started: Instant,
    last_token: Option<Instant>,
    /// Set once generation has ended and the state is being brought up to date before it is stored.
    saving: Option<FinishReason>,
}

impl<'t> Request<'t> {
    /// A request whose compute starts now. Its sampling parameters were checked when it was read.
    pub fn new(
        job: &Job,
        events: UnboundedSender<Event>,
        tokenizer: Option<&'t Tokenizer>,
        cached_tokens: usize,
    ) -> Result<Self, ApiError> {
        let sampler =
            Sampler::new(job.temperature, job.top_p, job.seed).map_err(|e| ApiError::invalid(e.to_string()))?;
        let stop_ids = match tokenizer {
            Some(t) if !job.ignore_eos => t.stop_ids(),
            _ => &[],
        };
        Ok(Self {
            events,
            sampler,
            max_tokens: job.max_tokens,
            stop_ids,
            text: tokenizer.map(|t| TextOutput::new(t, job.stop.clone())),
            store_state: job.store_state,
            progress: job.progress,
            usage: Usage {
                prompt_tokens: job.ids.len(),
                completion_tokens: 0,
                cached_tokens,
            },
            arrived: job.arrived,
            started: Instant::now(),
            last_token: None,
            saving: None,
        })
    }

    /// Whether the client has gone (its receiver was dropped).
    pub fn abandoned(&self) -> bool {
        self.events.is_closed()
    }

    pub fn prefill_progress(&self, processed: usize, total: usize) {
        if self.progress {
            let _ = self.events.send(Event::Progress {
                processed,
                total,
                elapsed: self.started.elapsed(),
            });
        }
    }

    /// The backend has the next-token logits: sample, send the text, and say what comes next.
    pub fn on_logits(&mut self, logits: &[f32], metrics: &Metrics) -> Result<Next, ApiError> {
        if let Some(reason) = self.saving {
            return Ok(Next::Save(reason));
        }
        if self.usage.completion_tokens == 0 {
            if self.progress {
                self.prefill_progress(self.usage.prompt_tokens, self.usage.prompt_tokens);
            }
            if self.max_tokens == 0 {
                return Ok(self.end(FinishReason::Length, None));
            }
        }
        let id = self.sampler.sample(logits);
        let now = Instant::now();
        match self.last_token {
            None => metrics.observe(Latency::TimeToFirstToken, now - self.arrived),
            Some(t) => metrics.observe(Latency::InterToken, now - t),
        }
        self.last_token = Some(now);
        self.usage.completion_tokens += 1;
        metrics.add_generated_token();

        let mut stopped = self.stop_ids.contains(&id);
        let text = match (&mut self.text, stopped) {
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
        if stopped {
            return Ok(self.end(FinishReason::Stop, Some(id)));
        }
        if self.usage.completion_tokens == self.max_tokens {
            return Ok(self.end(FinishReason::Length, Some(id)));
        }
        Ok(Next::Push(id))
    }

    /// Generation ended with `last` sampled: a state to store must hold it too, so it is run first.
    fn end(&mut self, reason: FinishReason, last: Option<u32>) -> Next {
        match (self.store_state, last) {
            (true, Some(id)) => {
                self.saving = Some(reason);
                Next::Push(id)
            }
            (true, None) => Next::Save(reason),
            (false, _) => Next::Done(reason),
        }
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
