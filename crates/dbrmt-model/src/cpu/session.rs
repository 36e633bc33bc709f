//! Generation on the CPU model: prefill, then one token at a time, with no length limit.
//!
//! A session holds the memory state after its closed segments and one **open** segment: the last 0..T text
//! tokens, whose rows ran through the layers in generate mode (the read at every layer as the original does, no
//! memory rows, no write) with a KV cache per layer. Prefilling closes every full segment through the normal cells
//! (diagonal schedule; a prompt that ends a segment takes its logits from that close, and the open segment is then
//! empty); decoding appends to the open segment, and when it is full the next token first
//! closes it — the segment runs again as a full cell (its T text rows and M memory rows, with the write) — and
//! opens a fresh one. So the tokens a session produces have the logits a prefill of the whole text would give, and
//! generation never hits a context limit.

use dbrmt_schedule::Grid;

use super::cell::{decoder_layer, KvCache};
use super::executor::{CpuModel, Resume, RunOptions};
use crate::input::{check_ids, close_full_segments};
use crate::{error::ModelError, output::LogitsMode};
use dbrmt_formats::{MemoryState, SavedState};
use dbrmt_kernels::reference::{armt_read::armt_read, embed::segment_input, gemm::linear, rms_norm::rms_norm};

/// One request's generation on the CPU model.
#[derive(Debug)]
pub struct Session<'m> {
    /// A copy of the model handle (borrowed weights, own RoPE table), so a session outlives the caller's handle.
    model: CpuModel<'m>,
    state: MemoryState,
    segments_closed: usize,
    /// Text ids of the open segment, and its KV cache per layer.
    open: Vec<u32>,
    caches: Vec<KvCache>,
    /// Logits after the last token (empty before the first).
    logits: Vec<f32>,
}

impl<'m> Session<'m> {
    /// A new request.
    pub fn new(model: &CpuModel<'m>) -> Self {
        Self::resume(model, SavedState::fresh(model.zero_state()))
    }

    /// Continues from a saved state (its open tokens are re-run on the next [`Session::prefill`] or
    /// [`Session::push`]).
    pub fn resume(model: &CpuModel<'m>, saved: SavedState) -> Self {
        let layers = model.config().llama.num_layers;
        Self {
            model: model.clone(),
            state: saved.state,
            segments_closed: saved.segments,
            open: saved.open_ids,
            caches: vec![KvCache::default(); layers],
            logits: Vec::new(),
        }
    }

    /// Takes over a state computed elsewhere (e.g. segments closed on the GPU); the open tokens' rows run on the
    /// next [`Session::prefill`] or [`Session::push`].
    pub fn restore(&mut self, saved: SavedState) {
        self.state = saved.state;
        self.segments_closed = saved.segments;
        self.open = saved.open_ids;
        self.caches.iter_mut().for_each(|c| *c = KvCache::default());
        self.logits.clear();
    }

    /// What a state file needs to continue this session elsewhere.
    pub fn saved(&self) -> SavedState {
        SavedState {
            state: self.state.clone(),
            segments: self.segments_closed,
            open_ids: self.open.clone(),
        }
    }

    /// The next-token logits (after the last prefilled or pushed token).
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// Text tokens run so far: the closed segments' and the open segment's.
    pub fn tokens(&self) -> usize {
        self.segments_closed * self.model.config().armt.segment_size + self.open.len()
    }

    /// Segments closed so far (their memory is in the state).
    pub fn segments_closed(&self) -> usize {
        self.segments_closed
    }

    /// Text tokens of the open segment.
    pub fn open_tokens(&self) -> &[u32] {
        &self.open
    }

    /// Appends `ids` (checked against the vocabulary): every full segment is closed through the diagonal schedule;
    /// the rest becomes the open segment, and its last row gives the next-token logits (the last close's last row
    /// when the tokens end a segment).
    pub fn prefill(&mut self, ids: &[u32]) -> Result<(), ModelError> {
        self.prefill_chunked(ids, usize::MAX, |_| {})
    }

    /// As [`Session::prefill`], closing at most `segments_per_chunk` segments per diagonal run and calling
    /// `progress(tokens consumed)` after each — the same bits as one run (a cell never depends on its step).
    pub fn prefill_chunked(
        &mut self,
        ids: &[u32],
        segments_per_chunk: usize,
        mut progress: impl FnMut(usize),
    ) -> Result<(), ModelError> {
        let cfg = self.model.config();
        check_ids(ids, cfg.llama.vocab_size)?;
        let reopened = self.open.len();
        let mut all = std::mem::take(&mut self.open);
        all.extend_from_slice(ids);
        if all.is_empty() {
            return Err(ModelError::EmptyInput);
        }
        let t = cfg.armt.segment_size;
        let closing = close_full_segments(
            &all,
            t,
            segments_per_chunk,
            reopened,
            |ids, n, last| self.close(ids, n, last),
            &mut progress,
        )?;
        if closing * t == all.len() {
            // the tokens ended a segment: its close gave the logits, and the next token opens a fresh one
            // (the last close reported every new token to `progress`)
            self.open.clear();
            self.caches.iter_mut().for_each(|c| *c = KvCache::default());
        } else {
            self.open_segment(&all[closing * t..]);
            progress(ids.len());
        }
        Ok(())
    }

    /// Appends one token and computes the logits after it. A full open segment is closed first.
    pub fn push(&mut self, id: u32) -> Result<&[f32], ModelError> {
        let cfg = self.model.config();
        check_ids(&[id], cfg.llama.vocab_size)?;
        if self.open.len() == cfg.armt.segment_size {
            let full = std::mem::take(&mut self.open);
            self.close(&full, 1, false)?;
            self.caches.iter_mut().for_each(|c| *c = KvCache::default());
        } else if self.logits.is_empty() && !self.open.is_empty() {
            // resumed with open tokens whose cache is not built yet
            let open = std::mem::take(&mut self.open);
            self.open_segment(&open);
        }
        self.open.push(id);
        let d = cfg.llama.hidden_size;
        let mut x = self.model.weights().embed[id as usize * d..(id as usize + 1) * d].to_vec();
        self.run_open_rows(&mut x);
        Ok(&self.logits)
    }

    /// Closes `segments` full segments of `ids` through the normal cells (diagonal schedule); with `last`, the last
    /// row's logits become the session's (a prefill whose tokens end a segment).
    fn close(&mut self, ids: &[u32], segments: usize, last: bool) -> Result<(), ModelError> {
        if segments == 0 {
            return Ok(());
        }
        let layers = self.model.config().llama.num_layers;
        let opts = RunOptions {
            logits: if last { LogitsMode::Last } else { LogitsMode::None },
            keep_hidden: false,
            threads: 0,
        };
        let resume = Resume {
            state: std::mem::take(&mut self.state),
            segments_before: self.segments_closed,
        };
        let out = self
            .model
            .run_from(ids, &Grid::new(layers, segments).diagonal(), &opts, resume)?;
        self.state = out.state;
        self.segments_closed += segments;
        if last {
            self.logits = out.logits;
        }
        Ok(())
    }

    /// Makes `ids` (1..T tokens) the open segment: runs their rows with fresh caches.
    fn open_segment(&mut self, ids: &[u32]) {
        let cfg = self.model.config();
        let d = cfg.llama.hidden_size;
        self.open = ids.to_vec();
        self.caches.iter_mut().for_each(|c| *c = KvCache::default());
        let mut x = vec![0.0f32; ids.len() * d];
        segment_input(ids, &self.model.weights().embed, &[], d, &mut x);
        self.run_open_rows(&mut x);
    }

    /// Runs new rows of the open segment through every layer (read from segment 1 on, decoder layer over the
    /// cache; no write), then the final norm and LM head of the last row.
    fn run_open_rows(&mut self, x: &mut [f32]) {
        let cfg = self.model.config();
        let w = self.model.weights();
        let first = self.segments_closed == 0;
        for (l, (lw, cache)) in w.layers.iter().zip(self.caches.iter_mut()).enumerate() {
            if !first {
                let st = &self.state.layers[l];
                armt_read(x, &lw.mem_q, &st.a, &st.z, cfg.mem_shape());
            }
            decoder_layer(cfg, lw, self.model.rope(), x, cache);
        }
        let d = cfg.llama.hidden_size;
        let last = &x[x.len() - d..];
        let mut normed = vec![0.0f32; d];
        rms_norm(last, &w.norm, cfg.llama.rms_norm_eps, &mut normed);
        self.logits = vec![0.0f32; cfg.llama.vocab_size];
        linear(&normed, w.lm_head(), 1, d, cfg.llama.vocab_size, &mut self.logits);
    }
}
