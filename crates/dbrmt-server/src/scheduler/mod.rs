//! The scheduler: one thread owns the engine (compute blocks; it never runs on the HTTP reactor), takes
//! submitted requests from a bounded queue, runs them together in the engine's packed schedule
//! (`dbrmt_runtime::Requests`: a request joins at the next step, and every step carries a cell of every live
//! request), and sends each request's events back over its own channel. A request whose receiver is dropped (its
//! client went away) is cancelled, queued or running, and its slot is freed.
//!
//! `worker.rs` is the loop; `request.rs` one request's text, stop strings and events; `admission.rs` the bounds
//! that give 429.

mod admission;
mod request;
mod worker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use dbrmt_formats::SavedState;
use dbrmt_runtime::Engine;
use dbrmt_tokenizer::Tokenizer;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::error::{ApiError, ServerError};
use crate::metrics::Metrics;
use crate::states::StateStore;
pub use admission::Admission;

/// One request, checked and tokenised.
#[derive(Debug, Clone)]
pub struct Job {
    /// New prompt ids (each below the vocabulary size).
    pub ids: Vec<u32>,
    /// The stored memory to continue from.
    pub state: Option<Arc<SavedState>>,
    pub temperature: f32,
    pub top_p: f32,
    pub seed: u64,
    /// Tokens to generate at most (0: read the prompt only).
    pub max_tokens: usize,
    /// Stop strings (need a tokenizer).
    pub stop: Vec<String>,
    /// Keep generating past end-of-sequence tokens.
    pub ignore_eos: bool,
    /// Store the memory after the request (prompt and generated tokens) and return its id.
    pub store_state: bool,
    /// Send prefill progress events.
    pub progress: bool,
    /// When the server received the request (TTFT and queue time count from here).
    pub arrived: Instant,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-sequence token or a stop string.
    Stop,
    /// `max_tokens`.
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// Token counts of a finished request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// New prompt tokens read.
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Tokens the stored state it continued from had read.
    pub cached_tokens: usize,
}

/// What a request hears from the scheduler, in order: progress (if asked), deltas, then one `Finished` or
/// `Failed`.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Progress {
        processed: usize,
        total: usize,
        elapsed: Duration,
    },
    /// New text (empty while a character or a possible stop string is incomplete) and the ids generated.
    Delta {
        text: String,
        ids: Vec<u32>,
    },
    Finished {
        reason: FinishReason,
        usage: Usage,
        state_id: Option<String>,
    },
    Failed(ApiError),
}

/// A submitted job and where its events go.
#[derive(Debug)]
struct Submission {
    job: Job,
    events: UnboundedSender<Event>,
}

/// What the worker shares with the HTTP side.
#[derive(Debug, Clone)]
pub struct Shared {
    pub tokenizer: Option<Arc<Tokenizer>>,
    pub states: Arc<Mutex<StateStore>>,
    pub metrics: Arc<Metrics>,
}

/// The HTTP side's handle on the worker thread.
#[derive(Debug)]
pub struct Scheduler {
    submit: Mutex<mpsc::Sender<Submission>>,
    admission: Arc<Admission>,
    alive: Arc<AtomicBool>,
}

impl Scheduler {
    /// Moves `engine` to its own thread and starts taking requests: at most `max_concurrent` computed at once
    /// (holding at most `device_bytes` of device memory, when given), `max_queued` more waiting.
    pub fn start(
        engine: Engine,
        shared: Shared,
        max_concurrent: usize,
        max_queued: usize,
        device_bytes: Option<usize>,
    ) -> Result<Self, ServerError> {
        let (tx, rx) = mpsc::channel();
        let admission = Arc::new(Admission::new(max_concurrent, max_queued));
        let alive = Arc::new(AtomicBool::new(true));
        let worker = worker::Worker {
            rx,
            admission: admission.clone(),
            shared,
            device_bytes,
        };
        let flag = alive.clone();
        std::thread::Builder::new()
            .name("dbrmt-engine".into())
            .spawn(move || {
                // cleared however the thread ends, a panic included, so /health and new requests see it
                let _alive = ClearOnDrop(flag);
                worker.run(&engine);
            })
            .map_err(|e| ServerError::Engine(e.to_string()))?;
        Ok(Self {
            submit: Mutex::new(tx),
            admission,
            alive,
        })
    }

    /// Queues `job`; its events come on the returned receiver. Dropping the receiver cancels the job.
    pub fn submit(&self, job: Job) -> Result<UnboundedReceiver<Event>, ApiError> {
        if !self.is_alive() {
            return Err(ApiError::unavailable("the engine has stopped"));
        }
        if !self.admission.try_enter() {
            return Err(ApiError::busy(format!(
                "the server is busy: {} requests running and {} waiting (--max-concurrent {}, --max-queued {}); \
                 retry later",
                self.admission.running(),
                self.admission.waiting(),
                self.admission.max_concurrent(),
                self.admission.max_queued()
            )));
        }
        let (tx, rx) = unbounded_channel();
        let sent = self
            .submit
            .lock()
            .map_err(|_| ApiError::internal("the scheduler's queue is poisoned"))?
            .send(Submission { job, events: tx });
        if sent.is_err() {
            self.admission.leave();
            return Err(ApiError::unavailable("the engine has stopped"));
        }
        Ok(rx)
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    pub fn admission(&self) -> &Admission {
        &self.admission
    }
}

struct ClearOnDrop(Arc<AtomicBool>);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
