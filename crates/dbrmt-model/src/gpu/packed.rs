//! Several requests in one stream of steps on the GPU (the twin of `cpu/packed.rs`).
//!
//! Every request holds a **request slot**: its memory states `r·L .. (r+1)·L` in one [`DeviceState`] and the KV caches
//! of the same state indices in the workspace (the kernels take one buffer per operand, so the requests' states and
//! caches are rows of shared buffers, told apart by each cell's state index). Every pass in flight holds a hidden slot
//! from its entry at layer 0 until it leaves the top layer. A step's cells become [`StepCell`]s of one
//! [`GpuModel::step`] — whole segments and open rows of many requests in the same grouped launches — and the passes
//! leaving the top layer get their logits in one [`GpuModel::finish_many`] (a pass that wants only its greedy token gets
//! the id, chosen on the device). Each cell is the cell the
//! single-request paths run (the same rows, layer, flags and positions; only its buffer rows differ), and no kernel's
//! arithmetic for a cell depends on the other cells of its launch or on where its rows lie, so each request gets the
//! bits it gets alone.
//!
//! Slots are pooled: a finished request's slot is free for the next at once. The pool is sized up front for the
//! requests the caller expects ([`PackedExecutor::reserve`]: no allocation while requests come and go); past that it
//! grows (by doubling, contents copied) when every slot is taken, and gives the grown part back when no request is
//! live. A request's state is copied to the host only when asked, through page-locked staging buffers, either at once
//! ([`PackedExecutor::state`]) or started after the launches so far and taken later
//! ([`PackedExecutor::stage_state`], [`PackedExecutor::take_state`]: the host need not wait for the device).

use std::collections::{HashMap, HashSet};

use cudarc::driver::{CudaEvent, PinnedHostSlice};
use dbrmt_formats::state::LayerState;
use dbrmt_formats::MemoryState;
use dbrmt_kernels::armt_state_split::split_len;

use super::{DeviceState, Finishing, GpuExecutor, Projections, StepCell, Workspace, WorkspaceShape};
use crate::packed::{check_cell, PassCell, PassId, PassLogits, PassRows};
use crate::{LogitsMode, ModelError};

/// Rows of open segments a step's scratch holds beside `L` whole segments (decode rows of many requests; more are
/// run in further chunks of the step).
const OPEN_ROWS: usize = 256;

/// The live requests of a packed run on one GPU.
#[derive(Debug)]
pub struct PackedExecutor<'e> {
    engine: &'e GpuExecutor,
    ws: Workspace,
    /// `capacity · L` memory states.
    state: DeviceState,
    /// Per request slot: live, and the rows each layer's KV cache holds.
    slots: Vec<Option<Vec<usize>>>,
    /// The hidden slot and request slot of each pass in flight.
    hidden: HashMap<PassId, (usize, usize)>,
    free_hidden: Vec<usize>,
    /// Request slots sized up front ([`PackedExecutor::reserve`]): the pool is kept when no request is live.
    reserved: usize,
    /// Page-locked host buffers of one request's `A` and `z` each, allocated as states are copied out (at most
    /// [`PackedExecutor::STAGED`]), and the event after the copy each holds that is not yet taken
    /// ([`PackedExecutor::take_state`]).
    staging: Vec<(Staging, Option<CudaEvent>)>,
    /// Whether passes that want only the greedy id of their last row get it from the device
    /// ([`PackedExecutor::set_device_argmax`]).
    device_argmax: bool,
}

/// One request's `A` and `z` on the host, page-locked.
type Staging = (PinnedHostSlice<f32>, PinnedHostSlice<f32>);

impl Drop for PackedExecutor<'_> {
    /// Page-locked buffers are freed only once the copies into them are done (their own wait is a no-op in a context
    /// that tracks no events).
    fn drop(&mut self) {
        for (_, copy) in &self.staging {
            if let Some(done) = copy {
                // an error here is the device's, reported by the next call on the stream
                let _ = done.synchronize();
            }
        }
    }
}

impl GpuExecutor {
    /// An empty packed run on this GPU: the step scratch for `L` whole segments and some open rows; request slots
    /// are allocated as requests are admitted.
    pub fn packed(&self) -> Result<PackedExecutor<'_>, ModelError> {
        let cfg = &self.model.cfg;
        let layers = cfg.llama.num_layers;
        let shape = WorkspaceShape {
            max_cells: layers,
            scratch_rows: layers * cfg.segment_rows() + OPEN_ROWS.max(cfg.armt.segment_size),
            slots: layers + 1,
            logit_rows: 64,
            final_rows: 64,
            cache_states: 0,
        };
        let ws = Workspace::with_shape(&self.stream, cfg, shape, self.model.projections)?;
        let pre_split = self.model.memory.read_pre_split;
        let state = DeviceState::zeros(&self.stream, 0, cfg.d_key(), cfg.llama.hidden_size, pre_split)?;
        Ok(PackedExecutor {
            engine: self,
            free_hidden: (0..ws.slots).rev().collect(),
            ws,
            state,
            slots: Vec::new(),
            hidden: HashMap::new(),
            reserved: 0,
            staging: Vec::new(),
            device_argmax: crate::sampling::device_argmax_allowed(),
        })
    }
}

impl PackedExecutor<'_> {
    /// Device memory kept free for the driver and the step's transient needs when admitting a request.
    pub const RESERVE_BYTES: usize = 1 << 30;

    fn layers(&self) -> usize {
        self.engine.model.cfg.llama.num_layers
    }

    /// Device bytes of one request slot: its memory states (and their split form for the pre-split read), its KV
    /// caches and one hidden slot (f32, and its bf16 copy with the v2 projections).
    pub fn bytes_per_request(&self) -> usize {
        let cfg = &self.engine.model.cfg;
        let (l, d, dk) = (cfg.llama.num_layers, cfg.llama.hidden_size, cfg.d_key());
        let qkv = cfg.llama.q_dim() + 2 * cfg.llama.kv_dim();
        let split = if self.engine.model.memory.read_pre_split {
            split_len(l, dk, d)
        } else {
            0
        };
        let hidden = if self.engine.model.projections == Projections::Sm90 {
            6
        } else {
            4
        };
        (l * (dk * d + dk) + split) * 4 + l * cfg.armt.segment_size * qkv * 2 + cfg.segment_rows() * d * hidden
    }

    /// Device bytes admitting one more request takes: nothing while a slot is free, else the grown pool (the old
    /// one is freed after its contents are copied, so the new one must fit beside it).
    pub fn bytes_to_admit(&self) -> usize {
        match self.slots.iter().any(Option::is_none) {
            true => 0,
            false => (self.slots.len() * 2).max(1) * self.bytes_per_request(),
        }
    }

    /// Device bytes held: the workspace, the states and caches.
    pub fn device_bytes(&self) -> usize {
        self.ws.bytes() + self.state.bytes()
    }

    /// Free device memory (cuMemGetInfo).
    pub fn free_device_bytes(&self) -> Result<usize, ModelError> {
        Ok(self.engine.gpu.context().mem_get_info()?.0)
    }

    /// Whether a pass that wants only the greedy id of its last row ([`Pass::argmax`](crate::packed::Pass::argmax))
    /// gets it from the device (`argmax_rows_f32`: 4 bytes copied out instead of the vocabulary's logits) — the
    /// default, unless `DBRMT_DEVICE_ARGMAX=off` — or gets its logits, for the host's argmax (to compare the two).
    pub fn set_device_argmax(&mut self, on: bool) {
        self.device_argmax = on;
    }

    pub fn device_argmax(&self) -> bool {
        self.device_argmax
    }

    /// Requests holding a slot.
    pub fn live(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// Sizes the pool for `requests` live requests at once (request slots, their states and KV caches, a hidden
    /// slot each) now, so that admitting and finishing them allocates nothing; kept while the executor lives.
    pub fn reserve(&mut self, requests: usize) -> Result<(), ModelError> {
        if requests > self.slots.len() {
            self.grow(requests)?;
        }
        self.reserved = self.reserved.max(requests);
        Ok(())
    }

    /// Takes a request slot, its memory set to `state` (checked against the model) or zeros.
    pub fn admit(&mut self, state: Option<&MemoryState>) -> Result<usize, ModelError> {
        let (cfg, stream) = (&self.engine.model.cfg, &self.engine.stream);
        let (layers, dk, d) = (cfg.llama.num_layers, cfg.d_key(), cfg.llama.hidden_size);
        if let Some(s) = state {
            s.check_shape(layers, dk, d)?;
        }
        let slot = match self.slots.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                let first_new = self.slots.len();
                self.grow((first_new * 2).max(1))?;
                first_new
            }
        };
        let (a_len, z_len) = (layers * dk * d, layers * dk);
        let (a, z) = (slot * a_len..(slot + 1) * a_len, slot * z_len..(slot + 1) * z_len);
        match state {
            None => {
                stream.memset_zeros(&mut self.state.a.slice_mut(a))?;
                stream.memset_zeros(&mut self.state.z.slice_mut(z))?;
                if let Some(split) = self.state.split.as_mut() {
                    // zeros split to zeros
                    let per = split_len(layers, dk, d);
                    stream.memset_zeros(&mut split.slice_mut(slot * per..(slot + 1) * per))?;
                }
            }
            Some(s) => {
                let host_a: Vec<f32> = s.layers.iter().flat_map(|l| l.a.iter().copied()).collect();
                let host_z: Vec<f32> = s.layers.iter().flat_map(|l| l.z.iter().copied()).collect();
                stream.memcpy_htod(&host_a, &mut self.state.a.slice_mut(a))?;
                stream.memcpy_htod(&host_z, &mut self.state.z.slice_mut(z))?;
                let states: Vec<usize> = (slot * layers..(slot + 1) * layers).collect();
                self.state.derive_split(&self.engine.gpu, stream, &states)?;
            }
        }
        self.slots[slot] = Some(vec![0; layers]);
        Ok(slot)
    }

    /// Grows the pool to `capacity` request slots: states and caches copied to the same rows, one more hidden slot
    /// per request slot.
    fn grow(&mut self, capacity: usize) -> Result<(), ModelError> {
        let (cfg, stream) = (&self.engine.model.cfg, &self.engine.stream);
        let layers = cfg.llama.num_layers;
        let pre_split = self.engine.model.memory.read_pre_split;
        let mut state = DeviceState::zeros(stream, capacity * layers, cfg.d_key(), cfg.llama.hidden_size, pre_split)?;
        if self.state.states > 0 {
            stream.memcpy_dtod(&self.state.a, &mut state.a.slice_mut(..self.state.a.len()))?;
            stream.memcpy_dtod(&self.state.z, &mut state.z.slice_mut(..self.state.z.len()))?;
            if let (Some(old), Some(new)) = (self.state.split.as_ref(), state.split.as_mut()) {
                stream.memcpy_dtod(old, &mut new.slice_mut(..old.len()))?;
            }
        }
        self.state = state;
        // one open pass in flight per request beside the whole segments of the layers
        let hidden = self.ws.slots.max(layers + 1 + capacity);
        self.free_hidden.extend((self.ws.slots..hidden).rev());
        self.ws.grow(stream, cfg, hidden, capacity * layers)?;
        self.slots.resize(capacity, None);
        Ok(())
    }

    /// Frees a request slot (for the next request at once) and the hidden slots of its passes in flight; with no
    /// request left, the pool's states and caches go back to the device.
    pub fn release(&mut self, request: usize) -> Result<(), ModelError> {
        self.check_live(request)?;
        self.slots[request] = None;
        let free = &mut self.free_hidden;
        self.hidden.retain(|_, &mut (r, h)| {
            if r == request {
                free.push(h);
            }
            r != request
        });
        if self.live() == 0 && self.slots.len() > self.reserved {
            let (cfg, stream) = (&self.engine.model.cfg, &self.engine.stream);
            let pre_split = self.engine.model.memory.read_pre_split;
            self.state = DeviceState::zeros(stream, 0, cfg.d_key(), cfg.llama.hidden_size, pre_split)?;
            self.ws.drop_caches(stream, cfg)?;
            self.slots.clear();
            let reserved = std::mem::take(&mut self.reserved);
            self.reserve(reserved)?;
        }
        Ok(())
    }

    /// Host time spent waiting for the device before the copies of logits or greedy ids out of the steps so far
    /// ([`Workspace::copy_wait`]).
    pub fn copy_wait(&self) -> std::time::Duration {
        self.ws.copy_wait
    }

    /// Waits for every launch so far to finish.
    pub fn synchronize(&self) -> Result<(), ModelError> {
        Ok(self.engine.stream.synchronize()?)
    }

    /// States copied out at once at most ([`PackedExecutor::stage_state`]): page-locked buffers of one request's state
    /// each.
    pub const STAGED: usize = 4;

    /// A request's memory state, copied to the host (waits for the launches before it).
    pub fn state(&mut self, request: usize) -> Result<MemoryState, ModelError> {
        let staged = self.stage_state(request)?;
        self.take_state(staged)
    }

    /// Starts copying a request's memory state to a page-locked host buffer, after the launches so far, and returns
    /// the buffer's index for [`PackedExecutor::take_state`]; nothing waits. The request's slot may be released and
    /// reused at once (later launches run after the copy). Refused when [`PackedExecutor::STAGED`] copies are not
    /// yet taken.
    pub fn stage_state(&mut self, request: usize) -> Result<usize, ModelError> {
        self.check_live(request)?;
        let (layers, stream) = (self.layers(), &self.engine.stream);
        let (dk, d) = (self.state.d_key, self.state.hidden);
        let (a_len, z_len) = (layers * dk * d, layers * dk);
        let free = match self.staging.iter().position(|(_, copy)| copy.is_none()) {
            Some(free) => free,
            None if self.staging.len() < Self::STAGED => {
                let ctx = self.engine.gpu.context();
                let pinned = |len: usize| -> Result<PinnedHostSlice<f32>, ModelError> {
                    // SAFETY: cuMemHostAlloc (flags 0: page-locked, cached, read by the host) of `len` f32; filled
                    // with zeros below before anything reads it, and every bit pattern is a valid f32.
                    let mut buf = unsafe { ctx.alloc_pinned_with_flags::<f32>(len, 0) }?;
                    buf.as_mut_slice()?.fill(0.0);
                    Ok(buf)
                };
                self.staging.push(((pinned(a_len)?, pinned(z_len)?), None));
                self.staging.len() - 1
            }
            None => {
                return Err(ModelError::InvalidInput(format!(
                    "{} state copies not yet taken",
                    Self::STAGED
                )))
            }
        };
        let ((host_a, host_z), copy) = &mut self.staging[free];
        stream.memcpy_dtoh(&self.state.a.slice(request * a_len..(request + 1) * a_len), host_a)?;
        stream.memcpy_dtoh(&self.state.z.slice(request * z_len..(request + 1) * z_len), host_z)?;
        // the engine's context tracks no events (`Gpu` disables it): the copies' end is this event
        *copy = Some(stream.record_event(None)?);
        Ok(free)
    }

    /// The state a [`PackedExecutor::stage_state`] copy holds, once the copy is done (waits for it); its buffer is
    /// free again.
    pub fn take_state(&mut self, staged: usize) -> Result<MemoryState, ModelError> {
        let (dk, d) = (self.state.d_key, self.state.hidden);
        let ((host_a, host_z), copy) = self
            .staging
            .get_mut(staged)
            .filter(|(_, copy)| copy.is_some())
            .ok_or_else(|| ModelError::InvalidInput(format!("no state copy {staged}")))?;
        copy.take().expect("filtered").synchronize()?;
        let (a, z) = (host_a.as_slice()?, host_z.as_slice()?);
        let layers = a
            .chunks_exact(dk * d)
            .zip(z.chunks_exact(dk))
            .map(|(a, z)| LayerState {
                a: a.to_vec(),
                z: z.to_vec(),
            })
            .collect();
        Ok(MemoryState {
            d_key: dk,
            hidden: d,
            layers,
        })
    }

    fn check_live(&self, request: usize) -> Result<&Vec<usize>, ModelError> {
        self.slots
            .get(request)
            .and_then(Option::as_ref)
            .ok_or_else(|| ModelError::InvalidInput(format!("no live request in slot {request}")))
    }

    /// Runs one step: every cell's layer in one [`GpuModel::step`](super::GpuModel::step); passes leaving the top
    /// layer return their logits (if they ask for any). Every cell is checked before any runs.
    pub fn step(&mut self, cells: &[PassCell<'_>]) -> Result<Vec<PassLogits>, ModelError> {
        self.check_step(cells)?;
        let e = self.engine;
        let (cfg, stream) = (&e.model.cfg, &e.stream);
        let layers = cfg.llama.num_layers;
        // hidden slots for the passes entering layer 0 (grown, contents kept, if the pool is short)
        let entering = cells.iter().filter(|c| c.layer == 0).count();
        if entering > self.free_hidden.len() {
            let slots = self.ws.slots + entering - self.free_hidden.len();
            self.free_hidden.extend((self.ws.slots..slots).rev());
            self.ws.grow(stream, cfg, slots, self.ws.cache_states)?;
        }
        // the entering passes' ids, one after another
        let mut ids = Vec::new();
        let mut steps = Vec::with_capacity(cells.len());
        for c in cells {
            let p = c.pass;
            let (enters_at_token, slot) = if c.layer == 0 {
                let slot = self.free_hidden.pop().expect("hidden slots just ensured");
                self.hidden.insert(c.id, (p.request, slot));
                ids.extend_from_slice(&p.tokens);
                (Some(ids.len() - p.tokens.len()), slot)
            } else {
                (None, self.hidden[&c.id].1)
            };
            steps.push(StepCell {
                layer: c.layer,
                state: p.request * layers + c.layer,
                slot,
                text_rows: p.tokens.len(),
                first_segment: p.first_segment,
                enters_at_token,
                open_at: match p.rows {
                    PassRows::Whole => None,
                    PassRows::Open { at } => Some(at),
                },
            });
        }
        if !ids.is_empty() {
            self.ws.set_ids(stream, &ids)?;
        }
        // an open pass entering at `at` runs next at that position on every layer whose cache holds `at` rows (all of
        // them but where an earlier open pass is still on its way up): their positions now, one upload for the pass
        // rather than one per layer's step
        let mut positions = Vec::new();
        for c in cells.iter().filter(|c| c.layer == 0) {
            if let PassRows::Open { at } = c.pass.rows {
                let held = self.slots[c.pass.request].as_ref().expect("checked live");
                let ready = held.iter().enumerate().filter(|&(_, &h)| h == at);
                positions.extend(ready.map(|(l, _)| (c.pass.request * layers + l, at)));
            }
        }
        self.ws.set_positions(stream, positions)?;
        e.model.step(&e.gpu, stream, &mut self.ws, &mut self.state, &steps)?;
        for c in cells {
            if let PassRows::Open { at } = c.pass.rows {
                self.slots[c.pass.request].as_mut().expect("checked live")[c.layer] = at + c.pass.tokens.len();
            }
        }
        // the passes leaving the top layer: their logits, then their hidden slots are free
        let top: Vec<(usize, Finishing)> = cells
            .iter()
            .zip(&steps)
            .enumerate()
            .filter(|(_, (c, _))| c.layer + 1 == layers)
            .map(|(i, (c, s))| {
                let f = Finishing {
                    slot: s.slot,
                    text_rows: s.text_rows,
                    logits: c.pass.logits,
                    argmax: c.pass.argmax && self.device_argmax,
                };
                (i, f)
            })
            .collect();
        let most = top.iter().map(|(_, f)| f.logit_rows().1).max().unwrap_or(0);
        self.ws.ensure_finish_rows(stream, cfg, most)?;
        let items: Vec<Finishing> = top.iter().map(|(_, f)| *f).collect();
        let logits = e.model.finish_many(&e.gpu, stream, &mut self.ws, &items)?;
        let mut out = Vec::new();
        for ((i, f), (logits, argmax)) in top.iter().zip(logits) {
            let c = &cells[*i];
            if let Some((_, slot)) = self.hidden.remove(&c.id) {
                self.free_hidden.push(slot);
            }
            if f.logits != LogitsMode::None {
                out.push(PassLogits {
                    id: c.id,
                    rows: f.logit_rows().1,
                    logits,
                    argmax,
                });
            }
        }
        Ok(out)
    }

    /// Every cell valid: a live request, its rows where the previous layer left them, no two cells on one request's
    /// layer, an open pass's cache holding exactly the rows before it, ids in the vocabulary.
    fn check_step(&self, cells: &[PassCell<'_>]) -> Result<(), ModelError> {
        let cfg = &self.engine.model.cfg;
        let layers = cfg.llama.num_layers;
        let (mut layers_seen, mut passes_seen) = (HashSet::new(), HashSet::new());
        for c in cells {
            check_cell(c, layers, cfg.armt.segment_size)?;
            crate::input::check_ids(&c.pass.tokens, cfg.llama.vocab_size)?;
            let cached = self.check_live(c.pass.request)?;
            let bad = |msg: &str| {
                Err(ModelError::InvalidInput(format!(
                    "pass {} at layer {}: {msg}",
                    c.id, c.layer
                )))
            };
            if !layers_seen.insert((c.pass.request, c.layer)) || !passes_seen.insert(c.id) {
                return bad("a request's layer, or a pass, twice in one step");
            }
            match self.hidden.get(&c.id) {
                Some(&(r, _)) if c.layer > 0 && r == c.pass.request => {}
                None if c.layer == 0 => {}
                _ => return bad("its rows are not where the previous layer left them"),
            }
            if let PassRows::Open { at } = c.pass.rows {
                if at > 0 && cached[c.layer] != at {
                    return bad("the KV cache does not hold the rows before it");
                }
            }
        }
        Ok(())
    }
}
