//! Every buffer one step needs, allocated once for the largest step.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream};
use dbrmt_kernels::KernelError;
use half::bf16;

use dbrmt_formats::ModelConfig;

use super::weights::kvb_rows;
use super::{Projections, StepProfile};

/// Scratch for steps of up to `max_cells` cells of `rows = T + M` rows, `slots` live segments, the logits of
/// `logit_rows` rows, and (for generation) the KV cache of one open segment in `cache_layers` layers; the read's φ
/// and φ·A buffers only where the read is not fused ([`super::MemoryProducts::read_fused`]).
#[derive(Debug)]
pub struct Workspace {
    pub max_cells: usize,
    /// Rows of a full segment, `T + M`, and its text rows `T`.
    pub rows: usize,
    pub segment_size: usize,
    pub slots: usize,
    /// Layers whose open-segment q/k/v rows are cached (0 without generation; see [`Workspace::cache_row`]).
    pub cache_layers: usize,
    /// Hidden rows of every live segment, `[slots · rows, d]`: slot `k` holds rows `k·rows..`. The residual stream
    /// is f32 (the o and down projections add into it in f32; norms and the memory projections read it), so 30
    /// layers of residual adds are not rounded to bf16 each time.
    pub hidden: CudaSlice<f32>,
    /// Per-step scratch, cells packed one after another (`[max_cells · rows, width]`).
    pub normed: CudaSlice<bf16>,
    /// The packed q/k/v rows of a step, `[max_cells · rows, q + 2·kv]`, then the KV cache of an open segment:
    /// `T` rows per cached layer (q kept too, so the rows are the same as a whole segment's).
    pub qkv: CudaSlice<bf16>,
    pub attn: CudaSlice<bf16>,
    /// The gate/up product `[.., 2I]` (v1 projections only: the v2 GEMM fuses SwiGLU and writes `act` directly).
    pub gate_up: CudaSlice<bf16>,
    pub act: CudaSlice<bf16>,
    /// Read: `u = H W_qᵀ` `[.., d_mem]`, `φ(u)` `[.., D]`, `φ(u)·A` `[.., d]`, f32 (φ and φ·A only for the unfused
    /// read: the fused one keeps them on chip).
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
    /// Final-norm'ed text rows of one finishing segment `[T, d]`, and their logits `[logit_rows, V]`.
    pub final_hidden: CudaSlice<bf16>,
    pub logits: CudaSlice<f32>,
    /// Token ids of the current request(s).
    pub ids: CudaSlice<u32>,
    /// Events between the launches of every step, when profiling ([`StepProfile`]).
    pub profile: Option<StepProfile>,
}

impl Workspace {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        stream: &Arc<CudaStream>,
        cfg: &ModelConfig,
        max_cells: usize,
        slots: usize,
        logit_rows: usize,
        cache_layers: usize,
        projections: Projections,
        read_fused: bool,
    ) -> Result<Self, KernelError> {
        let (d, m) = (cfg.llama.hidden_size, cfg.armt.num_mem_tokens);
        let rows = cfg.segment_rows();
        let (g, gm) = (max_cells * rows, max_cells * m);
        let (dm, dk, inter) = (cfg.armt.d_mem, cfg.d_key(), cfg.llama.intermediate_size);
        let qkv = cfg.llama.q_dim() + 2 * cfg.llama.kv_dim();
        let bf = |n: usize| stream.alloc_zeros::<bf16>(n.max(1));
        let f = |n: usize| stream.alloc_zeros::<f32>(n.max(1));
        Ok(Self {
            max_cells,
            rows,
            segment_size: cfg.armt.segment_size,
            slots,
            cache_layers,
            hidden: f(slots * rows * d)?,
            normed: bf(g * d)?,
            qkv: bf((g + cache_layers * cfg.armt.segment_size) * qkv)?,
            attn: bf(g * cfg.llama.q_dim())?,
            gate_up: bf(if projections == Projections::V1 {
                g * 2 * inter
            } else {
                0
            })?,
            act: bf(g * inter)?,
            u: f(g * dm)?,
            phi: f(if read_fused { 0 } else { g * dk })?,
            num: f(if read_fused { 0 } else { g * d })?,
            kvb: f(gm * kvb_rows(cfg))?,
            kphi: f(gm * dk)?,
            ka: f(gm * d)?,
            upd: f(gm * d)?,
            gamma: f(gm)?,
            final_hidden: bf(cfg.armt.segment_size * d)?,
            logits: f(logit_rows * cfg.llama.vocab_size)?,
            ids: stream.alloc_zeros::<u32>(1)?,
            profile: None,
        })
    }

    /// Records that the launch just made on `stream` is `label`, when profiling.
    pub(crate) fn mark(&mut self, stream: &CudaStream, label: &'static str) -> Result<(), KernelError> {
        match self.profile.as_mut() {
            Some(p) => p.mark(stream, label),
            None => Ok(()),
        }
    }

    /// Row of [`Workspace::qkv`] where layer `layer`'s KV cache starts (position `p` of the open segment is this + p).
    pub fn cache_row(&self, layer: usize) -> usize {
        self.max_cells * self.rows + layer * self.segment_size
    }

    /// Uploads the token ids of a prefill (allocates only when they do not fit).
    pub fn set_ids(&mut self, stream: &Arc<CudaStream>, ids: &[u32]) -> Result<(), KernelError> {
        if ids.len() > self.ids.len() {
            self.ids = stream.alloc_zeros::<u32>(ids.len())?;
        }
        stream.memcpy_htod(ids, &mut self.ids.slice_mut(..ids.len()))?;
        Ok(())
    }

    /// Device bytes held.
    pub fn bytes(&self) -> usize {
        let bf = [
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
            &self.logits,
        ];
        bf.iter().map(|b| b.len() * 2).sum::<usize>() + f.iter().map(|b| b.len() * 4).sum::<usize>()
    }
}
