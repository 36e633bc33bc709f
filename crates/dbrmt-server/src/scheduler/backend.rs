//! The one seam between the server and compute: [`Backend`], what the scheduler's worker asks of an engine, and
//! [`SessionBackend`], the implementation on today's `dbrmt_runtime` sessions.
//!
//! `SessionBackend` runs one request's unit of work per [`Backend::step`] — a prefill piece (a few segments) or one
//! decoded token — taking the live requests in turn, so every client makes progress at token granularity. The
//! engine of many requests in one packed schedule (`dbrmt_runtime::Requests`, issue #14) goes here as a second
//! implementation whose `step` runs one packed step for all of them; docs/ARCHITECTURE.md ("Serving") lists what
//! that swap needs (it samples inside the engine, and its finished state leaves out the last token).

use std::sync::Arc;

use dbrmt_formats::SavedState;
use dbrmt_model::ModelError;
use dbrmt_runtime::{Engine, EngineError, Session};

use super::prefill_cut::next_cut;

/// A request's handle inside the backend (the worker picks it).
pub type Key = u64;

/// What a request starts from: the memory it continues (none: a fresh one) and the ids it reads first.
#[derive(Debug, Clone)]
pub struct Start {
    pub state: Option<Arc<SavedState>>,
    pub ids: Vec<u32>,
}

/// What a step did for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// `done` of the request's `total` new prompt ids have been read; more to come.
    Prefill { done: usize, total: usize },
    /// The next-token logits are ready ([`Backend::logits`]): after the whole prompt, or after a pushed token.
    Logits,
}

/// The engine failed on a request.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// What the scheduler needs from compute. Requests come and go between steps; a request's results never depend
/// on which others share the engine.
pub trait Backend {
    /// Takes on a request; its work starts at a later [`Backend::step`].
    fn start(&mut self, key: Key, start: Start) -> Result<(), BackendError>;
    /// Appends a sampled id to `key`; its logits come from a later step.
    fn push(&mut self, key: Key, id: u32);
    /// Whether any request has work to do.
    fn busy(&self) -> bool;
    /// Does the next piece of work and appends what happened to whom.
    fn step(&mut self, out: &mut Vec<(Key, Result<Progress, BackendError>)>);
    /// The next-token logits of `key` after its last [`Progress::Logits`].
    fn logits(&self, key: Key) -> &[f32];
    /// What continues `key` later: its memory and the open segment's ids.
    fn save(&self, key: Key) -> Result<SavedState, BackendError>;
    /// Drops a finished or cancelled request and frees its memory at once.
    fn remove(&mut self, key: Key);
}

/// What a live session has left to do.
#[derive(Debug)]
enum Pending {
    /// Read `ids[done..]`; the session's open segment held `open_before` tokens before them.
    Prefill {
        ids: Vec<u32>,
        done: usize,
        open_before: usize,
    },
    /// Run one pushed id.
    Token(u32),
    /// Waiting for the worker (its logits are ready).
    Idle,
}

#[derive(Debug)]
struct Live<'e> {
    key: Key,
    session: Session<'e>,
    pending: Pending,
}

/// One `dbrmt_runtime` session per request, stepped in turn.
#[derive(Debug)]
pub struct SessionBackend<'e> {
    engine: &'e Engine,
    live: Vec<Live<'e>>,
    /// Where the next turn starts (round robin over `live`).
    next: usize,
    /// Segments a prefill piece closes.
    chunk_segments: usize,
}

impl<'e> SessionBackend<'e> {
    pub fn new(engine: &'e Engine, chunk_segments: usize) -> Self {
        Self {
            engine,
            live: Vec::new(),
            next: 0,
            chunk_segments,
        }
    }

    fn find(&self, key: Key) -> Option<usize> {
        self.live.iter().position(|l| l.key == key)
    }

    /// Runs `live`'s next unit of work.
    fn run(&mut self, i: usize) -> Result<Progress, BackendError> {
        let t = self.engine.config().armt.segment_size;
        let chunk = self.chunk_segments;
        let live = &mut self.live[i];
        match std::mem::replace(&mut live.pending, Pending::Idle) {
            Pending::Prefill { ids, done, open_before } => {
                let end = next_cut(done, ids.len(), open_before, t, chunk);
                live.session.prefill(&ids[done..end])?;
                if end < ids.len() {
                    let total = ids.len();
                    live.pending = Pending::Prefill {
                        ids,
                        done: end,
                        open_before,
                    };
                    return Ok(Progress::Prefill { done: end, total });
                }
                Ok(Progress::Logits)
            }
            Pending::Token(id) => {
                live.session.push(id)?;
                Ok(Progress::Logits)
            }
            Pending::Idle => Ok(Progress::Logits),
        }
    }
}

impl Backend for SessionBackend<'_> {
    fn start(&mut self, key: Key, start: Start) -> Result<(), BackendError> {
        let session = match start.state {
            Some(saved) => self.engine.resume(SavedState::clone(&saved))?,
            None => self.engine.session()?,
        };
        let open_before = session.open_tokens().len();
        self.live.push(Live {
            key,
            session,
            pending: Pending::Prefill {
                ids: start.ids,
                done: 0,
                open_before,
            },
        });
        Ok(())
    }

    fn push(&mut self, key: Key, id: u32) {
        if let Some(i) = self.find(key) {
            self.live[i].pending = Pending::Token(id);
        }
    }

    fn busy(&self) -> bool {
        self.live.iter().any(|l| !matches!(l.pending, Pending::Idle))
    }

    fn step(&mut self, out: &mut Vec<(Key, Result<Progress, BackendError>)>) {
        let n = self.live.len();
        let turn = (0..n)
            .map(|k| (self.next + k) % n)
            .find(|&i| !matches!(self.live[i].pending, Pending::Idle));
        if let Some(i) = turn {
            let result = self.run(i);
            out.push((self.live[i].key, result));
            self.next = i + 1;
        }
    }

    fn logits(&self, key: Key) -> &[f32] {
        self.find(key).map_or(&[], |i| self.live[i].session.logits())
    }

    fn save(&self, key: Key) -> Result<SavedState, BackendError> {
        match self.find(key) {
            Some(i) => Ok(self.live[i].session.saved()?),
            None => Err(ModelError::InvalidInput(format!("no live request {key}")).into()),
        }
    }

    fn remove(&mut self, key: Key) {
        if let Some(i) = self.find(key) {
            self.live.remove(i);
            if self.next > i {
                self.next -= 1;
            }
        }
    }
}
