//! The worker thread's loop over the engine's packed schedule of many requests (`dbrmt_runtime::Requests`): take
//! submissions, drop those whose client left (cancelling them in the engine), admit waiting requests into the next
//! step while the engine takes them, run one step for all live requests, and act on its events.

use std::collections::{HashMap, VecDeque};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use dbrmt_formats::SavedState;
use dbrmt_runtime::{Engine, Event as EngineEvent, FinishReason as Why, Limits, Request as Work, RequestError};
use dbrmt_runtime::{RequestId, Requests};

use super::request::{Next, Request};
use super::{Admission, FinishReason, Shared, Submission};
use crate::error::ApiError;
use crate::metrics::{Latency, Metrics};
use crate::states::covered_tokens;

pub(super) struct Worker {
    pub rx: mpsc::Receiver<Submission>,
    pub admission: Arc<Admission>,
    pub shared: Shared,
    /// Device bytes the live requests may hold (`None`: what the device has free, less a reserve).
    pub device_bytes: Option<usize>,
}

/// What became of a submission offered to the engine.
enum Admitted {
    Yes,
    /// The engine is full (requests or device memory): it waits for the next step.
    Full(Submission),
    /// Refused or failed; its client has been told.
    No,
}

impl Worker {
    /// Runs until the HTTP side drops its handle (or the engine cannot start).
    pub fn run(self, engine: &Engine) {
        let limits = Limits {
            max_requests: self.admission.max_concurrent(),
            device_bytes: self.device_bytes,
        };
        let mut set = match engine.requests(limits) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("dbrmt serve: the engine cannot take requests: {e}");
                return;
            }
        };
        // a finished request's state is copied out only for a request that stores it (`Live::admit`)
        set.keep_states(false);
        let tokenizer = self.shared.tokenizer.clone();
        let mut live = Live {
            set,
            requests: HashMap::new(),
            worker: &self,
            segment_size: engine.config().armt.segment_size,
        };
        let mut waiting: VecDeque<Submission> = VecDeque::new();
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
            live.drop_abandoned();
            // every request the engine takes joins the next step
            while let Some(s) = waiting.pop_front() {
                match live.admit(s, tokenizer.as_deref()) {
                    Admitted::Yes | Admitted::No => {}
                    Admitted::Full(s) => {
                        waiting.push_front(s);
                        break;
                    }
                }
            }
            self.admission.set_running(live.requests.len());
            if live.requests.is_empty() {
                continue;
            }
            live.step();
            self.admission.set_running(live.requests.len());
        }
    }

    /// A request left the system without finishing.
    fn ended(&self, how: &'static str) {
        self.shared.metrics.outcome(how);
        self.admission.leave();
    }

    fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }
}

/// The requests in the engine.
struct Live<'w, 'e, 't> {
    set: Requests<'e>,
    requests: HashMap<RequestId, Request<'t>>,
    worker: &'w Worker,
    segment_size: usize,
}

impl<'t> Live<'_, '_, 't> {
    fn admit(&mut self, s: Submission, tokenizer: Option<&'t dbrmt_tokenizer::Tokenizer>) -> Admitted {
        let w = self.worker;
        // (checked first: the request below copies its prompt and stored state) a request whose state is still being
        // copied out holds its place until its `Finished` comes, though the engine has freed its slot
        if self.requests.len() >= self.set.limits().max_requests {
            return Admitted::Full(s);
        }
        let cached = s
            .job
            .state
            .as_deref()
            .map_or(0, |st| covered_tokens(st, self.segment_size));
        let (request, generate) = Request::new(&s.job, s.events.clone(), tokenizer, cached);
        match self.set.add(Work::Generate(generate)) {
            Ok(id) => {
                // only a state to store is copied out (its `Finished` then comes a step after it finishes);
                // the request was just admitted, so this cannot fail (and were it to, the end says so)
                let _ = self.set.keep_state(id, request.store_state);
                let job = &s.job;
                w.metrics().observe(Latency::Queue, Instant::now() - job.arrived);
                w.metrics().add_prompt_tokens(job.ids.len(), cached);
                self.requests.insert(id, request);
                Admitted::Yes
            }
            // full: it waits, unless nothing is live (then it can never fit)
            Err(RequestError::TooManyRequests { .. } | RequestError::OutOfDeviceMemory { .. })
                if !self.requests.is_empty() =>
            {
                Admitted::Full(s)
            }
            Err(e) => {
                let error = match e {
                    RequestError::Invalid(_) | RequestError::Engine(dbrmt_runtime::EngineError::Model(_)) => {
                        ApiError::invalid(e.to_string())
                    }
                    RequestError::OutOfDeviceMemory { .. } => ApiError::unavailable(e.to_string()),
                    _ => ApiError::internal(format!("starting the request: {e}")),
                };
                w.admission.leave();
                request.fail(error, w.metrics());
                Admitted::No
            }
        }
    }

    /// Cancels the requests whose clients went away, freeing their state and cache at once.
    fn drop_abandoned(&mut self) {
        let gone: Vec<RequestId> = self
            .requests
            .iter()
            .filter(|(_, r)| r.abandoned())
            .map(|(&k, _)| k)
            .collect();
        for id in gone {
            let _ = self.set.cancel(id);
            self.requests.remove(&id);
            self.worker.ended("cancelled");
        }
    }

    /// One packed step of every live request, and what it did to each.
    fn step(&mut self) {
        let events = match self.set.step() {
            Ok(events) => events,
            Err(e) => {
                // the step's requests are in an unknown state: every live one fails, the engine goes on
                let ids: Vec<RequestId> = self.requests.keys().copied().collect();
                for id in ids {
                    self.end(id, Err(ApiError::internal(format!("the engine failed: {e}"))));
                }
                return;
            }
        };
        self.worker
            .metrics()
            .engine(self.set.occupancy(), self.set.device_bytes());
        for event in events {
            self.on_event(event);
        }
    }

    fn on_event(&mut self, event: EngineEvent) {
        let worker = self.worker;
        let metrics = worker.metrics();
        let id = event.id();
        let Some(request) = self.requests.get_mut(&id) else {
            return;
        };
        match event {
            EngineEvent::Progress { done, .. } => request.prefill_progress(done),
            EngineEvent::Logits { .. } => {}
            EngineEvent::Token { token, .. } => {
                if request.ending.is_some() {
                    return;
                }
                match request.on_token(token, false, metrics) {
                    Ok(Next::Continue) => {}
                    Ok(Next::Stop) if request.store_state => {
                        // the state must hold this token: the engine runs it, then finishes the request
                        request.ending = Some(FinishReason::Stop);
                        if let Err(e) = self.set.end(id) {
                            self.end(id, Err(ApiError::internal(format!("ending the request: {e}"))));
                        }
                    }
                    Ok(Next::Stop) => self.end(id, Ok((FinishReason::Stop, None))),
                    Err(e) => self.end(id, Err(e)),
                }
            }
            EngineEvent::Finished { reason, state, .. } => {
                let reason = match (request.ending, reason) {
                    // a stop string (completed by the last token, too) wins over the length the engine finished at
                    (Some(ending), _) => ending,
                    (None, Why::Length) => FinishReason::Length,
                    (None, Why::Stop(token)) => match request.on_token(token, true, metrics) {
                        Ok(_) => FinishReason::Stop,
                        Err(e) => return self.end(id, Err(e)),
                    },
                    (None, Why::Ended) => FinishReason::Stop,
                    (None, Why::Prefilled) => {
                        return self.end(id, Err(ApiError::internal("a generation ended as a prefill")))
                    }
                };
                let state = match (request.store_state, state) {
                    (true, Some(state)) => Some(state),
                    (true, None) => return self.end(id, Err(ApiError::internal("the engine kept no state to store"))),
                    (false, _) => None,
                };
                self.end(id, Ok((reason, state)));
            }
        }
    }

    fn store(&self, state: SavedState) -> Result<String, ApiError> {
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

    /// Sends the request's end (storing its state first when asked) and frees its place; a request still in the
    /// engine is cancelled there.
    fn end(&mut self, id: RequestId, how: Result<(FinishReason, Option<SavedState>), ApiError>) {
        let _ = self.set.cancel(id);
        let Some(request) = self.requests.remove(&id) else {
            return;
        };
        let how = how.and_then(|(reason, state)| match state {
            Some(state) => self.store(state).map(|id| (reason, Some(id))),
            None => Ok((reason, None)),
        });
        let worker = self.worker;
        // the counts change before the client hears the end, so what it reads next is up to date
        worker.admission.leave();
        worker.admission.set_running(self.requests.len());
        let metrics = worker.metrics();
        match how {
            Ok((reason, state_id)) => request.finish(reason, state_id, metrics),
            Err(e) => request.fail(e, metrics),
        }
    }
}
