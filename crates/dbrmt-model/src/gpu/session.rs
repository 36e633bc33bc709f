//! Generation on the GPU: the device twin of [`crate::cpu::Session`], with the memory state and a KV cache
//! kept on the device.
//!
//! A session holds the memory after its closed segments and one **open** segment (the last 1..=T text tokens),
//! whose rows ran through every layer in generate mode (the read at every layer, no memory rows, no write), their
//! q/k/v rows kept per layer in the workspace's KV cache. Prefilling closes every full segment but the last with
//! the diagonal schedule; a pushed token runs as one new open row per layer, attending to the cached rows; when the
//! open segment is full, the next token first closes it (its T text rows and M memory rows run again as whole
//! cells, with the write) and opens a fresh one — so generation has no length limit. A decoded token gets the bits
//! a GPU prefill of the whole text gives at its position: every kernel computes a row the same way whatever rows
//! share its launch (the attention over cached rows included; see `cuda/attention.cu`). A pushed token's whole pass
//! (every layer and the LM head) is a CUDA graph from the second token of its shape on ([`super::graphs`]).

use dbrmt_formats::SavedState;
use dbrmt_kernels::{params::Span, reference::argmax_rows::NON_FINITE};
use dbrmt_schedule::Grid;

use super::graphs::StepShape;
use super::{DeviceState, GpuExecutor, StepCell, Workspace};
use crate::input::{check_ids, close_full_segments};
use crate::{LogitsMode, ModelError};

/// Marks a session's whole pass among the shapes of captured steps.
const WHOLE_PASS: u64 = u64::MAX;

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

    /// Whether the logits of the greedy id chosen on the device were all finite (`argmax_rows_f32` flags a row with a
    /// NaN or an infinity); true when the logits came to the host (the caller checks those).
    pub fn greedy_logits_finite(&self) -> bool {
        self.greedy.is_none_or(|id| id & NON_FINITE == 0)
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

    /// Appends `ids` (checked against the vocabulary): every full segment but the last is closed through the
    /// diagonal schedule; the rest becomes the open segment, and its last row gives the next-token logits.
    pub fn prefill(&mut self, ids: &[u32]) -> Result<(), ModelError> {
        self.prefill_chunked(ids, usize::MAX, |_| {})
    }

    /// As [`Session::prefill`], closing at most `segments_per_chunk` segments per diagonal run and calling
    /// `progress(tokens consumed)` after each — the same bits as one run.
    pub fn prefill_chunked(
        &mut self,
        ids: &[u32],
        segments_per_chunk: usize,
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
        let closing = close_full_segments(
            &all,
            t,
            segments_per_chunk,
            reopened,
            |ids, n| self.close(ids, n),
            &mut progress,
        )?;
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
        let t = self.engine.model.cfg.armt.segment_size;
        check_ids(&[id], self.engine.model.cfg.llama.vocab_size)?;
        if self.open.len() == t {
            let full = std::mem::take(&mut self.open);
            self.close(&full, 1)?;
            self.cached = 0;
        }
        self.open.push(id);
        // rows not cached yet (all of a resumed segment's, else the new one)
        let from = self.cached.min(self.open.len() - 1);
        self.run_open_rows(from)?;
        Ok(&self.logits)
    }

    /// Closes `segments` full segments of `ids` through whole cells (diagonal schedule), from the device state.
    fn close(&mut self, ids: &[u32], segments: usize) -> Result<(), ModelError> {
        let layers = self.engine.model.cfg.llama.num_layers;
        let schedule = Grid::new(layers, segments).diagonal();
        self.engine.run(
            &mut self.ws,
            &mut self.state,
            ids,
            &schedule,
            self.segments_closed,
            LogitsMode::None,
            false,
        )?;
        self.segments_closed += segments;
        Ok(())
    }

    /// Runs the open segment's rows from position `from` on through every layer (their q/k/v rows join the cache),
    /// then the final norm and LM head of the last row.
    fn run_open_rows(&mut self, from: usize) -> Result<(), ModelError> {
        let e = self.engine;
        let cfg = &e.model.cfg;
        let n = self.open.len() - from;
        self.ws.set_ids(&e.stream, &self.open[from..])?;
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
        let v = cfg.llama.vocab_size;
        if self.greedy_ids {
            let row = Span {
                rows: 1,
                ..Span::default()
            };
            self.greedy = Some(self.ws.greedy_ids(&e.gpu, &e.stream, &[row], v)?[0]);
            self.logits.clear();
        } else {
            self.greedy = None;
            self.logits = self.ws.logits_to_host(&e.stream, v)?;
        }
        Ok(())
    }
}
