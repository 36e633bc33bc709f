//! Many requests in one schedule: [`Requests`] holds the live requests of an engine — each with its own memory
//! state, open segment and KV cache — and runs them together, step by step, in the packed schedule
//! ([`dbrmt_schedule::Wavefront`]): every step fills the layer slots with whole segments of all the requests (a new
//! request's first segment enters layer 0 as soon as that slot is free) and adds the new rows of every decoding
//! request, so one grouped launch carries prefill cells and decode rows of many requests.
//!
//! Requests join ([`Requests::add`]) and leave ([`Requests::cancel`], or by finishing) between steps; each
//! [`Requests::step`] returns what happened to each request ([`Event`]). A finished or cancelled request's state and
//! cache are freed at once. Each request's logits, tokens and final state are bitwise what it gets alone: a cell's
//! arithmetic never depends on the other cells of its step (see docs/ARCHITECTURE.md, "Many requests").

mod backend;
mod event;
mod limits;
mod request;

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use dbrmt_formats::SavedState;
use dbrmt_model::{
    cpu::{CpuModel, PackedExecutor},
    gpu,
    packed::{Pass, PassCell, PassId, PassRows},
};
use dbrmt_schedule::{PassKind, Wavefront};

use crate::Engine;
use backend::{Packed, Staged};
pub use event::{Event, FinishReason};
pub use limits::{Limits, RequestError};
use request::Live;
pub use request::{Generate, Request};

/// A request's handle, unique within one [`Requests`].
pub type RequestId = u64;

/// How full the steps were: the figure of merit of packing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Occupancy {
    pub steps: usize,
    /// Whole-segment cells run (at most one per layer per step).
    pub whole_cells: usize,
    /// Open-segment cells run (decode rows, a generation's open segment).
    pub open_cells: usize,
    pub layers: usize,
    /// Requests summed over steps (each request with a cell in a step counts once): over `steps`, the mean number
    /// of requests sharing a step.
    pub request_steps: usize,
    /// The most requests that shared one step.
    pub max_step_requests: usize,
}

impl Occupancy {
    /// The share of the `steps × layers` layer slots that ran a whole segment.
    pub fn slot_occupancy(&self) -> f64 {
        self.whole_cells as f64 / (self.steps * self.layers).max(1) as f64
    }
}

/// Host wall-clock time a set of requests spent, by phase (launches are asynchronous: device time shows up where the
/// host waits for it — the logits copied out inside the steps, a finished request's state, or
/// [`Requests::synchronize`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Phases {
    /// In [`Requests::add`]: checks, the memory check, the slot's state set.
    pub admission: Duration,
    /// In [`Requests::step`], less the state copies: scheduling, launches, the logits copied out, sampling.
    pub steps: Duration,
    /// Starting the copies of finished requests' states (on the CPU: the copies).
    pub state_start: Duration,
    /// Taking the states copied out: waiting for the copies (on the GPU), then the host's state.
    pub state_take: Duration,
    /// In [`Requests::synchronize`].
    pub device_wait: Duration,
    /// Part of `steps`: waiting for the device before the logits or greedy ids were copied out (on the GPU; the rest
    /// of `steps` is the host's own work). Near `steps`: the host waits for the kernels; near zero: the kernels wait
    /// for the host's launches.
    pub copy_wait: Duration,
}

impl Phases {
    pub fn total(&self) -> Duration {
        self.admission + self.steps + self.state_start + self.state_take + self.device_wait
    }
}

/// The live requests of one engine and their packed schedule.
#[derive(Debug)]
pub struct Requests<'e> {
    engine: &'e Engine,
    limits: Limits,
    packed: Packed<'e>,
    wave: Wavefront,
    live: BTreeMap<RequestId, (Live, VecDeque<(PassId, Pass)>)>,
    next_id: RequestId,
    next_pass: PassId,
    occupancy: Occupancy,
    /// Whether finished requests' states are copied out ([`Event::Finished`]) unless a request says otherwise
    /// ([`Requests::keep_state`]).
    keep_states: bool,
    /// Finished requests whose state copy runs: their [`Event::Finished`] comes with the next step.
    finishing: VecDeque<Finishing>,
    phases: Phases,
}

/// A finished request whose state is being copied out.
#[derive(Debug)]
struct Finishing {
    id: RequestId,
    reason: FinishReason,
    segments: usize,
    open_ids: Vec<u32>,
    staged: Staged,
    /// Cancelled before its event came out: the copy is taken (its buffer freed) and no event comes.
    cancelled: bool,
}

impl Engine {
    /// An empty set of requests on this engine's device, under `limits`. On a GPU, the pool of request slots (state,
    /// KV caches, a hidden slot each) is allocated now for `max_requests` (as far as the device memory allows), so
    /// that requests coming and going allocate nothing.
    pub fn requests(&self, limits: Limits) -> Result<Requests<'_>, RequestError> {
        if limits.max_requests == 0 {
            return Err(RequestError::Invalid("max_requests must be at least 1".into()));
        }
        let mut packed = match (self.gpu_executor(), self.cpu_weights()) {
            (Some(gpu), _) => Packed::Gpu(Box::new(gpu.packed()?)),
            (None, Some(w)) => Packed::Cpu(PackedExecutor::new(&CpuModel::new(self.config(), w), 0)),
            (None, None) => unreachable!("an engine has one backend"),
        };
        packed.reserve(limits.max_requests, limits.device_bytes)?;
        let layers = self.config().llama.num_layers;
        Ok(Requests {
            engine: self,
            limits,
            packed,
            wave: Wavefront::new(layers),
            live: BTreeMap::new(),
            next_id: 0,
            next_pass: 0,
            occupancy: Occupancy {
                layers,
                ..Occupancy::default()
            },
            keep_states: true,
            finishing: VecDeque::new(),
            phases: Phases::default(),
        })
    }
}

impl Requests<'_> {
    /// Admits a request; its first segment runs in the next step. Refused (nothing admitted) when the request is
    /// invalid, when `max_requests` are live, or when its state and cache would not fit in device memory.
    pub fn add(&mut self, request: Request) -> Result<RequestId, RequestError> {
        let t0 = Instant::now();
        let added = self.admit(request);
        self.phases.admission += t0.elapsed();
        added
    }

    fn admit(&mut self, request: Request) -> Result<RequestId, RequestError> {
        let id = self.next_id;
        let resume = match &request {
            Request::Generate(g) => g.resume.as_ref().map(|s| s.state.clone()),
            Request::Prefill { .. } => None,
        };
        let (mut live, passes) = Live::new(id, request, self.engine.config())?;
        if self.live.len() >= self.limits.max_requests {
            return Err(RequestError::TooManyRequests {
                live: self.live.len(),
                limit: self.limits.max_requests,
            });
        }
        if let Some((need, available)) = self.packed.admission_bytes(self.limits.device_bytes)? {
            if need > available {
                return Err(RequestError::OutOfDeviceMemory { need, available });
            }
        }
        live.slot = self.packed.admit(resume.as_ref())?;
        self.wave.add_request(id)?;
        self.next_id += 1;
        self.live.insert(id, (live, VecDeque::new()));
        self.push_passes(id, passes)?;
        Ok(id)
    }

    /// Ends a generation early: no token is sampled after those already emitted; the passes in flight (the last
    /// emitted token's, or the prompt's) run, and it finishes with [`FinishReason::Ended`] and a state that holds
    /// every emitted token. Ending a request that is already ending changes nothing, nor does ending one that has
    /// finished but whose [`Event::Finished`] has not come yet (its state copy runs: it keeps its reason); a prefill
    /// cannot be ended.
    pub fn end(&mut self, id: RequestId) -> Result<(), RequestError> {
        if let Some((live, _)) = self.live.get_mut(&id) {
            return live.end();
        }
        match self.finishing(id) {
            Some(_) => Ok(()),
            None => Err(RequestError::UnknownRequest(id)),
        }
    }

    /// Whether this request's final state is copied out ([`Event::Finished`]'s `state`), whatever
    /// [`Requests::keep_states`] says for the set. Refused once the request has finished.
    pub fn keep_state(&mut self, id: RequestId, keep: bool) -> Result<(), RequestError> {
        let (live, _) = self.live.get_mut(&id).ok_or(RequestError::UnknownRequest(id))?;
        live.keep_state = Some(keep);
        Ok(())
    }

    /// Drops a request at once: its passes in flight, state and cache are freed, and no more events come for it —
    /// also when it has finished but its [`Event::Finished`] has not come yet (its state copy is then dropped).
    pub fn cancel(&mut self, id: RequestId) -> Result<(), RequestError> {
        if !self.live.contains_key(&id) {
            let f = self.finishing(id).ok_or(RequestError::UnknownRequest(id))?;
            self.finishing[f].cancelled = true;
            return Ok(());
        }
        self.release(id)
    }

    /// Frees a live request's slot, passes and place in the schedule.
    fn release(&mut self, id: RequestId) -> Result<(), RequestError> {
        let (live, _) = self.live.remove(&id).ok_or(RequestError::UnknownRequest(id))?;
        self.wave.remove_request(id)?;
        self.packed.release(live.slot)?;
        Ok(())
    }

    /// The index of a finished request whose [`Event::Finished`] has not come out (and which was not cancelled).
    fn finishing(&self, id: RequestId) -> Option<usize> {
        self.finishing.iter().position(|f| f.id == id && !f.cancelled)
    }

    /// Runs one step of every live request; returns what happened (nothing when no request is live).
    pub fn step(&mut self) -> Result<Vec<Event>, RequestError> {
        let t0 = Instant::now();
        let before = self.phases.state_start + self.phases.state_take;
        let events = self.run_step();
        let states = self.phases.state_start + self.phases.state_take - before;
        self.phases.steps += t0.elapsed().saturating_sub(states);
        events
    }

    fn run_step(&mut self) -> Result<Vec<Event>, RequestError> {
        let tasks = self.wave.next_step();
        if tasks.is_empty() {
            // only state copies left (or nothing)
            return self.take_states(0);
        }
        let mut cells = Vec::with_capacity(tasks.len());
        for t in &tasks {
            let (live, passes) = self
                .live
                .get(&t.request)
                .ok_or(RequestError::UnknownRequest(t.request))?;
            // the wavefront and `passes` drop finished passes together, so their oldest unfinished passes agree
            let first = live.passes_pushed - passes.len();
            let (id, pass) = t
                .pass
                .checked_sub(first)
                .and_then(|i| passes.get(i))
                .ok_or_else(|| RequestError::Invalid(format!("pass {} of request {}", t.pass, t.request)))?;
            cells.push(PassCell {
                id: *id,
                pass,
                layer: t.layer,
            });
        }
        self.occupancy.steps += 1;
        let mut in_step: Vec<RequestId> = tasks.iter().map(|t| t.request).collect();
        in_step.sort_unstable();
        in_step.dedup();
        self.occupancy.request_steps += in_step.len();
        self.occupancy.max_step_requests = self.occupancy.max_step_requests.max(in_step.len());
        for c in &cells {
            match c.pass.rows {
                PassRows::Whole => self.occupancy.whole_cells += 1,
                PassRows::Open { .. } => self.occupancy.open_cells += 1,
            }
        }
        let mut logits = self.packed.step(&cells)?;
        // the states staged in the previous step: their copies ran before this step's launches, which the device runs
        // while the host takes them
        let mut events = self.take_states(0)?;
        let finished = self.wave.complete(&tasks)?;
        for (request, _) in finished {
            let t = self.engine.config().armt.segment_size;
            let entry = self
                .live
                .get_mut(&request)
                .ok_or(RequestError::UnknownRequest(request))?;
            let (pass_id, pass) = entry.1.pop_front().ok_or(RequestError::UnknownRequest(request))?;
            let got = logits
                .iter()
                .position(|l| l.id == pass_id)
                .map(|i| logits.swap_remove(i));
            let outcome = entry.0.pass_done(&pass, got, t);
            events.extend(outcome.events);
            if let Some((reason, segments, open_ids)) = outcome.finished {
                let slot = entry.0.slot;
                match entry.0.keep_state.unwrap_or(self.keep_states) {
                    true => {
                        // a bounded number of copies in flight: take the oldest first when full
                        events.extend(self.take_states(gpu::PackedExecutor::STAGED - 1)?);
                        let t0 = Instant::now();
                        let staged = self.packed.stage_state(slot)?;
                        self.phases.state_start += t0.elapsed();
                        self.finishing.push_back(Finishing {
                            id: request,
                            reason,
                            segments,
                            open_ids,
                            staged,
                            cancelled: false,
                        });
                        self.release(request)?;
                    }
                    false => {
                        self.release(request)?;
                        events.push(Event::Finished {
                            id: request,
                            reason,
                            state: None,
                        });
                    }
                }
            } else {
                self.push_passes(request, outcome.passes)?;
            }
        }
        Ok(events)
    }

    /// Steps until no request is live, handing every event to `on_event`.
    pub fn run_to_end(&mut self, mut on_event: impl FnMut(Event)) -> Result<(), RequestError> {
        while !self.is_idle() {
            self.step()?.into_iter().for_each(&mut on_event);
        }
        Ok(())
    }

    /// The [`Event::Finished`] of the oldest finished requests whose state copies run, until at most `keep` are left
    /// (waits for their copies).
    fn take_states(&mut self, keep: usize) -> Result<Vec<Event>, RequestError> {
        let mut events = Vec::new();
        while self.finishing.len() > keep {
            let f = self.finishing.pop_front().expect("more than `keep`");
            let t0 = Instant::now();
            let state = self.packed.take_state(f.staged)?;
            self.phases.state_take += t0.elapsed();
            if f.cancelled {
                continue;
            }
            events.push(Event::Finished {
                id: f.id,
                reason: f.reason,
                state: Some(SavedState {
                    state,
                    segments: f.segments,
                    open_ids: f.open_ids,
                }),
            });
        }
        Ok(events)
    }

    /// Whether finished requests' states are copied to the host (the default) or dropped ([`Event::Finished`] with
    /// `state: None`), for every request that does not say otherwise ([`Requests::keep_state`]). A kept state's copy starts when the request finishes and is taken in the next step (or the
    /// next call when no pass is left), so the host does not wait for the device when a request finishes: its
    /// [`Event::Finished`] comes one step after its last other event.
    pub fn keep_states(&mut self, keep: bool) {
        self.keep_states = keep;
    }

    /// Whether a greedy token whose logits are not asked for ([`Generate::token_logits`] false) is chosen on the
    /// device, only its id copied out (on a GPU the default, unless `DBRMT_DEVICE_ARGMAX=off`), or from its logits
    /// copied to the host. Both give the same id (the host's argmax); the CPU model always uses the host's.
    pub fn device_argmax(&mut self, on: bool) {
        self.packed.set_device_argmax(on);
    }

    /// Waits for every launch so far (timed as [`Phases::device_wait`]).
    pub fn synchronize(&mut self) -> Result<(), RequestError> {
        let t0 = Instant::now();
        self.packed.synchronize()?;
        self.phases.device_wait += t0.elapsed();
        Ok(())
    }

    /// Host time spent so far, by phase.
    pub fn phases(&self) -> Phases {
        Phases {
            copy_wait: self.packed.copy_wait(),
            ..self.phases
        }
    }

    /// Whether no request is live and every finished request's [`Event::Finished`] is out.
    pub fn is_idle(&self) -> bool {
        self.live.is_empty() && self.finishing.is_empty()
    }

    /// Live requests.
    pub fn live(&self) -> usize {
        self.live.len()
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Steps run and cells per kind so far.
    pub fn occupancy(&self) -> Occupancy {
        self.occupancy
    }

    /// Device bytes the requests' state, caches and step buffers hold (0 on the CPU).
    pub fn device_bytes(&self) -> usize {
        self.packed.device_bytes()
    }

    fn push_passes(&mut self, id: RequestId, passes: Vec<Pass>) -> Result<(), RequestError> {
        let entry = self.live.get_mut(&id).ok_or(RequestError::UnknownRequest(id))?;
        for mut pass in passes {
            pass.request = entry.0.slot;
            let kind = match pass.rows {
                PassRows::Whole => PassKind::Whole,
                PassRows::Open { .. } => PassKind::Open,
            };
            self.wave.push_pass(id, kind)?;
            entry.0.passes_pushed += 1;
            entry.1.push_back((self.next_pass, pass));
            self.next_pass += 1;
        }
        Ok(())
    }
}
