//! The worker thread's loop: take submissions, drop those whose client left, admit waiting requests while there
//! are free slots, step the backend, and act on what each step did.

use std::collections::{HashMap, VecDeque};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use dbrmt_runtime::Engine;

use super::backend::{Backend, Key, Progress, SessionBackend, Start};
use super::request::{Next, Request};
use super::{Admission, Shared, Submission};
use crate::error::ApiError;
use crate::metrics::Latency;
use crate::states::covered_tokens;

pub(super) struct Worker {
    pub rx: mpsc::Receiver<Submission>,
    pub admission: Arc<Admission>,
    pub shared: Shared,
    pub chunk_segments: usize,
}

impl Worker {
    /// Runs until the HTTP side drops its handle.
    pub fn run(self, engine: &Engine) {
        let tokenizer = self.shared.tokenizer.clone();
        let mut backend = SessionBackend::new(engine, self.chunk_segments);
        let mut live = Live {
            requests: HashMap::new(),
            worker: &self,
            segment_size: engine.config().armt.segment_size,
        };
        let mut waiting: VecDeque<Submission> = VecDeque::new();
        let mut next_key: Key = 0;
        let mut done = Vec::new();
        loop {
            if live.requests.is_empty() && waiting.is_empty() {
                match self.rx.recv() {
                    Ok(s) => waiting.push_back(s),
                    Err(_) => return,
                }
            }
            waiting.extend(self.rx.try_iter());
            waiting.retain(|s| {
                let gone = s.events.is_closed();
                if gone {
                    self.ended("cancelled");
                }
                !gone
            });
            live.drop_abandoned(&mut backend);
            while live.requests.len() < self.admission.max_concurrent() {
                let Some(s) = waiting.pop_front() else { break };
                live.admit(&mut backend, next_key, s, tokenizer.as_deref());
                next_key += 1;
            }
            self.admission.set_running(live.requests.len());
            if !backend.busy() {
                // every live request has work after each event, so this is only a moment between two of them
                std::thread::sleep(std::time::Duration::from_millis(1));
                continue;
            }
            backend.step(&mut done);
            for (key, result) in done.drain(..) {
                live.on_step(&mut backend, key, result);
            }
            self.admission.set_running(live.requests.len());
        }
    }

    /// A request left the system without finishing.
    fn ended(&self, how: &'static str) {
        self.shared.metrics.outcome(how);
        self.admission.leave();
    }
}

/// The requests being computed.
struct Live<'w, 't> {
    requests: HashMap<Key, Request<'t>>,
    worker: &'w Worker,
    segment_size: usize,
}

impl<'t> Live<'_, 't> {
    fn admit(
        &mut self,
        backend: &mut impl Backend,
        key: Key,
        s: Submission,
        tokenizer: Option<&'t dbrmt_tokenizer::Tokenizer>,
    ) {
        let w = self.worker;
        let job = s.job;
        let metrics = &w.shared.metrics;
        metrics.observe(Latency::Queue, Instant::now() - job.arrived);
        let cached = job
            .state
            .as_deref()
            .map_or(0, |st| covered_tokens(st, self.segment_size));
        metrics.add_prompt_tokens(job.ids.len(), cached);
        let request = match Request::new(&job, s.events.clone(), tokenizer, cached) {
            Ok(r) => r,
            Err(e) => {
                let _ = s.events.send(super::Event::Failed(e));
                w.ended("error");
                return;
            }
        };
        let start = Start {
            state: job.state,
            ids: job.ids,
        };
        match backend.start(key, start) {
            Ok(()) => {
                self.requests.insert(key, request);
            }
            Err(e) => {
                request.fail(ApiError::internal(format!("starting the request: {e}")), metrics);
                w.admission.leave();
            }
        }
    }

    /// Cancels the requests whose clients went away, freeing their sessions at once.
    fn drop_abandoned(&mut self, backend: &mut impl Backend) {
        let gone: Vec<Key> = self
            .requests
            .iter()
            .filter(|(_, r)| r.abandoned())
            .map(|(&k, _)| k)
            .collect();
        for key in gone {
            backend.remove(key);
            self.requests.remove(&key);
            self.worker.ended("cancelled");
        }
    }

    fn on_step(
        &mut self,
        backend: &mut impl Backend,
        key: Key,
        result: Result<Progress, super::backend::BackendError>,
    ) {
        let metrics = &self.worker.shared.metrics;
        let Some(request) = self.requests.get_mut(&key) else {
            return;
        };
        let next = match result {
            Ok(Progress::Prefill { done, total }) => {
                request.prefill_progress(done, total);
                return;
            }
            Ok(Progress::Logits) => request.on_logits(backend.logits(key), metrics),
            Err(e) => Err(ApiError::internal(format!("the engine failed: {e}"))),
        };
        match next {
            Ok(Next::Push(id)) => backend.push(key, id),
            Ok(Next::Done(reason)) => self.end(backend, key, Ok((reason, None))),
            Ok(Next::Save(reason)) => {
                let stored = backend
                    .save(key)
                    .map_err(|e| ApiError::internal(format!("saving the state: {e}")))
                    .and_then(|state| self.store(state));
                self.end(backend, key, stored.map(|id| (reason, Some(id))));
            }
            Err(e) => self.end(backend, key, Err(e)),
        }
    }

    fn store(&self, state: dbrmt_formats::SavedState) -> Result<String, ApiError> {
        let mut states = self
            .worker
            .shared
            .states
            .lock()
            .map_err(|_| ApiError::internal("the state store is poisoned"))?;
        states
            .insert_new(state)
            .map_err(|e| ApiError::invalid(format!("storing the state: {e}")))
    }

    /// Sends the request's end and frees its place.
    fn end(
        &mut self,
        backend: &mut impl Backend,
        key: Key,
        how: Result<(super::FinishReason, Option<String>), ApiError>,
    ) {
        backend.remove(key);
        let Some(request) = self.requests.remove(&key) else {
            return;
        };
        let metrics = &self.worker.shared.metrics;
        match how {
            Ok((reason, state_id)) => request.finish(reason, state_id, metrics),
            Err(e) => request.fail(e, metrics),
        }
        self.worker.admission.leave();
    }
}
