//! Generation on the GPU: the device twin of [`crate::cpu::Session`], with the memory state and a KV cache
//! kept on the device.
//!
//! A session holds the memory after its closed segments and one **open** segment (the last 0..T text tokens),
//! whose rows ran through every layer in generate mode (the read at every layer, no memory rows, no write), their
//! q/k/v rows kept per layer in the workspace's KV cache. Prefilling closes every full segment with the diagonal
//! schedule (a prompt that ends a segment takes its logits from that close: the open segment is then empty, and the
//! segment never runs twice); a pushed token runs as one new open row per layer, attending to the cached rows; when the
//! open segment is full, the next token first closes it (its T text rows and M memory rows run again as whole
//! cells, with the write) and opens a fresh one — so generation has no length limit. A decoded token gets the bits
//! a GPU prefill of the whole text gives at its position: every kernel computes a row the same way whatever rows
//! share its launch (the attention over cached rows included; see `cuda/attention.cu`). A pushed token's whole pass
//! (every layer and the LM head) is a CUDA graph from the second token of its shape on ([`super::graphs`]).

use std::time::Instant;

use cudarc::driver::{CudaEvent, PinnedHostSlice};
use dbrmt_formats::SavedState;
use dbrmt_kernels::switches::{RuntimeSwitch, DECODE_AHEAD};
use dbrmt_kernels::{params::Span, reference::argmax_rows::NON_FINITE};
use dbrmt_schedule::Grid;

use super::graphs::StepShape;
use super::{DeviceState, GpuExecutor, StepCell, Workspace};
use crate::input::{check_ids, full_segments};
use crate::{LogitsMode, ModelError};

/// Marks a session's whole pass among the shapes of captured steps.
const WHOLE_PASS: u64 = u64::MAX;

/// The one logit row a pass leaves (its last row's) as the greedy id's span.
const LAST_ROW: Span = Span {
    in_row: 0,
    out_row: 0,
    rows: 1,
    layer: 0,
    flag: false,
    state: 0,
    pos: 0,
    dynamic: false,
};

/// Greedy generation one pass ahead of the host ([`Session::generate_greedy`]; `DBRMT_DECODE_AHEAD=off`: a push
/// and a wait per token, the same ids and bits).
static DECODE_AHEAD_SWITCH: RuntimeSwitch = RuntimeSwitch::new(DECODE_AHEAD);

/// Whether [`Session::generate_greedy`] runs a pass ahead of the host.
pub fn decode_ahead_enabled() -> bool {
    DECODE_AHEAD_SWITCH.enabled()
}

/// Sets [`decode_ahead_enabled`] for the whole process (tests compare the two).
pub fn set_decode_ahead(on: bool) {
    DECODE_AHEAD_SWITCH.set(on);
}

/// Where the greedy ids of passes run ahead land: two page-locked slots (a pass's and the one after it), each with
/// the event that says its copy is done.
#[derive(Debug)]
struct AheadSlots {
    ids: [PinnedHostSlice<u32>; 2],
    done: [CudaEvent; 2],
}

/// One request's generation on a [`GpuExecutor`].
#[derive(Debug)]
pub struct Session<'e> {
    engine: &'e GpuExecutor,
    ws: Workspace,
    state: DeviceState,
    segments_closed: usize,
    /// Text ids of the open segment; the first `cached` of them have their rows in the KV cache.
    open: Vec<u32>,
    cached: usize,
    /// Logits after the last token (empty before the first, and in greedy-id mode).
    logits: Vec<f32>,
    /// Greedy-id mode ([`Session::set_greedy_ids`]): the next token's id is chosen on the device, no logits copied.
    greedy_ids: bool,
    /// The greedy id after the last token, in greedy-id mode.
    greedy: Option<u32>,
    /// Made at the first [`Session::generate_greedy`] that runs ahead.
    ahead: Option<AheadSlots>,
}

impl GpuExecutor {
    /// A new request on this GPU.
    pub fn session(&self) -> Result<Session<'_>, ModelError> {
        let cfg = &self.model.cfg;
        let (layers, pre_split) = (cfg.llama.num_layers, self.model.memory.read_pre_split);
        let state = DeviceState::zeros(&self.stream, layers, cfg.d_key(), cfg.llama.hidden_size, pre_split)?;
        self.session_with(state, 0, Vec::new())
    }

    /// Continues from a saved state (its shape checked against the model; its open tokens are re-run on the next
    /// [`Session::prefill`] or [`Session::push`]).
    pub fn resume(&self, saved: SavedState) -> Result<Session<'_>, ModelError> {
        let state = self.upload_state(&saved.state)?;
        self.session_with(state, saved.segments, saved.open_ids)
    }

    fn session_with(
        &self,
        state: DeviceState,
        segments_closed: usize,
        open: Vec<u32>,
    ) -> Result<Session<'_>, ModelError> {
        let cfg = &self.model.cfg;
        let layers = cfg.llama.num_layers;
        // a diagonal over any number of segments has at most one cell per layer and one live segment per layer
        let bytes = Workspace::bytes_for(cfg, layers, layers, 1, layers);
        super::executor::check_device(&self.gpu, "a generation session's workspace", bytes)?;
        let ws = Workspace::new(&self.stream, cfg, layers, layers, 1, layers, self.model.projections)?;
        Ok(Session {
            engine: self,
            ws,
            state,
            segments_closed,
            open,
            cached: 0,
            logits: Vec::new(),
            greedy_ids: false,
            greedy: None,
            ahead: None,
        })
    }
}

impl Session<'_> {
    /// The next-token logits (after the last prefilled or pushed token); empty when that token ran in greedy-id mode.
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// From the next prefill or push on, only the greedy id of the next token is computed — `argmax_rows_f32` on the
    /// device, 4 bytes copied to the host ([`Session::argmax`]) — and no logits (unless `DBRMT_DEVICE_ARGMAX=off`,
    /// which keeps copying them; the ids are the same). `false` brings the logits back.
    pub fn set_greedy_ids(&mut self, on: bool) {
        self.greedy_ids = on && crate::sampling::device_argmax_allowed();
    }

    /// The greedy next token: the id chosen on the device in greedy-id mode, else the host's argmax of
    /// [`Session::logits`] — the same id for the same logits.
    pub fn argmax(&self) -> u32 {
        match self.greedy {
            Some(id) => id & !NON_FINITE,
            None => crate::sampling::argmax(&self.logits),
        }
    }

    /// Text tokens run so far: the closed segments' and the open segment's.
    pub fn tokens(&self) -> usize {
        self.segments_closed * self.engine.model.cfg.armt.segment_size + self.open.len()
    }

    /// Segments closed so far (their memory is in the state).
    pub fn segments_closed(&self) -> usize {
        self.segments_closed
    }

    /// Text tokens of the open segment.
    pub fn open_tokens(&self) -> &[u32] {
        &self.open
    }

    /// Pass shapes this session replays as CUDA graphs (a decoded token's whole pass from the second token on, unless
    /// `DBRMT_GRAPHS=off`).
    pub fn captured_graphs(&self) -> usize {
        self.ws.captured_graphs()
    }

    /// Device bytes of the session's workspace (KV cache included) and memory state.
    pub fn device_bytes(&self) -> usize {
        self.ws.bytes() + self.state.bytes()
    }

    /// What a state file needs to continue this session elsewhere (the memory is copied to the host).
    pub fn saved(&self) -> Result<SavedState, ModelError> {
        let layers = self.engine.model.cfg.llama.num_layers;
        Ok(SavedState {
            state: self.state.download(&self.engine.stream, 0, layers)?,
            segments: self.segments_closed,
            open_ids: self.open.clone(),
        })
    }

    /// Appends `ids` (checked against the vocabulary): every full segment is closed through the diagonal schedule;
    /// the rest becomes the open segment, and its last row gives the next-token logits (the last close's last row
    /// when the tokens end a segment).
    pub fn prefill(&mut self, ids: &[u32]) -> Result<(), ModelError> {
        self.prefill_chunked(ids, usize::MAX, |_| {})
    }

    /// As [`Session::prefill`], calling `progress(tokens consumed)` as each full segment's launches are queued and
    /// once at the end. The full segments close in one diagonal run whatever `_segments_per_chunk` says (the CPU
    /// model's runs take that many): a run of a few segments would ramp the diagonal up and down, its first and last
    /// L − 1 steps partly filled (1B, 8 segments a run: 15 of 23 steps). The same bits either way.
    pub fn prefill_chunked(
        &mut self,
        ids: &[u32],
        _segments_per_chunk: usize,
        mut progress: impl FnMut(usize),
    ) -> Result<(), ModelError> {
        let cfg = &self.engine.model.cfg;
        check_ids(ids, cfg.llama.vocab_size)?;
        let t = cfg.armt.segment_size;
        let reopened = self.open.len();
        let mut all = std::mem::take(&mut self.open);
        all.extend_from_slice(ids);
        if all.is_empty() {
            return Err(ModelError::EmptyInput);
        }
        let closing = full_segments(all.len(), t);
        let ends = closing * t == all.len();
        if closing > 0 {
            self.close_reporting(&all[..closing * t], closing, ends, &mut |segments| {
                progress((segments * t).saturating_sub(reopened))
            })?;
        }
        if ends {
            // the tokens ended a segment: its close gave the logits, and the next token opens a fresh one
            // (the last close reported every new token to `progress`)
            self.open.clear();
            self.cached = 0;
            return Ok(());
        }
        if closing > 0 || self.cached != reopened {
            // new segment, or a resumed one whose cache is not built: run its rows from position 0
            self.cached = 0;
        }
        self.open = all[closing * t..].to_vec();
        // with nothing new, the last row runs again (same bits into the same cache rows) for its logits
        let from = self.cached.min(self.open.len() - 1);
        self.run_open_rows(from)?;
        progress(ids.len());
        Ok(())
    }

    /// Appends one token and computes the logits after it. A full open segment is closed first.
    pub fn push(&mut self, id: u32) -> Result<&[f32], ModelError> {
        check_ids(&[id], self.engine.model.cfg.llama.vocab_size)?;
        let from = self.admit(id)?;
        self.run_open_rows(from)?;
        Ok(&self.logits)
    }

    /// Appends token `id` to the open segment, closing a full one first; returns the position of the first row not
    /// cached yet (all of a resumed segment's, else the new one's), from which its pass runs.
    fn admit(&mut self, id: u32) -> Result<usize, ModelError> {
        if self.open.len() == self.engine.model.cfg.armt.segment_size {
            let full = std::mem::take(&mut self.open);
            self.close_reporting(&full, 1, false, &mut |_| {})?;
            self.cached = 0;
        }
        self.open.push(id);
        Ok(self.cached.min(self.open.len() - 1))
    }

    /// Whether [`Session::generate_greedy_ahead`] may run: greedy-id mode and `DBRMT_DECODE_AHEAD` on.
    pub(crate) fn runs_ahead(&self) -> bool {
        self.greedy_ids && decode_ahead_enabled()
    }

    /// [`crate::Session::generate_greedy`] one pass ahead of the host (`max_new_tokens` ≥ 1, greedy-id mode: see
    /// [`Session::runs_ahead`]): each pass takes its token id from the pass before on the device
    /// (`Workspace::ids_from_greedy`), so the next pass is launched before the host has read the id, and the device
    /// never waits for the host between tokens. A pass run ahead for an id `keep` then refuses is undone (its KV cache
    /// row is left to be overwritten); no pass runs ahead across a segment's end, which writes the memory. The same
    /// ids, state and bits as the loop of pushes (`gpu_engine::greedy_decode_ahead_changes_no_bit`).
    pub(crate) fn generate_greedy_ahead<E: From<ModelError>>(
        &mut self,
        max_new_tokens: usize,
        mut keep: impl FnMut(u32) -> Result<bool, E>,
    ) -> Result<usize, E> {
        let first = self.next_greedy()?;
        if !keep(first)? || max_new_tokens == 1 {
            return Ok(0);
        }
        let t = self.engine.model.cfg.armt.segment_size;
        let mut slot = 0;
        self.enqueue_greedy(Some(first), slot)?;
        let mut emitted = 1;
        loop {
            // the pass in flight makes id number emitted + 1; run the pass of that id now if, kept, it will be pushed
            // and its push closes no segment
            let ahead = emitted + 1 < max_new_tokens && self.open.len() < t;
            if ahead {
                self.enqueue_greedy(None, 1 - slot)?;
            }
            let kept = match self.read_greedy(slot) {
                Ok(id) => keep(id),
                Err(err) => Err(err.into()),
            };
            let kept = match kept {
                Ok(kept) => kept,
                Err(err) => {
                    self.undo_ahead(ahead);
                    return Err(err);
                }
            };
            if !kept {
                self.undo_ahead(ahead);
                return Ok(emitted);
            }
            emitted += 1;
            if emitted == max_new_tokens {
                return Ok(emitted - 1);
            }
            let id = self.argmax();
            if ahead {
                // the pass run ahead is confirmed: its token is this id
                *self.open.last_mut().expect("the pass run ahead pushed its token") = id;
            } else {
                self.enqueue_greedy(Some(id), 1 - slot)?;
            }
            slot = 1 - slot;
        }
    }

    /// The greedy id after the last token ([`Session::argmax`]): the device's, or the host's argmax of the logits; an
    /// error when the logits behind it were not all finite, or when nothing has run yet.
    pub(crate) fn next_greedy(&self) -> Result<u32, ModelError> {
        match self.greedy {
            Some(id) if id & NON_FINITE != 0 => Err(ModelError::NonFiniteLogits { tokens: self.tokens() }),
            Some(id) => Ok(id),
            None => crate::session::greedy_of_logits(&self.logits, self.tokens()),
        }
    }

    /// Launches the pass of one pushed token — its id `Some` from the host, or `None`: the greedy id of the pass
    /// before, still on the device — then its greedy id and that id's copy into page-locked slot `slot`, and records
    /// the slot's event; does not wait. A host id may close the full open segment first; a device id may not.
    fn enqueue_greedy(&mut self, id: Option<u32>, slot: usize) -> Result<(), ModelError> {
        let e = self.engine;
        let v = e.model.cfg.llama.vocab_size;
        let from = match id {
            Some(id) => {
                check_ids(&[id], v)?;
                let from = self.admit(id)?;
                self.ws.set_ids(&e.stream, &self.open[from..])?;
                from
            }
            None => {
                if self.open.len() == e.model.cfg.armt.segment_size || self.cached != self.open.len() {
                    return Err(ModelError::InvalidInput(
                        "a pass run ahead must be one new row of an open segment with room for it".into(),
                    ));
                }
                // a placeholder until the host reads the id
                self.open.push(u32::MAX);
                self.ws.ids_from_greedy(&e.stream)?;
                self.cached
            }
        };
        self.launch_open_rows(from)?;
        self.ws.launch_greedy_ids(&e.gpu, &e.stream, &[LAST_ROW], v)?;
        if self.ahead.is_none() {
            let pinned = || -> Result<PinnedHostSlice<u32>, ModelError> {
                // SAFETY: cuMemHostAlloc (flags 0: page-locked, cached) of one u32, written by the device's copy
                // below before the host reads it (after the slot's event), and every bit pattern is a valid u32.
                Ok(unsafe { e.stream.context().alloc_pinned_with_flags::<u32>(1, 0) }?)
            };
            let ctx = e.stream.context();
            self.ahead = Some(AheadSlots {
                ids: [pinned()?, pinned()?],
                done: [ctx.new_event(None)?, ctx.new_event(None)?],
            });
        }
        let ahead = self.ahead.as_mut().expect("just made");
        // the slot's previous copy is done (its event was waited for before this slot came round again)
        e.stream
            .memcpy_dtoh(&self.ws.argmax.slice(..1), ahead.ids[slot].as_mut_slice()?)?;
        ahead.done[slot].record(&e.stream)?;
        self.logits.clear();
        Ok(())
    }

    /// Waits for the greedy id of the pass that copies into slot `slot`, reads it into [`Session::argmax`] and
    /// returns it ([`Session::next_greedy`]: an error when its logits were not all finite).
    fn read_greedy(&mut self, slot: usize) -> Result<u32, ModelError> {
        let ahead = self
            .ahead
            .as_mut()
            .ok_or_else(|| ModelError::InvalidInput("no greedy pass was launched".into()))?;
        let t0 = Instant::now();
        ahead.done[slot].synchronize()?;
        self.ws.add_copy_wait(t0.elapsed());
        self.greedy = Some(ahead.ids[slot].as_slice()?[0]);
        self.next_greedy()
    }

    /// Undoes the bookkeeping of the pass run ahead (`ran`), whose id the host refused: its token leaves the open
    /// segment. The device's work stays queued (it wrote only that token's KV cache rows, past the open segment now,
    /// and greedy ids the session no longer reads).
    fn undo_ahead(&mut self, ran: bool) {
        if ran {
            self.open.pop();
            self.cached = self.open.len();
        }
    }

    /// Closes `segments` full segments of `ids` through whole cells (diagonal schedule), from the device state.
    /// With `last`, the last row's logits become the session's (a prefill whose tokens end a segment; copied to the
    /// host once, greedy-id mode or not).
    fn close_reporting(
        &mut self,
        ids: &[u32],
        segments: usize,
        last: bool,
        progress: &mut dyn FnMut(usize),
    ) -> Result<(), ModelError> {
        let layers = self.engine.model.cfg.llama.num_layers;
        let schedule = Grid::new(layers, segments).diagonal();
        let (logits, _) = self.engine.run(
            &mut self.ws,
            &mut self.state,
            ids,
            &schedule,
            self.segments_closed,
            if last { LogitsMode::Last } else { LogitsMode::None },
            false,
            progress,
        )?;
        self.segments_closed += segments;
        if last {
            self.logits = logits;
            self.greedy = None;
        }
        Ok(())
    }

    /// Runs the open segment's rows from position `from` on through every layer (their q/k/v rows join the cache),
    /// then the final norm and LM head of the last row.
    fn run_open_rows(&mut self, from: usize) -> Result<(), ModelError> {
        let e = self.engine;
        self.ws.set_ids(&e.stream, &self.open[from..])?;
        self.launch_open_rows(from)?;
        let v = e.model.cfg.llama.vocab_size;
        if self.greedy_ids {
            self.greedy = Some(self.ws.greedy_ids(&e.gpu, &e.stream, &[LAST_ROW], v)?[0]);
            self.logits.clear();
        } else {
            self.greedy = None;
            self.ws.logits_into(&e.stream, v, &mut self.logits)?;
        }
        Ok(())
    }

    /// Launches the open segment's rows from position `from` on (their ids already in the workspace) through every
    /// layer, then the final norm and the LM head of the last row, without waiting for them.
    fn launch_open_rows(&mut self, from: usize) -> Result<(), ModelError> {
        let e = self.engine;
        let cfg = &e.model.cfg;
        let n = self.open.len() - from;
        // every layer's new rows start at `from`: one upload of the positions for the whole pass
        self.ws
            .set_positions(&e.stream, (0..cfg.llama.num_layers).map(|layer| (layer, from)))?;
        let cells: Vec<StepCell> = (0..cfg.llama.num_layers)
            .map(|layer| StepCell {
                layer,
                state: layer,
                slot: 0,
                text_rows: n,
                first_segment: self.segments_closed == 0,
                enters_at_token: (layer == 0).then_some(0),
                open_at: Some(from),
            })
            .collect();
        // a decode token's pass, from its second time on, is one graph (positions read on the device)
        let shape = StepShape::of(&cells, || {
            let mut buffers = e.model.step_buffers(&e.stream, &self.ws, &self.state);
            buffers
                .add(&self.ws.final_hidden)
                .add(&self.ws.logits)
                .add_raw(WHOLE_PASS);
            buffers.into_inner()
        });
        // the whole pass: every layer's step, then the final norm and the LM head of its last row
        self.ws.launch_or_replay(&e.stream, shape, &mut self.state, |ws, st| {
            for cell in &cells {
                e.model
                    .step_launches(&e.gpu, &e.stream, ws, st, std::slice::from_ref(cell))?;
            }
            e.model
                .finish(&e.gpu, &e.stream, ws, 0, n, LogitsMode::Last)
                .map(|_| ())
        })?;
        self.cached = self.open.len();
        Ok(())
    }
}
