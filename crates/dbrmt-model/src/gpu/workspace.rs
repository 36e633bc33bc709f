//! Every buffer one step needs, allocated once for the largest step (and grown, contents kept, when a packed run of
//! many requests needs more hidden slots or KV caches).

use std::sync::Arc;
use std::time::{Duration, Instant};

use cudarc::driver::{sys::CUstreamCaptureStatus, CudaSlice, CudaStream, PinnedHostSlice};
use dbrmt_kernels::{
    argmax_rows::{argmax_rows_f32, SCRATCH_PER_ROW},
    params::{Span, MAX_GROUPS},
    Gpu, KernelError,
};
use half::bf16;

use dbrmt_formats::ModelConfig;

use super::graphs::StepShape;
use super::weights::kvb_rows;
use super::{DeviceState, Projections, StepProfile};

/// What a workspace holds room for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkspaceShape {
    /// Whole segments per chunk of a step (their write scratch: `M` rows each).
    pub max_cells: usize,
    /// Rows per chunk of a step, all cells together (the packed scratch).
    pub scratch_rows: usize,
    /// Hidden slots of `T + M` rows (live segments, open rows in flight).
    pub slots: usize,
    /// Logit rows and final-norm rows of the segments leaving the top layer together.
    pub logit_rows: usize,
    pub final_rows: usize,
    /// KV caches of `T` rows (one per memory state that generates: layer `l` of request slot `r` is state
    /// `r · L + l`).
    pub cache_states: usize,
}

/// Scratch for steps of up to `max_cells` whole cells and `scratch_rows` rows, `slots` live segments of `rows = T + M`
/// rows, the logits of `logit_rows` rows, and (for generation) `cache_states` KV caches of one open segment.
#[derive(Debug)]
pub struct Workspace {
    pub max_cells: usize,
    pub scratch_rows: usize,
    /// Rows of a full segment, `T + M`, and its text rows `T`.
    pub rows: usize,
    pub segment_size: usize,
    pub slots: usize,
    /// Memory states whose open-segment q/k/v rows are cached (0 without generation; see [`Workspace::cache_row`]).
    pub cache_states: usize,
    /// Hidden rows of every live segment, `[slots · rows, d]`: slot `k` holds rows `k·rows..`. The residual stream
    /// is f32 (the o and down projections add into it in f32; norms and the memory projections read it), so 30
    /// layers of residual adds are not rounded to bf16 each time.
    pub hidden: CudaSlice<f32>,
    /// The hidden rows rounded to bf16, `hidden`'s layout (v2 projections; one element otherwise): written by every
    /// down projection (its epilogue's mirror, or `to_bf16` after a merged run's add) and by the embedding (the
    /// tables' bf16 rows); read by the memory's projections (the read's q, the write's k/v/β) in place of a
    /// `to_bf16` pass each. Only the rows of a cell's last down projection are current: the read's apply and the o
    /// projection change `hidden` without it, and nothing reads it between them and the next down projection.
    pub hidden_bf16: CudaSlice<bf16>,
    /// Per-step scratch, cells packed one after another (`[scratch_rows, width]`).
    pub normed: CudaSlice<bf16>,
    /// The packed q/k/v rows of a step, `[scratch_rows, q + 2·kv]`, then the KV caches of open segments: `T` rows
    /// per cached state (q kept too, so the rows are the same as a whole segment's).
    pub qkv: CudaSlice<bf16>,
    pub attn: CudaSlice<bf16>,
    /// The gate/up product `[.., 2I]` (v1 projections only: the v2 GEMM fuses SwiGLU and writes `act` directly).
    pub gate_up: CudaSlice<bf16>,
    pub act: CudaSlice<bf16>,
    /// Read: `u = H W_qᵀ` `[.., d_mem]`, `φ(u)` `[.., D]`, `φ(u)·A` `[.., d]`, f32.
    pub u: CudaSlice<f32>,
    pub phi: CudaSlice<f32>,
    pub num: CudaSlice<f32>,
    /// Write, M rows per cell: `P [W_k|W_v|w_β]ᵀ` `[.., kvb_rows]` (`d_mem + d + 1` padded to a multiple of 8), `φ(K)` `[.., D]`, `K·A` `[.., d]`,
    /// `β(V − V̄)` `[.., d]`, `γ` `[..]`, f32.
    pub kvb: CudaSlice<f32>,
    pub kphi: CudaSlice<f32>,
    pub ka: CudaSlice<f32>,
    pub upd: CudaSlice<f32>,
    pub gamma: CudaSlice<f32>,
    /// `{δ, β}` of each memory row when the write's prep is made in `kφ·A`'s epilogue (`armt_write_features`).
    pub write_stats: CudaSlice<f32>,
    /// Final-norm'ed text rows of the segments finishing together `[final_rows, d]`, and their logits
    /// `[logit_rows, V]`.
    pub final_hidden: CudaSlice<bf16>,
    pub logits: CudaSlice<f32>,
    /// Greedy ids of logit rows (`argmax_rows_f32`), one per item of a launch of finishing segments.
    pub argmax: CudaSlice<u32>,
    /// The candidates of `argmax_rows_f32`'s chunks: [`SCRATCH_PER_ROW`] u32s per id of `argmax`.
    pub argmax_scratch: CudaSlice<u32>,
    /// Page-locked host copy of the first logit rows ([`Workspace::logits_to_host`]), allocated at first use.
    logits_host: Option<PinnedHostSlice<f32>>,
    /// Token ids of the current request(s).
    pub ids: CudaSlice<u32>,
    /// Per cached state (at least one entry): the rows its KV cache holds before a step's new rows — an open cell's
    /// position, which RoPE and attention read on the device (dynamic spans), so that a captured step replays at
    /// any position. Written by [`Workspace::set_positions`] only, whose host copy it mirrors.
    pub positions: CudaSlice<i32>,
    positions_host: Vec<i32>,
    /// Captured decode steps ([`super::graphs`]), dropped whenever a buffer they use is replaced.
    pub(crate) graphs: super::graphs::StepGraphs,
    /// Events between the launches of every step, when profiling ([`StepProfile`]).
    pub profile: Option<StepProfile>,
    /// Host time spent waiting for the device before copying logits or greedy ids out (every launch before the copy
    /// has finished by then): with the host's wall time of the same calls, it says whether a decode loop waits for the
    /// GPU (kernel-bound) or the GPU for the host (launch-bound).
    pub copy_wait: Duration,
}

impl Workspace {
    /// Room for steps of `max_cells` whole cells, `slots` live segments, `logit_rows` logit rows of one finishing
    /// segment, and `cache_layers` KV caches (one request's layers).
    pub fn new(
        stream: &Arc<CudaStream>,
        cfg: &ModelConfig,
        max_cells: usize,
        slots: usize,
        logit_rows: usize,
        cache_layers: usize,
        projections: Projections,
    ) -> Result<Self, KernelError> {
        let shape = WorkspaceShape {
            max_cells,
            scratch_rows: max_cells * cfg.segment_rows(),
            slots,
            logit_rows,
            final_rows: cfg.armt.segment_size,
            cache_states: cache_layers,
        };
        Self::with_shape(stream, cfg, shape, projections)
    }

    pub fn with_shape(
        stream: &Arc<CudaStream>,
        cfg: &ModelConfig,
        shape: WorkspaceShape,
        projections: Projections,
    ) -> Result<Self, KernelError> {
        let (d, m) = (cfg.llama.hidden_size, cfg.armt.num_mem_tokens);
        let rows = cfg.segment_rows();
        let (g, gm) = (shape.scratch_rows, shape.max_cells * m);
        let (dm, dk, inter) = (cfg.armt.d_mem, cfg.d_key(), cfg.llama.intermediate_size);
        let qkv = cfg.llama.q_dim() + 2 * cfg.llama.kv_dim();
        let bf = |n: usize| stream.alloc_zeros::<bf16>(n.max(1));
        let f = |n: usize| stream.alloc_zeros::<f32>(n.max(1));
        Ok(Self {
            max_cells: shape.max_cells,
            scratch_rows: g,
            rows,
            segment_size: cfg.armt.segment_size,
            slots: shape.slots,
            cache_states: shape.cache_states,
            hidden: f(shape.slots * rows * d)?,
            hidden_bf16: bf(if projections == Projections::Sm90 {
                shape.slots * rows * d
            } else {
                0
            })?,
            normed: bf(g * d)?,
            qkv: bf((g + shape.cache_states * cfg.armt.segment_size) * qkv)?,
            attn: bf(g * cfg.llama.q_dim())?,
            gate_up: bf(if projections == Projections::V1 {
                g * 2 * inter
            } else {
                0
            })?,
            act: bf(g * inter)?,
            u: f(g * dm)?,
            phi: f(g * dk)?,
            num: f(g * d)?,
            kvb: f(gm * kvb_rows(cfg))?,
            kphi: f(gm * dk)?,
            ka: f(gm * d)?,
            upd: f(gm * d)?,
            gamma: f(gm)?,
            write_stats: f(2 * gm)?,
            final_hidden: bf(shape.final_rows * d)?,
            logits: f(shape.logit_rows * cfg.llama.vocab_size)?,
            argmax: stream.alloc_zeros::<u32>(MAX_GROUPS)?,
            argmax_scratch: stream.alloc_zeros::<u32>(MAX_GROUPS * SCRATCH_PER_ROW)?,
            logits_host: None,
            ids: stream.alloc_zeros::<u32>(1)?,
            positions: stream.alloc_zeros::<i32>(shape.cache_states.max(1))?,
            positions_host: vec![0; shape.cache_states.max(1)],
            graphs: Default::default(),
            profile: None,
            copy_wait: Duration::ZERO,
        })
    }

    /// Grows the hidden slots to `slots` and the KV caches to `cache_states` (never shrinks): new buffers, the old
    /// contents copied to the same rows (slot `k` and cache `s` stay where they were).
    pub fn grow(
        &mut self,
        stream: &Arc<CudaStream>,
        cfg: &ModelConfig,
        slots: usize,
        cache_states: usize,
    ) -> Result<(), KernelError> {
        if slots > self.slots {
            let mut hidden = stream.alloc_zeros::<f32>(slots * self.rows * cfg.llama.hidden_size)?;
            stream.memcpy_dtod(&self.hidden, &mut hidden.slice_mut(..self.hidden.len()))?;
            self.hidden = hidden;
            if self.hidden_bf16.len() > 1 {
                let mut mirror = stream.alloc_zeros::<bf16>(slots * self.rows * cfg.llama.hidden_size)?;
                stream.memcpy_dtod(&self.hidden_bf16, &mut mirror.slice_mut(..self.hidden_bf16.len()))?;
                self.hidden_bf16 = mirror;
            }
            self.slots = slots;
        }
        if cache_states > self.cache_states {
            let width = cfg.llama.q_dim() + 2 * cfg.llama.kv_dim();
            let mut qkv = stream.alloc_zeros::<bf16>((self.scratch_rows + cache_states * self.segment_size) * width)?;
            stream.memcpy_dtod(&self.qkv, &mut qkv.slice_mut(..self.qkv.len()))?;
            self.qkv = qkv;
            self.cache_states = cache_states;
            self.positions_host.resize(cache_states, 0);
            self.positions = stream.clone_htod(&self.positions_host)?;
        }
        self.graphs.clear();
        Ok(())
    }

    /// Drops every KV cache (a packed run with no live request gives their memory back).
    pub fn drop_caches(&mut self, stream: &Arc<CudaStream>, cfg: &ModelConfig) -> Result<(), KernelError> {
        let width = cfg.llama.q_dim() + 2 * cfg.llama.kv_dim();
        self.qkv = stream.alloc_zeros::<bf16>((self.scratch_rows * width).max(1))?;
        self.cache_states = 0;
        self.graphs.clear();
        Ok(())
    }

    /// Room for `rows` final-norm'ed rows and logit rows of finishing segments (the old contents are not kept).
    pub fn ensure_finish_rows(
        &mut self,
        stream: &Arc<CudaStream>,
        cfg: &ModelConfig,
        rows: usize,
    ) -> Result<(), KernelError> {
        let (d, v) = (cfg.llama.hidden_size, cfg.llama.vocab_size);
        if self.final_hidden.len() < rows * d {
            self.final_hidden = stream.alloc_zeros::<bf16>(rows * d)?;
        }
        if self.logits.len() < rows * v {
            self.logits = stream.alloc_zeros::<f32>(rows * v)?;
        }
        Ok(())
    }

    /// At most the device bytes [`Workspace::new`] allocates for these arguments (the gate/up scratch counted
    /// whatever the projections; saturating: an absurd shape never wraps), to compare with the free device memory
    /// before allocating.
    pub fn bytes_for(cfg: &ModelConfig, max_cells: usize, slots: usize, logit_rows: usize, cache_layers: usize) -> u64 {
        let m = |f: &[usize]| dbrmt_formats::memory::mul_bytes(f);
        let (d, mt, t) = (cfg.llama.hidden_size, cfg.armt.num_mem_tokens, cfg.armt.segment_size);
        let rows = t.saturating_add(mt);
        let (g, gm) = (max_cells.saturating_mul(rows), max_cells.saturating_mul(mt));
        let (dm, dk, inter) = (cfg.armt.d_mem, cfg.d_key(), cfg.llama.intermediate_size);
        let qkv = cfg.llama.q_dim().saturating_add(cfg.llama.kv_dim().saturating_mul(2));
        let bf16 = [
            // hidden_bf16 (v2 projections; counted always, as gate_up below)
            m(&[slots, rows, d]),
            m(&[g, d]),
            m(&[g.saturating_add(cache_layers.saturating_mul(t)), qkv]),
            m(&[g, cfg.llama.q_dim()]),
            m(&[g, 2, inter]),
            m(&[g, inter]),
            m(&[t, d]),
        ];
        let f32s = [
            m(&[slots, rows, d]),
            m(&[g, dm]),
            m(&[g, dk]),
            m(&[g, d]),
            m(&[gm, dm.saturating_add(d).saturating_add(1)]),
            m(&[gm, dk]),
            m(&[gm, d]),
            m(&[gm, d]),
            m(&[gm]),
            m(&[gm, 2]),
            m(&[logit_rows, cfg.llama.vocab_size]),
            m(&[MAX_GROUPS]),
            m(&[MAX_GROUPS, SCRATCH_PER_ROW]),
        ];
        let sum = |xs: &[u64], size: u64| xs.iter().fold(0u64, |a, &x| a.saturating_add(x.saturating_mul(size)));
        sum(&bf16, 2).saturating_add(sum(&f32s, 4))
    }

    /// The first `len` values of [`Workspace::logits`] on the host, once the launches before are done: through a
    /// page-locked buffer (DMA straight from the device, one host copy fewer than a pageable copy) while `len` is at
    /// most [`Workspace::PINNED_LOGITS`] values, else a pageable copy.
    pub fn logits_to_host(&mut self, stream: &Arc<CudaStream>, len: usize) -> Result<Vec<f32>, KernelError> {
        let mut out = Vec::new();
        self.logits_into(stream, len, &mut out)?;
        Ok(out)
    }

    /// As [`Workspace::logits_to_host`], into `out` (its allocation kept: a decoded token's logits land in the pages
    /// the last token's did, with no fresh allocation to fault in).
    pub fn logits_into(&mut self, stream: &Arc<CudaStream>, len: usize, out: &mut Vec<f32>) -> Result<(), KernelError> {
        self.wait_for_launches(stream)?;
        let src = self.logits.slice(..len);
        out.clear();
        if len > Self::PINNED_LOGITS {
            *out = stream.clone_dtoh(&src)?;
            return Ok(());
        }
        if self.logits_host.is_none() {
            let values = self.logits.len().min(Self::PINNED_LOGITS);
            // SAFETY: cuMemHostAlloc (flags 0: page-locked, cached, read by the host) of `values` f32; filled with
            // zeros below before anything reads it, and every bit pattern is a valid f32.
            let mut host = unsafe { stream.context().alloc_pinned_with_flags::<f32>(values, 0) }?;
            host.as_mut_slice()?.fill(0.0);
            self.logits_host = Some(host);
        }
        let host = self.logits_host.as_mut().expect("just allocated").as_mut_slice()?;
        // only `len` values: a copy into the whole page-locked slice would copy its length, past the end of `src`
        // (CUDA_ERROR_INVALID_VALUE where the logits buffer is smaller than the staging buffer)
        let dst = &mut host[..len];
        stream.memcpy_dtoh(&src, dst)?;
        // the engine's context tracks no events (`Gpu` disables it), so a pinned slice's own wait would not wait
        stream.synchronize()?;
        out.extend_from_slice(dst);
        Ok(())
    }

    /// The greedy id of each row `spans` name in [`Workspace::logits`] (`vocab` wide), in span order: `argmax_rows_f32`
    /// into [`Workspace::argmax`], then those ids (4 bytes each, with the kernel's non-finite flag, bit 31) to the host.
    pub fn greedy_ids(
        &mut self,
        gpu: &Gpu,
        stream: &Arc<CudaStream>,
        spans: &[Span],
        vocab: usize,
    ) -> Result<Vec<u32>, KernelError> {
        self.launch_greedy_ids(gpu, stream, spans, vocab)?;
        let ids: usize = spans.iter().map(|s| s.rows).sum();
        self.wait_for_launches(stream)?;
        Ok(stream.clone_dtoh(&self.argmax.slice(..ids))?)
    }

    /// Launches `argmax_rows_f32` over the rows `spans` name in [`Workspace::logits`] (`vocab` wide), into
    /// [`Workspace::argmax`], without waiting for it.
    pub fn launch_greedy_ids(
        &mut self,
        gpu: &Gpu,
        stream: &Arc<CudaStream>,
        spans: &[Span],
        vocab: usize,
    ) -> Result<(), KernelError> {
        argmax_rows_f32(
            gpu,
            stream,
            &self.logits,
            vocab,
            &mut self.argmax,
            &mut self.argmax_scratch,
            spans,
            vocab,
        )
    }

    /// Makes the first greedy id of the launches before ([`Workspace::argmax`]'s first) the token id of the next
    /// pass ([`Workspace::ids`]'s first) with a copy on the device, ordered after them: the host need not know it.
    /// A non-finite row's flag (bit 31) makes the id fall outside every vocabulary, so its pass embeds NaN rows.
    pub fn ids_from_greedy(&mut self, stream: &Arc<CudaStream>) -> Result<(), KernelError> {
        stream.memcpy_dtod(&self.argmax.slice(..1), &mut self.ids.slice_mut(..1))?;
        Ok(())
    }

    /// Adds `waited` to [`Workspace::copy_wait`] (a wait for the device made outside the workspace).
    pub(crate) fn add_copy_wait(&mut self, waited: Duration) {
        self.copy_wait += waited;
    }

    /// Waits for every launch on `stream`, timed into [`Workspace::copy_wait`] (the copy after it would wait anyway).
    fn wait_for_launches(&mut self, stream: &CudaStream) -> Result<(), KernelError> {
        let t0 = Instant::now();
        stream.synchronize()?;
        self.copy_wait += t0.elapsed();
        Ok(())
    }

    /// Logit values copied out through the page-locked buffer (more go through a pageable copy): 64 decode rows of a
    /// 128K vocabulary, 32 MiB.
    pub const PINNED_LOGITS: usize = 64 * 128 * 1024;

    /// Records that the launch just made on `stream` is `label`, when profiling.
    pub(crate) fn mark(&mut self, stream: &CudaStream, label: &'static str) -> Result<(), KernelError> {
        match self.profile.as_mut() {
            Some(p) => p.mark(stream, label),
            None => Ok(()),
        }
    }

    /// Row of [`Workspace::qkv`] where the KV cache of memory state `state` starts (position `p` of the open segment
    /// is this + p). One request's layer `l` is state `l`.
    pub fn cache_row(&self, state: usize) -> usize {
        self.scratch_rows + state * self.segment_size
    }

    /// Sets the device positions of the states `(state, position)` names (open cells' first new rows), uploading
    /// the whole small buffer (one copy, ordered before the launches that follow) only when a value changed. A state
    /// without a KV cache, or a position past its segment, is an error.
    pub fn set_positions(
        &mut self,
        stream: &Arc<CudaStream>,
        at: impl IntoIterator<Item = (usize, usize)>,
    ) -> Result<(), KernelError> {
        let updates = position_updates(self.cache_states, self.segment_size, at)?;
        if updates.iter().all(|&(state, pos)| self.positions_host[state] == pos) {
            return Ok(());
        }
        // a copy from host memory captured into a graph would replay these values: positions change between steps,
        // never inside a capture (a session sets its pass's before capturing it)
        if stream.capture_status()? != CUstreamCaptureStatus::CU_STREAM_CAPTURE_STATUS_NONE {
            return Err(KernelError::InvalidArgument {
                kernel: "set_positions".into(),
                msg: "positions changed while the stream is capturing a graph".into(),
            });
        }
        for (state, pos) in updates {
            self.positions_host[state] = pos;
        }
        if let Err(e) = stream.memcpy_htod(&self.positions_host, &mut self.positions) {
            // the device's copy is unknown now: no value matches, so the next call uploads again
            self.positions_host.fill(i32::MIN);
            return Err(e.into());
        }
        Ok(())
    }

    /// Runs `launch` (a decode step's or a session pass's launches) on this workspace and `st`: replayed from its
    /// graph, or captured into one the second time, when `shape` names a step graphs may run and no profile is being
    /// taken (its events between launches are not replayed); plainly otherwise ([`super::graphs`]).
    pub(crate) fn launch_or_replay(
        &mut self,
        stream: &Arc<CudaStream>,
        shape: Option<StepShape>,
        st: &mut DeviceState,
        mut launch: impl FnMut(&mut Workspace, &mut DeviceState) -> Result<(), KernelError>,
    ) -> Result<(), KernelError> {
        match shape {
            Some(shape) if self.profile.is_none() => {
                let mut graphs = std::mem::take(&mut self.graphs);
                let mut work = (&mut *self, &mut *st);
                let ran = graphs.run(stream, shape, &mut work, |(ws, st)| launch(ws, st));
                self.graphs = graphs;
                ran.map(|_| ())
            }
            _ => launch(self, st),
        }
    }

    /// Step shapes replayed as CUDA graphs so far ([`super::graphs`]).
    pub fn captured_graphs(&self) -> usize {
        self.graphs.captured()
    }

    /// Uploads the token ids of a prefill (allocates only when they do not fit).
    pub fn set_ids(&mut self, stream: &Arc<CudaStream>, ids: &[u32]) -> Result<(), KernelError> {
        if ids.len() > self.ids.len() {
            self.ids = stream.alloc_zeros::<u32>(ids.len())?;
            self.graphs.clear();
        }
        stream.memcpy_htod(ids, &mut self.ids.slice_mut(..ids.len()))?;
        Ok(())
    }

    /// Device bytes held.
    pub fn bytes(&self) -> usize {
        let bf = [
            &self.hidden_bf16,
            &self.normed,
            &self.qkv,
            &self.attn,
            &self.gate_up,
            &self.act,
            &self.final_hidden,
        ];
        let f = [
            &self.hidden,
            &self.u,
            &self.phi,
            &self.num,
            &self.kvb,
            &self.kphi,
            &self.ka,
            &self.upd,
            &self.gamma,
            &self.write_stats,
            &self.logits,
        ];
        bf.iter().map(|b| b.len() * 2).sum::<usize>()
            + f.iter().map(|b| b.len() * 4).sum::<usize>()
            + (self.argmax.len() + self.argmax_scratch.len()) * 4
    }
}

/// The `(state, position)` updates of [`Workspace::set_positions`], checked: each state has a KV cache (`< caches`)
/// and each position lies inside its segment (`< segment`).
fn position_updates(
    caches: usize,
    segment: usize,
    at: impl IntoIterator<Item = (usize, usize)>,
) -> Result<Vec<(usize, i32)>, KernelError> {
    at.into_iter()
        .map(|(state, pos)| {
            if state >= caches || pos >= segment {
                return Err(KernelError::InvalidArgument {
                    kernel: "set_positions".into(),
                    msg: format!("position {pos} of state {state}: {caches} KV caches of {segment} rows"),
                });
            }
            Ok((state, pos as i32))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::position_updates;

    #[test]
    fn positions_are_checked_before_any_is_kept() {
        assert_eq!(
            position_updates(4, 1024, [(0, 0), (3, 1023)]).unwrap(),
            [(0, 0), (3, 1023)]
        );
        assert!(
            position_updates(4, 1024, [(0, 5), (4, 0)]).is_err(),
            "a state without a cache"
        );
        assert!(
            position_updates(4, 1024, [(1, 1024)]).is_err(),
            "a position past the segment"
        );
        assert!(position_updates(0, 1024, [(0, 0)]).is_err(), "no caches at all");
    }
}
