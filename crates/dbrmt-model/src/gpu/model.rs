//! One diagonal step on the device: up to `max_cells` cells, each a group of every grouped launch.

use cudarc::driver::{CudaSlice, CudaStream};
use dbrmt_kernels::{
    argmax_rows::argmax_rows_f32,
    armt_read::armt_read_apply,
    armt_read_fused_sm90::{self, armt_read_fused_sm90, ReadShape, ReadSplit},
    armt_write::{armt_write_prep, armt_z_update, WritePrep},
    attention::attention_causal,
    attention_sm90::{self, attention_sm90_causal},
    dpfp::dpfp,
    embed::embed_segment,
    gemm::{
        gemm_nn_f32_f32_f32, gemm_nt_bf16_bf16_bf16, gemm_nt_bf16_bf16_f32, gemm_nt_f32_bf16_f32, gemm_tn_f32_f32_f32,
        GemmGroup,
    },
    gemm_sm90::{gemm_sm90_nt_bf16_bf16_bf16, gemm_sm90_nt_bf16_bf16_f32, gemm_sm90_nt_bf16_bf16_swiglu},
    gemm_tf32x3_sm90::{gemm_sm90_nn_f32_f32_f32_tf32x3, gemm_sm90_tn_f32_f32_f32_tf32x3},
    params::{Heads, Span, MAX_GROUPS},
    reference::argmax_rows::NON_FINITE,
    rms_norm::rms_norm,
    rope::rope,
    rows::{add_rows_f32, copy_rows_bf16},
    swiglu::swiglu,
    to_bf16::to_bf16,
    Gpu, KernelError,
};

use std::ops::Range;

use half::bf16;

use super::runs;
use super::weights::kvb_rows;
use super::{DeviceState, DeviceWeights, Workspace};
use dbrmt_formats::ModelConfig;

use crate::output::LogitsMode;

/// One cell of a step, as the device sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepCell {
    pub layer: usize,
    /// Index of its memory state in [`DeviceState`].
    pub state: usize,
    /// Hidden slot of its segment in [`Workspace::hidden`].
    pub slot: usize,
    /// Text rows of its segment (`T`, or fewer for a short last segment).
    pub text_rows: usize,
    /// Segment 0 of its request: no read; the write uses `V̄ = 0`, `γ = 1`.
    pub first_segment: bool,
    /// At layer 0 the segment enters: its embeddings are written first, from this offset in [`Workspace::ids`].
    pub enters_at_token: Option<usize>,
    /// `Some(p)`: new text rows of an **open** segment (generation), at positions `p..p + text_rows`. They run in
    /// generate mode: no memory rows and no write; their q/k/v rows go to the layer's rows of the KV cache
    /// ([`Workspace::cache_row`]) and attend to the `p` rows cached before them. `None`: a whole segment.
    pub open_at: Option<usize>,
}

impl StepCell {
    /// Rows this cell runs: its text rows, and the memory rows unless it is an open segment's.
    fn rows(&self, mem: usize) -> usize {
        self.text_rows + if self.open_at.is_some() { 0 } else { mem }
    }
}

/// Which kernels run the bf16 projections (q/k/v, o, gate/up, down, the LM head).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projections {
    /// The version-1 WMMA kernels (`cuda/gemm_bf16.cu`) and a separate SwiGLU kernel.
    V1,
    /// The sm_90a v2 GEMM (`cuda/gemm_sm90.cu`: TMA, wgmma, persistent), SwiGLU fused into the gate/up product
    /// (gate/up weights interleaved on upload).
    Sm90,
}

impl Projections {
    /// The v2 GEMM where every projection of `cfg` has shapes it takes (widths multiples of 8, the MLP width a
    /// multiple of 64), else v1. `DBRMT_GEMM=v1` forces v1 (to compare the two on one build). The choice is per
    /// model, never per step, so diagonal and sequential runs use the same kernels.
    pub fn for_model(cfg: &ModelConfig) -> Self {
        let l = &cfg.llama;
        let widths = [l.hidden_size, l.q_dim(), l.q_dim() + 2 * l.kv_dim(), l.vocab_size];
        let fits = widths.iter().all(|w| w.is_multiple_of(8)) && l.intermediate_size.is_multiple_of(64);
        let forced_v1 = std::env::var("DBRMT_GEMM").is_ok_and(|v| v == "v1");
        if fits && !forced_v1 {
            Projections::Sm90
        } else {
            Projections::V1
        }
    }
}

/// Which kernel runs the attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionKernel {
    /// `cuda/attention.cu`: SIMT, every head dim.
    Simt,
    /// `cuda/attention_sm90.cu`: tensor cores, head dims 64 and 128.
    Sm90,
}

impl AttentionKernel {
    /// The tensor-core kernel where it takes the model's heads, else SIMT; `DBRMT_ATTENTION=simt` forces SIMT (to
    /// compare). Per model, so prefill, decoding, diagonal and sequential runs all use the same kernel.
    pub fn for_model(cfg: &ModelConfig) -> Self {
        let l = &cfg.llama;
        let heads = Heads {
            heads: l.num_heads,
            kv_heads: l.num_kv_heads,
            head_dim: l.head_dim,
        };
        let forced = std::env::var("DBRMT_ATTENTION").is_ok_and(|v| v == "simt");
        if attention_sm90::supports(heads) && !forced {
            AttentionKernel::Sm90
        } else {
            AttentionKernel::Simt
        }
    }
}

/// Which kernels run the memory's f32 products (the read's `φ·A`, the write's `kφ·A` and `A += kφᵀ·u`), and
/// whether the read after its query projection is one fused launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryProducts {
    /// `φ·A` and `kφ·A` on the tensor cores (`gemm_sm90_nn_f32_f32_f32_tf32x3`), else SIMT (`gemm_nn_f32_f32_f32`).
    pub nn_tf32x3: bool,
    /// `A += kφᵀ·u` on the tensor cores (`gemm_sm90_tn_f32_f32_f32_tf32x3`), else SIMT (`gemm_tn_f32_f32_f32`).
    pub tn_tf32x3: bool,
    /// The read's DPFP, `φ·A` (3×TF32) and `h += num / (φ·z + ε)` in one launch (`armt_read_fused_sm90_f32`), else
    /// `dpfp`, the `φ·A` product and `armt_read_apply` as three.
    pub read_fused: bool,
}

impl MemoryProducts {
    /// The tensor-core kernels where the shapes take them (D = 2·ν·d_mem a multiple of 32 and d of 4; for the update
    /// also M a multiple of 32), the fused read where the tensor-core products run and it takes the shape (d_mem 32
    /// or 64, D ≤ 512). `DBRMT_MEMORY=simt` forces SIMT (and the unfused read), `DBRMT_MEMORY=unfused` only the
    /// unfused read (to compare on one build). Per model, like the other choices, so diagonal, sequential and
    /// decoding runs use the same kernels.
    pub fn for_model(cfg: &ModelConfig) -> Self {
        let choice = std::env::var("DBRMT_MEMORY").unwrap_or_default();
        Self::for_shape(cfg, &choice)
    }

    /// [`MemoryProducts::for_model`] with the value of `DBRMT_MEMORY` given (`""` when unset).
    fn for_shape(cfg: &ModelConfig, choice: &str) -> Self {
        let simt = choice == "simt";
        let nn = !simt && cfg.d_key().is_multiple_of(32) && cfg.llama.hidden_size.is_multiple_of(4);
        let shape = ReadShape {
            d: cfg.llama.hidden_size,
            d_mem: cfg.armt.d_mem,
            nu: cfg.armt.nu,
        };
        MemoryProducts {
            nn_tf32x3: nn,
            tn_tf32x3: nn && cfg.armt.num_mem_tokens.is_multiple_of(32),
            read_fused: nn && choice != "unfused" && armt_read_fused_sm90::supports(shape).is_ok(),
        }
    }
}

/// The model on the device: config, weights, and the kernels of its projections and attention.
#[derive(Debug)]
pub struct GpuModel {
    pub cfg: ModelConfig,
    pub weights: DeviceWeights,
    pub projections: Projections,
    pub attention: AttentionKernel,
    pub memory: MemoryProducts,
}

/// The chunks a step runs in, in order: each at most a launch's groups, `max_writers` whole cells (their write
/// scratch) and `scratch_rows` rows (every cell fits on its own: [`GpuModel::step`] checks).
fn chunks(cells: &[StepCell], mem: usize, max_writers: usize, scratch_rows: usize) -> Vec<&[StepCell]> {
    let mut out = Vec::new();
    let (mut start, mut rows, mut writers) = (0, 0, 0);
    for (i, c) in cells.iter().enumerate() {
        let writes = usize::from(c.open_at.is_none());
        let full = i - start == MAX_GROUPS || rows + c.rows(mem) > scratch_rows || writers + writes > max_writers;
        if full && i > start {
            out.push(&cells[start..i]);
            (start, rows, writers) = (i, 0, 0);
        }
        rows += c.rows(mem);
        writers += writes;
    }
    if start < cells.len() {
        out.push(&cells[start..]);
    }
    out
}

/// Whether the open cells of one layer share one group per projection (`DBRMT_MERGE_ROWS=off`: one group per cell, to
/// compare; the bits are the same either way, see [`runs`]).
fn merge_rows() -> bool {
    !std::env::var("DBRMT_MERGE_ROWS").is_ok_and(|v| v == "off")
}

/// `(offset, rows)` of each cell in the step's packed scratch.
fn packed_rows(cells: &[StepCell], mem: usize) -> Vec<(usize, usize)> {
    let mut at = 0;
    cells
        .iter()
        .map(|c| {
            let r = c.rows(mem);
            at += r;
            (at - r, r)
        })
        .collect()
}

impl GpuModel {
    /// Runs one step: every cell's read, decoder layer and write. The cells must be independent (one step of a
    /// valid schedule); more than the workspace or a launch can hold are run in chunks, which is equally valid.
    pub fn step(
        &self,
        gpu: &Gpu,
        stream: &CudaStream,
        ws: &mut Workspace,
        st: &mut DeviceState,
        cells: &[StepCell],
    ) -> Result<(), KernelError> {
        let (t, m) = (self.cfg.armt.segment_size, self.cfg.armt.num_mem_tokens);
        for x in cells {
            if let Some(p) = x.open_at {
                if ws.cache_states <= x.state || p + x.text_rows > t {
                    return Err(KernelError::InvalidArgument {
                        kernel: "step".into(),
                        msg: format!(
                            "open rows {p}..{} of state {}: the workspace caches {} states of {t} rows",
                            p + x.text_rows,
                            x.state,
                            ws.cache_states
                        ),
                    });
                }
            }
            if x.rows(m) > ws.scratch_rows {
                return Err(KernelError::InvalidArgument {
                    kernel: "step".into(),
                    msg: format!(
                        "a cell of {} rows, the step scratch holds {}",
                        x.rows(m),
                        ws.scratch_rows
                    ),
                });
            }
        }
        // open cells of one layer side by side, so that each chunk merges them (any order of a step's cells is valid)
        let sorted: Vec<StepCell> = runs::merge_order(cells).into_iter().map(|i| cells[i]).collect();
        for chunk in chunks(&sorted, m, ws.max_cells.max(1), ws.scratch_rows) {
            self.step_chunk(gpu, stream, ws, st, chunk)?;
        }
        Ok(())
    }

    /// One chunk of a step (at most a launch's groups and the workspace's cells), as [`cpu::cell`](crate::cpu::cell)
    /// runs one cell: the embedding of entering segments, then the read, the attention block, the MLP block and the
    /// write, each one grouped launch per op over all the chunk's cells.
    fn step_chunk(
        &self,
        gpu: &Gpu,
        stream: &CudaStream,
        ws: &mut Workspace,
        st: &mut DeviceState,
        cells: &[StepCell],
    ) -> Result<(), KernelError> {
        let at = Chunk::new(&self.cfg, cells, ws.rows, |layer| ws.cache_row(layer));
        if let Some(p) = ws.profile.as_mut() {
            p.begin(stream, cells.len())?;
        }
        self.embed_entering(gpu, stream, ws, &at)?;
        self.read(gpu, stream, ws, st, &at)?;
        self.attention_block(gpu, stream, ws, &at)?;
        self.mlp_block(gpu, stream, ws, &at)?;
        self.write(gpu, stream, ws, st, &at)
    }

    /// Segments entering layer 0: their embeddings and memory rows, into their hidden slots.
    fn embed_entering(
        &self,
        gpu: &Gpu,
        stream: &CudaStream,
        ws: &mut Workspace,
        at: &Chunk,
    ) -> Result<(), KernelError> {
        let entering: Vec<Span> = (0..at.len())
            .filter_map(|i| {
                let x = &at.cells[i];
                x.enters_at_token.map(|tok| Span {
                    in_row: tok,
                    out_row: at.hidden_row(i),
                    rows: x.text_rows,
                    ..Span::default()
                })
            })
            .collect();
        if entering.is_empty() {
            return Ok(());
        }
        let (w, l) = (&self.weights, &self.cfg.llama);
        embed_segment(
            gpu,
            stream,
            &ws.ids,
            &w.embed,
            &w.memory,
            &mut ws.hidden,
            &entering,
            l.hidden_size,
            l.vocab_size,
        )?;
        ws.mark(stream, "embed")
    }

    /// The read, from segment 1 on: `H += φ(H W_qᵀ) A / (φ(H W_qᵀ)·z + ε)`.
    fn read(
        &self,
        gpu: &Gpu,
        stream: &CudaStream,
        ws: &mut Workspace,
        st: &DeviceState,
        at: &Chunk,
    ) -> Result<(), KernelError> {
        let readers: Vec<usize> = (0..at.len()).filter(|&i| !at.cells[i].first_segment).collect();
        if readers.is_empty() {
            return Ok(());
        }
        let (w, a) = (&self.weights, &self.cfg.armt);
        let (d, dk) = (at.d, at.d_key);
        let in_scratch: Vec<Span> = readers.iter().map(|&i| at.in_scratch(i)).collect();
        if self.memory_projections_on_sm90() {
            // the hidden rows rounded to bf16 once, into the norm scratch (free until the attention block's norm)
            let rows: Vec<Span> = readers.iter().map(|&i| at.to_scratch(i)).collect();
            to_bf16(gpu, stream, &ws.hidden, d, &mut ws.normed, d, &rows, d)?;
            ws.mark(stream, "read: rows to bf16")?;
            // a merged run's rows are one group (A and u both in the packed scratch)
            let q: Vec<GemmGroup> = at
                .runs
                .iter()
                .filter(|r| !at.cells[r.start].first_segment)
                .map(|r| at.merged(r, at.read_q_from_scratch(r.start)))
                .collect();
            gemm_sm90_nt_bf16_bf16_f32(gpu, stream, &ws.normed, &w.mem_q, &mut ws.u, &q, false)?;
        } else {
            let q: Vec<GemmGroup> = readers.iter().map(|&i| at.read_q(i)).collect();
            gemm_nt_f32_bf16_f32(gpu, stream, &ws.hidden, &w.mem_q, &mut ws.u, &q, false)?;
        }
        ws.mark(stream, "read: q projection")?;
        if self.memory.read_fused {
            // u's scratch rows → the cell's hidden rows, with its state (the spans of the unfused apply)
            let spans: Vec<Span> = readers.iter().map(|&i| at.read_apply(i)).collect();
            let shape = ReadShape {
                d,
                d_mem: a.d_mem,
                nu: a.nu,
            };
            armt_read_fused_sm90(
                gpu,
                stream,
                (&ws.u, a.d_mem),
                &st.a,
                &st.z,
                (&mut ws.hidden, d),
                &spans,
                shape,
                ReadSplit::Tf32x3,
            )?;
            return ws.mark(stream, "read: fused φ·A + apply");
        }
        dpfp(
            gpu,
            stream,
            &ws.u,
            a.d_mem,
            0,
            &mut ws.phi,
            dk,
            &in_scratch,
            a.d_mem,
            a.nu,
        )?;
        ws.mark(stream, "read: dpfp")?;
        let num: Vec<GemmGroup> = readers.iter().map(|&i| at.read_num(i)).collect();
        self.state_product(gpu, stream, &ws.phi, &st.a, &mut ws.num, &num)?;
        ws.mark(stream, "read: φ·A")?;
        let apply: Vec<Span> = readers.iter().map(|&i| at.read_apply(i)).collect();
        armt_read_apply(gpu, stream, &ws.num, &ws.phi, &st.z, &mut ws.hidden, d, &apply, d, dk)?;
        ws.mark(stream, "read: apply")
    }

    /// The attention block: `x += o(attn(rope(qkv(norm(x)))))`. The q/k/v rows of a whole segment go to the packed
    /// scratch, an open segment's to its layer's KV cache rows, after the rows cached before them.
    fn attention_block(
        &self,
        gpu: &Gpu,
        stream: &CudaStream,
        ws: &mut Workspace,
        at: &Chunk,
    ) -> Result<(), KernelError> {
        let (w, l) = (&self.weights, &self.cfg.llama);
        let all = 0..at.len();
        let to_scratch: Vec<Span> = all.clone().map(|i| at.to_scratch(i)).collect();
        rms_norm(
            gpu,
            stream,
            &ws.hidden,
            at.d,
            &w.input_norm,
            &mut ws.normed,
            at.d,
            &to_scratch,
            at.d,
            l.rms_norm_eps,
        )?;
        ws.mark(stream, "rms_norm")?;
        let (alone, merged) = runs::split(&at.runs);
        // a merged run's q/k/v rows go to its scratch rows first, then to each request's cache rows
        let mut qkv: Vec<GemmGroup> = alone.iter().map(|&i| at.qkv(i)).collect();
        qkv.extend(merged.iter().map(|r| at.qkv_merged(r)));
        self.linear_bf16(gpu, stream, &ws.normed, &w.qkv, &mut ws.qkv, &qkv)?;
        ws.mark(stream, "q/k/v projection")?;
        if !merged.is_empty() {
            let to_cache: Vec<Span> = merged
                .iter()
                .flat_map(|r| r.clone())
                .map(|i| at.qkv_to_cache(i))
                .collect();
            copy_rows_bf16(gpu, stream, &mut ws.qkv, at.qkv_width, &to_cache, at.qkv_width)?;
            ws.mark(stream, "q/k/v rows to the caches")?;
        }
        let heads = Heads {
            heads: l.num_heads,
            kv_heads: l.num_kv_heads,
            head_dim: l.head_dim,
        };
        let rotate: Vec<Span> = all.clone().map(|i| at.rotate(i)).collect();
        rope(
            gpu,
            stream,
            &mut ws.qkv,
            at.qkv_width,
            &w.rope_cos,
            &w.rope_sin,
            &rotate,
            heads,
        )?;
        ws.mark(stream, "rope")?;
        let attend: Vec<Span> = all.clone().map(|i| at.attend(i)).collect();
        let scale = 1.0 / (heads.head_dim as f32).sqrt();
        let attention = match self.attention {
            AttentionKernel::Sm90 => attention_sm90_causal,
            AttentionKernel::Simt => attention_causal,
        };
        attention(
            gpu,
            stream,
            &ws.qkv,
            at.qkv_width,
            &mut ws.attn,
            at.q_width,
            &attend,
            heads,
            scale,
        )?;
        ws.mark(stream, "attention")?;
        let o: Vec<GemmGroup> = alone.iter().map(|&i| at.o(i)).collect();
        if !o.is_empty() {
            self.linear_f32(gpu, stream, &ws.attn, &w.o, &mut ws.hidden, &o, true)?;
        }
        if !merged.is_empty() {
            // a merged run's o product into the f32 scratch (free after the read), then added to each hidden row
            let o: Vec<GemmGroup> = merged.iter().map(|r| at.merged_to_scratch(r, at.o(r.start))).collect();
            self.linear_f32(gpu, stream, &ws.attn, &w.o, &mut ws.num, &o, false)?;
            let add: Vec<Span> = merged
                .iter()
                .flat_map(|r| r.clone())
                .map(|i| at.scratch_to_hidden(i))
                .collect();
            add_rows_f32(gpu, stream, &ws.num, at.d, &mut ws.hidden, at.d, &add, at.d)?;
        }
        ws.mark(stream, "o projection + residual")
    }

    /// The MLP block: `x += down(silu(gate(norm(x))) · up(norm(x)))`.
    fn mlp_block(&self, gpu: &Gpu, stream: &CudaStream, ws: &mut Workspace, at: &Chunk) -> Result<(), KernelError> {
        let (w, l) = (&self.weights, &self.cfg.llama);
        let all = 0..at.len();
        let to_scratch: Vec<Span> = all.clone().map(|i| at.to_scratch(i)).collect();
        rms_norm(
            gpu,
            stream,
            &ws.hidden,
            at.d,
            &w.post_norm,
            &mut ws.normed,
            at.d,
            &to_scratch,
            at.d,
            l.rms_norm_eps,
        )?;
        ws.mark(stream, "rms_norm")?;
        // every run's rows (one cell, or the merged open cells of one layer) are one group: A and C in the scratch
        if self.projections == Projections::Sm90 {
            // silu(gate)·up straight out of the gate/up product (weights interleaved on upload)
            let act: Vec<GemmGroup> = at
                .runs
                .iter()
                .map(|r| at.merged(r, at.gate_up_swiglu(r.start)))
                .collect();
            gemm_sm90_nt_bf16_bf16_swiglu(gpu, stream, &ws.normed, &w.gate_up, &mut ws.act, &act)?;
            ws.mark(stream, "gate/up projection + swiglu")?;
        } else {
            let gate_up: Vec<GemmGroup> = at.runs.iter().map(|r| at.merged(r, at.gate_up(r.start))).collect();
            gemm_nt_bf16_bf16_bf16(gpu, stream, &ws.normed, &w.gate_up, &mut ws.gate_up, &gate_up, false)?;
            ws.mark(stream, "gate/up projection")?;
            let in_scratch: Vec<Span> = all.clone().map(|i| at.in_scratch(i)).collect();
            swiglu(
                gpu,
                stream,
                &ws.gate_up,
                2 * at.inter,
                &mut ws.act,
                at.inter,
                &in_scratch,
                at.inter,
            )?;
            ws.mark(stream, "swiglu")?;
        }
        let (alone, merged) = runs::split(&at.runs);
        let down: Vec<GemmGroup> = alone.iter().map(|&i| at.down(i)).collect();
        if !down.is_empty() {
            self.linear_f32(gpu, stream, &ws.act, &w.down, &mut ws.hidden, &down, true)?;
        }
        if !merged.is_empty() {
            // as the o projection: the merged product into the f32 scratch, then one f32 add per hidden element
            let down: Vec<GemmGroup> = merged
                .iter()
                .map(|r| at.merged_to_scratch(r, at.down(r.start)))
                .collect();
            self.linear_f32(gpu, stream, &ws.act, &w.down, &mut ws.num, &down, false)?;
            let add: Vec<Span> = merged
                .iter()
                .flat_map(|r| r.clone())
                .map(|i| at.scratch_to_hidden(i))
                .collect();
            add_rows_f32(gpu, stream, &ws.num, at.d, &mut ws.hidden, at.d, &add, at.d)?;
        }
        ws.mark(stream, "down projection + residual")
    }

    /// Whether the memory's projections (the read's `H·W_qᵀ`, the write's `P·[W_k|W_v|w_β]ᵀ`) run on the v2 GEMM,
    /// from the f32 hidden rows rounded to bf16 by `to_bf16` first (the values v1's `gemm_nt_f32_bf16_f32` rounds
    /// them to as it stages them): with the v2 projections and `d_mem` a multiple of 8 (the write's width is padded
    /// to one, [`super::weights::kvb_rows`]). Per model, like every kernel choice.
    fn memory_projections_on_sm90(&self) -> bool {
        self.projections == Projections::Sm90 && self.cfg.armt.d_mem.is_multiple_of(8)
    }

    /// A product with the memory state, `Y = X · A[state]` (f32), on the model's kernel for it.
    fn state_product(
        &self,
        gpu: &Gpu,
        stream: &CudaStream,
        x: &CudaSlice<f32>,
        a: &CudaSlice<f32>,
        y: &mut CudaSlice<f32>,
        groups: &[GemmGroup],
    ) -> Result<(), KernelError> {
        match self.memory.nn_tf32x3 {
            true => gemm_sm90_nn_f32_f32_f32_tf32x3(gpu, stream, x, a, y, groups, false),
            false => gemm_nn_f32_f32_f32(gpu, stream, x, a, y, groups, false),
        }
    }

    /// A bf16 projection with a bf16 result, on the model's GEMM.
    fn linear_bf16(
        &self,
        gpu: &Gpu,
        stream: &CudaStream,
        a: &CudaSlice<bf16>,
        b: &CudaSlice<bf16>,
        c: &mut CudaSlice<bf16>,
        groups: &[GemmGroup],
    ) -> Result<(), KernelError> {
        match self.projections {
            Projections::Sm90 => gemm_sm90_nt_bf16_bf16_bf16(gpu, stream, a, b, c, groups),
            Projections::V1 => gemm_nt_bf16_bf16_bf16(gpu, stream, a, b, c, groups, false),
        }
    }

    /// A bf16 projection with an f32 result (accumulating: the residual adds), on the model's GEMM.
    #[allow(clippy::too_many_arguments)]
    fn linear_f32(
        &self,
        gpu: &Gpu,
        stream: &CudaStream,
        a: &CudaSlice<bf16>,
        b: &CudaSlice<bf16>,
        c: &mut CudaSlice<f32>,
        groups: &[GemmGroup],
        accumulate: bool,
    ) -> Result<(), KernelError> {
        match self.projections {
            Projections::Sm90 => gemm_sm90_nt_bf16_bf16_f32(gpu, stream, a, b, c, groups, accumulate),
            Projections::V1 => gemm_nt_bf16_bf16_f32(gpu, stream, a, b, c, groups, accumulate),
        }
    }

    /// The write of the chunk's whole segments (an open segment writes when it closes): their M memory rows, left in
    /// the hidden slots after the layer, update `A` and `z` (scratch rows of cell `i`: `i · M..`).
    fn write(
        &self,
        gpu: &Gpu,
        stream: &CudaStream,
        ws: &mut Workspace,
        st: &mut DeviceState,
        at: &Chunk,
    ) -> Result<(), KernelError> {
        let writers: Vec<usize> = (0..at.len()).filter(|&i| at.cells[i].open_at.is_none()).collect();
        if writers.is_empty() {
            return Ok(());
        }
        let (w, a) = (&self.weights, &self.cfg.armt);
        let (d, dk, kvb) = (at.d, at.d_key, at.kvb_width);
        let mem: Vec<Span> = writers.iter().map(|&i| at.mem_span(i)).collect();
        // P·[W_k|W_v|w_β]ᵀ, then kφ = dpfp(K raw)
        if self.memory_projections_on_sm90() {
            // the memory rows rounded to bf16 once, into the norm scratch (free after the MLP's gate/up product)
            let rows: Vec<Span> = writers.iter().map(|&i| at.mem_from_hidden(i)).collect();
            to_bf16(gpu, stream, &ws.hidden, d, &mut ws.normed, d, &rows, d)?;
            ws.mark(stream, "write: rows to bf16")?;
            let kvb_groups: Vec<GemmGroup> = writers.iter().map(|&i| at.write_kvb_from_scratch(i)).collect();
            gemm_sm90_nt_bf16_bf16_f32(gpu, stream, &ws.normed, &w.mem_kvb, &mut ws.kvb, &kvb_groups, false)?;
        } else {
            let kvb_groups: Vec<GemmGroup> = writers.iter().map(|&i| at.write_kvb(i)).collect();
            gemm_nt_f32_bf16_f32(gpu, stream, &ws.hidden, &w.mem_kvb, &mut ws.kvb, &kvb_groups, false)?;
        }
        ws.mark(stream, "write: k/v/β projection")?;
        dpfp(gpu, stream, &ws.kvb, kvb, 0, &mut ws.kphi, dk, &mem, a.d_mem, a.nu)?;
        ws.mark(stream, "write: dpfp")?;
        // kφ·A_old, not for segment 0
        let ka: Vec<GemmGroup> = writers
            .iter()
            .filter(|&&i| !at.cells[i].first_segment)
            .map(|&i| at.write_ka(i))
            .collect();
        if !ka.is_empty() {
            self.state_product(gpu, stream, &ws.kphi, &st.a, &mut ws.ka, &ka)?;
            ws.mark(stream, "write: kφ·A")?;
        }
        let prep = WritePrep {
            kvb: &ws.kvb,
            kvb_ld: kvb,
            v_col: a.d_mem,
            kphi: &ws.kphi,
            ka: &ws.ka,
            z: &st.z,
            b_beta: &w.beta_bias,
            d,
            d_key: dk,
            correction: a.correction,
        };
        armt_write_prep(gpu, stream, &prep, &mut ws.upd, &mut ws.gamma, &mem)?;
        ws.mark(stream, "write: prep")?;
        let update: Vec<GemmGroup> = writers.iter().map(|&i| at.write_update(i)).collect();
        match self.memory.tn_tf32x3 {
            true => gemm_sm90_tn_f32_f32_f32_tf32x3(gpu, stream, &ws.kphi, &ws.upd, &mut st.a, &update, true)?,
            false => gemm_tn_f32_f32_f32(gpu, stream, &ws.kphi, &ws.upd, &mut st.a, &update, true)?,
        }
        ws.mark(stream, "write: A += kφᵀ·u")?;
        armt_z_update(gpu, stream, &ws.kphi, &ws.gamma, &mut st.z, &mem, dk)?;
        ws.mark(stream, "write: z update")
    }

    /// A segment leaving the top layer: the final norm of its text rows (kept in [`Workspace::final_hidden`]) and,
    /// as asked, the logits of all of them or of the last one only (in [`Workspace::logits`]). Returns the number of
    /// logit rows written.
    pub fn finish(
        &self,
        gpu: &Gpu,
        stream: &CudaStream,
        ws: &mut Workspace,
        slot: usize,
        text_rows: usize,
        logits: LogitsMode,
    ) -> Result<usize, KernelError> {
        let (d, v) = (self.cfg.llama.hidden_size, self.cfg.llama.vocab_size);
        let span = Span {
            in_row: slot * ws.rows,
            out_row: 0,
            rows: text_rows,
            ..Span::default()
        };
        let w = &self.weights;
        rms_norm(
            gpu,
            stream,
            &ws.hidden,
            d,
            &w.final_norm,
            &mut ws.final_hidden,
            d,
            &[span],
            d,
            self.cfg.llama.rms_norm_eps,
        )?;
        let (first, rows) = match logits {
            LogitsMode::None => return Ok(0),
            LogitsMode::Last => (text_rows - 1, 1),
            LogitsMode::All => (0, text_rows),
        };
        // rows first.. of the final-norm'ed rows × the LM head [V, d]ᵀ → logit rows 0..
        let g = Linear {
            rows,
            x_row: first,
            y_row: 0,
            layer: 0,
            k: d,
            n: v,
        }
        .group();
        self.linear_f32(gpu, stream, &ws.final_hidden, w.lm_head(), &mut ws.logits, &[g], false)?;
        Ok(rows)
    }
}

/// A segment, or an open segment's new rows, leaving the top layer, as [`GpuModel::finish_many`] takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finishing {
    /// Its hidden slot.
    pub slot: usize,
    pub text_rows: usize,
    pub logits: LogitsMode,
    /// With `logits: LogitsMode::Last`: only the greedy id of that row comes to the host (`argmax_rows_f32` on the
    /// device, the host's argmax of the same logits), not its logits.
    pub argmax: bool,
}

/// What [`GpuModel::finish_many`] gives an item: its `[rows, V]` logits on the host (empty for `LogitsMode::None`
/// and for a greedy id), and its greedy id when it asked for that ([`Finishing::argmax`]).
pub type Finished = (Vec<f32>, Option<u32>);

impl Finishing {
    /// Whether only the greedy id of its one logit row comes back.
    fn argmax_only(&self) -> bool {
        self.argmax && self.logits == LogitsMode::Last
    }

    /// `(first text row, rows)` whose logits it asks for.
    fn logit_rows(&self) -> (usize, usize) {
        match self.logits {
            LogitsMode::None => (0, 0),
            LogitsMode::Last => (self.text_rows - 1, 1),
            LogitsMode::All => (0, self.text_rows),
        }
    }
}

impl GpuModel {
    /// The logits of several finishing segments together: for each, the final norm of the rows it asks for (its last
    /// text row, or all) and their LM head — one span per item and one group of all the rows, so each gets the bits
    /// [`GpuModel::finish`] gives it alone (a row's norm and product never depend on the other rows of a launch or of
    /// a GEMM group: the LM head runs all the rows of a launch as one group).
    /// Runs in launches of at most [`MAX_GROUPS`] items and the rows [`Workspace::final_hidden`] and
    /// [`Workspace::logits`] hold (each item must fit alone: see [`Workspace::ensure_finish_rows`]). Returns each
    /// item's `[rows, V]` logits on the host (empty for `LogitsMode::None`), or, for an item that asks for its greedy
    /// id only ([`Finishing::argmax`]), that id: `argmax_rows_f32` over its logit row on the device, 4 bytes copied
    /// out instead of `4 · V`.
    pub fn finish_many(
        &self,
        gpu: &Gpu,
        stream: &std::sync::Arc<CudaStream>,
        ws: &mut Workspace,
        items: &[Finishing],
    ) -> Result<Vec<Finished>, KernelError> {
        let (d, v) = (self.cfg.llama.hidden_size, self.cfg.llama.vocab_size);
        let capacity = (ws.final_hidden.len() / d).min(ws.logits.len() / v);
        let mut out: Vec<Finished> = vec![(Vec::new(), None); items.len()];
        // the items whose logits come to the host first, then those that want their greedy id only, so that the rows
        // copied out of a launch are its first ones (a row's norm and LM head do not depend on where it lies)
        let wants_logits = |i: &usize| items[*i].logit_rows().1 > 0 && !items[*i].argmax_only();
        let mut asking: Vec<usize> = (0..items.len()).filter(wants_logits).collect();
        asking.extend((0..items.len()).filter(|&i| items[i].argmax_only()));
        let mut next = 0;
        while next < asking.len() {
            // the next launch: items in order while they fit
            let (mut spans, mut rows) = (Vec::new(), 0);
            let start = next;
            while next < asking.len() && spans.len() < MAX_GROUPS {
                let item = &items[asking[next]];
                let (first, n) = item.logit_rows();
                if rows + n > capacity {
                    if spans.is_empty() {
                        return Err(KernelError::InvalidArgument {
                            kernel: "finish_many".into(),
                            msg: format!("{n} logit rows, the workspace holds {capacity}"),
                        });
                    }
                    break;
                }
                spans.push(Span {
                    in_row: item.slot * ws.rows + first,
                    out_row: rows,
                    rows: n,
                    ..Span::default()
                });
                rows += n;
                next += 1;
            }
            let w = &self.weights;
            rms_norm(
                gpu,
                stream,
                &ws.hidden,
                d,
                &w.final_norm,
                &mut ws.final_hidden,
                d,
                &spans,
                d,
                self.cfg.llama.rms_norm_eps,
            )?;
            // the items' rows follow one another in both buffers: one group of all of them (the LM head is read once;
            // a row's product does not depend on the other rows of its tile: `check::gemm_rows`); or one per item
            let item = |s: &Span| {
                Linear {
                    rows: s.rows,
                    x_row: s.out_row,
                    y_row: s.out_row,
                    layer: 0,
                    k: d,
                    n: v,
                }
                .group()
            };
            let groups: Vec<GemmGroup> = match merge_rows() {
                true => vec![item(&Span {
                    out_row: 0,
                    rows,
                    ..Span::default()
                })],
                false => spans.iter().map(item).collect(),
            };
            self.linear_f32(
                gpu,
                stream,
                &ws.final_hidden,
                w.lm_head(),
                &mut ws.logits,
                &groups,
                false,
            )?;
            let launch = &asking[start..next];
            // the greedy ids of the items that want only those: one id per item, in the launch's order
            let id_spans: Vec<Span> = launch
                .iter()
                .zip(&spans)
                .filter(|(i, _)| items[**i].argmax_only())
                .enumerate()
                .map(|(k, (_, s))| Span {
                    in_row: s.out_row,
                    out_row: k,
                    rows: 1,
                    ..Span::default()
                })
                .collect();
            let ids = match id_spans.is_empty() {
                true => Vec::new(),
                false => {
                    argmax_rows_f32(
                        gpu,
                        stream,
                        &ws.logits,
                        v,
                        &mut ws.argmax,
                        &mut ws.argmax_scratch,
                        &id_spans,
                        v,
                    )?;
                    stream.clone_dtoh(&ws.argmax.slice(..id_spans.len()))?
                }
            };
            // the logit rows of the others: the launch's first rows
            let logit_rows: usize = launch
                .iter()
                .zip(&spans)
                .filter(|(i, _)| !items[**i].argmax_only())
                .map(|(_, s)| s.rows)
                .sum();
            let host = match logit_rows {
                0 => Vec::new(),
                n => ws.logits_to_host(stream, n * v)?,
            };
            let mut next_id = ids.into_iter();
            for (k, &i) in launch.iter().enumerate() {
                out[i] = match items[i].argmax_only() {
                    // the kernel's non-finite flag is dropped here: the host path of many requests never checked
                    true => (Vec::new(), next_id.next().map(|id| id & !NON_FINITE)),
                    false => {
                        let at = spans[k].out_row * v;
                        (host[at..at + spans[k].rows * v].to_vec(), None)
                    }
                };
            }
        }
        Ok(out)
    }
}

/// A cell's `nn.Linear` product on dense rows: `Y (+)= X · W[layer]ᵀ` for `rows` rows, X from row `x_row` of a
/// `[*, k]` buffer, Y from row `y_row` of a `[*, n]` buffer, W the `layer`-th `[n, k]` of a stacked weight.
#[derive(Debug, Clone, Copy)]
struct Linear {
    rows: usize,
    x_row: usize,
    y_row: usize,
    layer: usize,
    /// Input width (the summed dimension).
    k: usize,
    /// Output width.
    n: usize,
}

impl Linear {
    fn group(self) -> GemmGroup {
        let Linear {
            rows,
            x_row,
            y_row,
            layer,
            k,
            n,
        } = self;
        GemmGroup {
            a_offset: x_row * k,
            b_offset: layer * n * k,
            c_offset: y_row * n,
            m: rows,
            n,
            k,
            lda: k,
            ldb: k,
            ldc: n,
        }
    }
}

/// A cell's product with its memory state `A` (`[D, d]` per state): `Y[rows, d] = X[rows, D] · A[state]`, X from
/// row `x_row` of a `[*, D]` buffer (φ or kφ), Y from row `y_row` of a `[*, d]` buffer.
#[derive(Debug, Clone, Copy)]
struct StateProduct {
    rows: usize,
    x_row: usize,
    y_row: usize,
    state: usize,
    d_key: usize,
    d: usize,
}

impl StateProduct {
    fn group(self) -> GemmGroup {
        let StateProduct {
            rows,
            x_row,
            y_row,
            state,
            d_key,
            d,
        } = self;
        GemmGroup {
            a_offset: x_row * d_key,
            b_offset: state * d_key * d,
            c_offset: y_row * d,
            m: rows,
            n: d,
            k: d_key,
            lda: d_key,
            ldb: d,
            ldc: d,
        }
    }
}

/// Where the cells of one chunk sit in the workspace, and each op's spans and GEMM groups per cell (named per
/// tensor, as llm.c's `gpt2_forward` names its per-layer pointers).
///
/// Rows: cell `i` runs `rows(i)` rows (text, and memory unless open), held in its segment's hidden slot from
/// `hidden_row(i)` and packed one cell after another in the per-step scratch from `scratch_row(i)`; its q/k/v rows are
/// `qkv_row(i)..` (the scratch for a whole segment, its state's KV cache for an open one); its write uses `M` scratch
/// rows from `write_rank(i) · M` (open cells do not write, so the write scratch holds the chunk's whole cells only).
#[derive(Debug)]
struct Chunk<'a> {
    cells: &'a [StepCell],
    /// The runs of cells that share one group per projection ([`runs::runs`]): adjacent open cells of one layer and
    /// segment-0 flag, or one cell alone.
    runs: Vec<Range<usize>>,
    /// `(scratch row, rows)` of each cell.
    packed: Vec<(usize, usize)>,
    /// Row of each cell's KV cache (its state's) in the q/k/v buffer.
    cache_rows: Vec<usize>,
    /// Whole cells before each cell: where its write scratch rows are (`rank · M..`).
    write_rank: Vec<usize>,
    /// Rows of a hidden slot, `T + M`.
    slot_rows: usize,
    d: usize,
    mem: usize,
    d_mem: usize,
    d_key: usize,
    inter: usize,
    q_width: usize,
    qkv_width: usize,
    /// The write product's width: `d_mem + d + 1` (`[K | V | β]`) padded to a multiple of 8 ([`kvb_rows`]).
    kvb_width: usize,
}

impl<'a> Chunk<'a> {
    fn new(cfg: &ModelConfig, cells: &'a [StepCell], slot_rows: usize, cache_row: impl Fn(usize) -> usize) -> Self {
        let (l, m) = (&cfg.llama, cfg.armt.num_mem_tokens);
        Chunk {
            cells,
            runs: match merge_rows() {
                true => runs::runs(cells),
                false => (0..cells.len()).map(|i| i..i + 1).collect(),
            },
            packed: packed_rows(cells, m),
            cache_rows: cells.iter().map(|x| cache_row(x.state)).collect(),
            write_rank: cells
                .iter()
                .scan(0, |n, x| {
                    let rank = *n;
                    *n += usize::from(x.open_at.is_none());
                    Some(rank)
                })
                .collect(),
            slot_rows,
            d: l.hidden_size,
            mem: m,
            d_mem: cfg.armt.d_mem,
            d_key: cfg.d_key(),
            inter: l.intermediate_size,
            q_width: l.q_dim(),
            qkv_width: l.q_dim() + 2 * l.kv_dim(),
            kvb_width: kvb_rows(cfg),
        }
    }

    fn len(&self) -> usize {
        self.cells.len()
    }

    /// Rows cell `i` runs.
    fn rows(&self, i: usize) -> usize {
        self.packed[i].1
    }

    /// First row of cell `i`'s hidden slot.
    fn hidden_row(&self, i: usize) -> usize {
        self.cells[i].slot * self.slot_rows
    }

    /// First row of cell `i` in the packed scratch.
    fn scratch_row(&self, i: usize) -> usize {
        self.packed[i].0
    }

    /// First q/k/v row of cell `i`: in the scratch for a whole segment, after the cached rows for an open one.
    fn qkv_row(&self, i: usize) -> usize {
        match self.cells[i].open_at {
            None => self.scratch_row(i),
            Some(p) => self.cache_rows[i] + p,
        }
    }

    /// Position of cell `i`'s first row in its segment (0 but for an open segment's new rows).
    fn pos(&self, i: usize) -> usize {
        self.cells[i].open_at.unwrap_or(0)
    }

    /// Cell `i`'s rows from `in_row` to `out_row`, with its layer, state and segment-0 flag.
    fn span(&self, i: usize, in_row: usize, out_row: usize) -> Span {
        let x = &self.cells[i];
        Span {
            in_row,
            out_row,
            rows: self.rows(i),
            layer: x.layer,
            flag: x.first_segment,
            state: x.state,
            pos: 0,
        }
    }

    /// Hidden rows → packed scratch rows (the norms).
    fn to_scratch(&self, i: usize) -> Span {
        self.span(i, self.hidden_row(i), self.scratch_row(i))
    }

    /// Packed scratch rows → the same rows of another scratch buffer.
    fn in_scratch(&self, i: usize) -> Span {
        self.span(i, self.scratch_row(i), self.scratch_row(i))
    }

    /// The read's last step: from the scratch rows of num and φ into the hidden rows.
    fn read_apply(&self, i: usize) -> Span {
        Span {
            out_row: self.hidden_row(i),
            ..self.in_scratch(i)
        }
    }

    /// RoPE, in place on the q/k rows, from the position of the cell's first row.
    fn rotate(&self, i: usize) -> Span {
        Span {
            in_row: self.qkv_row(i),
            out_row: self.qkv_row(i),
            pos: self.pos(i),
            ..self.in_scratch(i)
        }
    }

    /// Attention: keys from the segment's row 0 (for an open segment, its cache rows before the new ones), queries
    /// from `pos`, output to the attention scratch rows.
    fn attend(&self, i: usize) -> Span {
        Span {
            in_row: self.qkv_row(i) - self.pos(i),
            pos: self.pos(i),
            ..self.in_scratch(i)
        }
    }

    /// The write's M scratch rows of cell `i`.
    fn mem_span(&self, i: usize) -> Span {
        let at = self.write_rank[i] * self.mem;
        Span {
            in_row: at,
            out_row: at,
            rows: self.mem,
            ..self.in_scratch(i)
        }
    }

    /// The read's query projection `u = H·W_qᵀ`: hidden rows × `mem_q[layer]` `[d_mem, d]` → u's scratch rows.
    fn read_q(&self, i: usize) -> GemmGroup {
        Linear {
            rows: self.rows(i),
            x_row: self.hidden_row(i),
            y_row: self.scratch_row(i),
            layer: self.cells[i].layer,
            k: self.d,
            n: self.d_mem,
        }
        .group()
    }

    /// [`Chunk::read_q`] from the cell's rows rounded to bf16 in the packed scratch ([`Chunk::to_scratch`]).
    fn read_q_from_scratch(&self, i: usize) -> GemmGroup {
        GemmGroup {
            a_offset: self.scratch_row(i) * self.d,
            ..self.read_q(i)
        }
    }

    /// `g`, a group of run `r`'s first cell whose A and C rows are in packed scratch buffers, widened to the rows of
    /// every cell of the run (they follow one another in the scratch).
    fn merged(&self, r: &Range<usize>, g: GemmGroup) -> GemmGroup {
        GemmGroup {
            m: r.clone().map(|i| self.rows(i)).sum(),
            ..g
        }
    }

    /// [`Chunk::merged`] with C moved to the run's rows of an f32 scratch `[.., n]` (num: the o and down products of a
    /// merged run, added to the hidden rows after by [`Chunk::scratch_to_hidden`]).
    fn merged_to_scratch(&self, r: &Range<usize>, g: GemmGroup) -> GemmGroup {
        GemmGroup {
            c_offset: self.scratch_row(r.start) * g.n,
            ldc: g.n,
            ..self.merged(r, g)
        }
    }

    /// Cell `i`'s rows of the f32 scratch → its hidden rows (the residual add of a merged run's product).
    fn scratch_to_hidden(&self, i: usize) -> Span {
        Span {
            out_row: self.hidden_row(i),
            ..self.in_scratch(i)
        }
    }

    /// The q/k/v projection of a merged run: into the run's scratch rows of the q/k/v buffer (open cells keep their
    /// rows in their caches, so these scratch rows are free), moved to the caches by [`Chunk::qkv_to_cache`].
    fn qkv_merged(&self, r: &Range<usize>) -> GemmGroup {
        GemmGroup {
            c_offset: self.scratch_row(r.start) * self.qkv_width,
            ..self.merged(r, self.qkv(r.start))
        }
    }

    /// Cell `i`'s q/k/v rows from its scratch rows to its own rows ([`Chunk::qkv_row`]: the cache for an open cell).
    fn qkv_to_cache(&self, i: usize) -> Span {
        Span {
            in_row: self.scratch_row(i),
            out_row: self.qkv_row(i),
            rows: self.rows(i),
            ..Span::default()
        }
    }

    /// The read's numerator `φ·A`: φ's scratch rows × the cell's state → num's scratch rows.
    fn read_num(&self, i: usize) -> GemmGroup {
        StateProduct {
            rows: self.rows(i),
            x_row: self.scratch_row(i),
            y_row: self.scratch_row(i),
            state: self.cells[i].state,
            d_key: self.d_key,
            d: self.d,
        }
        .group()
    }

    /// The fused q/k/v projection: normed scratch rows × `qkv[layer]` `[q + 2·kv, d]` → the cell's q/k/v rows.
    fn qkv(&self, i: usize) -> GemmGroup {
        Linear {
            rows: self.rows(i),
            x_row: self.scratch_row(i),
            y_row: self.qkv_row(i),
            layer: self.cells[i].layer,
            k: self.d,
            n: self.qkv_width,
        }
        .group()
    }

    /// The o projection with the residual add: attention scratch rows × `o[layer]` `[d, q]` → += hidden rows.
    fn o(&self, i: usize) -> GemmGroup {
        Linear {
            rows: self.rows(i),
            x_row: self.scratch_row(i),
            y_row: self.hidden_row(i),
            layer: self.cells[i].layer,
            k: self.q_width,
            n: self.d,
        }
        .group()
    }

    /// The fused gate/up projection: normed scratch rows × `gate_up[layer]` `[2I, d]` → gate/up scratch rows.
    fn gate_up(&self, i: usize) -> GemmGroup {
        Linear {
            rows: self.rows(i),
            x_row: self.scratch_row(i),
            y_row: self.scratch_row(i),
            layer: self.cells[i].layer,
            k: self.d,
            n: 2 * self.inter,
        }
        .group()
    }

    /// The gate/up product with the SwiGLU fused (v2 GEMM): normed scratch rows × the interleaved `gate_up[layer]`
    /// `[2I, d]` → `silu(gate)·up` in the activation scratch rows `[.., I]`.
    fn gate_up_swiglu(&self, i: usize) -> GemmGroup {
        GemmGroup {
            c_offset: self.scratch_row(i) * self.inter,
            ldc: self.inter,
            ..self.gate_up(i)
        }
    }

    /// The down projection with the residual add: activation scratch rows × `down[layer]` `[d, I]` → += hidden rows.
    fn down(&self, i: usize) -> GemmGroup {
        Linear {
            rows: self.rows(i),
            x_row: self.scratch_row(i),
            y_row: self.hidden_row(i),
            layer: self.cells[i].layer,
            k: self.inter,
            n: self.d,
        }
        .group()
    }

    /// The write product `P·[W_k|W_v|w_β]ᵀ`: the M memory rows after the text rows of the hidden slot ×
    /// `mem_kvb[layer]` `[d_mem + d + 1, d]` → the cell's M write scratch rows.
    fn write_kvb(&self, i: usize) -> GemmGroup {
        Linear {
            rows: self.mem,
            x_row: self.hidden_row(i) + self.cells[i].text_rows,
            y_row: self.write_rank[i] * self.mem,
            layer: self.cells[i].layer,
            k: self.d,
            n: self.kvb_width,
        }
        .group()
    }

    /// The M memory rows after the text rows of cell `i`'s hidden slot → its M write scratch rows.
    fn mem_from_hidden(&self, i: usize) -> Span {
        Span {
            in_row: self.hidden_row(i) + self.cells[i].text_rows,
            ..self.mem_span(i)
        }
    }

    /// [`Chunk::write_kvb`] from the memory rows rounded to bf16 in the write scratch rows ([`Chunk::mem_from_hidden`]).
    fn write_kvb_from_scratch(&self, i: usize) -> GemmGroup {
        GemmGroup {
            a_offset: self.write_rank[i] * self.mem * self.d,
            ..self.write_kvb(i)
        }
    }

    /// The write's `kφ·A_old`: kφ's M write scratch rows × the cell's state → ka's.
    fn write_ka(&self, i: usize) -> GemmGroup {
        StateProduct {
            rows: self.mem,
            x_row: self.write_rank[i] * self.mem,
            y_row: self.write_rank[i] * self.mem,
            state: self.cells[i].state,
            d_key: self.d_key,
            d: self.d,
        }
        .group()
    }

    /// The state update `A[state] += Kᵀ·U`: kφ stored `[M, D]` is the transposed left operand of a `[D, d]` product
    /// over M, U the `[M, d]` rows of `β(V − V̄)`.
    fn write_update(&self, i: usize) -> GemmGroup {
        let (m, dk, d) = (self.mem, self.d_key, self.d);
        let at = self.write_rank[i] * m;
        GemmGroup {
            a_offset: at * dk,
            b_offset: at * d,
            c_offset: self.cells[i].state * dk * d,
            m: dk,
            n: d,
            k: m,
            lda: dk,
            ldb: d,
            ldc: d,
        }
    }
}

#[cfg(test)]
mod tests {
    use dbrmt_formats::{ArmtParams, LlamaConfig};

    use super::*;

    fn config() -> ModelConfig {
        ModelConfig {
            llama: LlamaConfig {
                vocab_size: 11,
                hidden_size: 8,
                intermediate_size: 6,
                num_layers: 3,
                num_heads: 2,
                num_kv_heads: 1,
                head_dim: 4,
                rms_norm_eps: 1e-5,
                rope_theta: 10000.0,
                rope_scaling: None,
                tie_word_embeddings: true,
            },
            armt: ArmtParams {
                num_mem_tokens: 3,
                d_mem: 2,
                segment_size: 5,
                nu: 3,
                correction: true,
            },
        }
    }

    /// The fused read where the tensor-core products run and d_mem is 32 or 64; `unfused` and `simt` turn it off.
    #[test]
    fn memory_products_choose_the_fused_read() {
        let mut cfg = config();
        cfg.llama.hidden_size = 2048;
        cfg.armt.d_mem = 64;
        cfg.armt.num_mem_tokens = 128;
        let on = MemoryProducts::for_shape(&cfg, "");
        assert!(on.nn_tf32x3 && on.tn_tf32x3 && on.read_fused);
        let unfused = MemoryProducts::for_shape(&cfg, "unfused");
        assert!(unfused.nn_tf32x3 && !unfused.read_fused);
        let simt = MemoryProducts::for_shape(&cfg, "simt");
        assert!(!simt.nn_tf32x3 && !simt.tn_tf32x3 && !simt.read_fused);
        cfg.armt.d_mem = 16; // D = 96: tensor-core products, but no fused read
        let small = MemoryProducts::for_shape(&cfg, "");
        assert!(small.nn_tf32x3 && !small.read_fused);
        assert!(!MemoryProducts::for_shape(&config(), "").read_fused, "d_mem 2");
    }

    /// The spans and groups of a chunk are those of the step as first written (positional offsets, kept here as the
    /// oracle): a whole first segment entering, a short one reading, an open one at position 3.
    #[test]
    fn chunk_offsets_are_the_steps() {
        let cfg = config();
        let cell = |layer, state, slot, text_rows, first_segment, open_at| StepCell {
            layer,
            state,
            slot,
            text_rows,
            first_segment,
            enters_at_token: None,
            open_at,
        };
        let cells = [
            StepCell {
                enters_at_token: Some(0),
                ..cell(0, 0, 2, 5, true, None)
            },
            cell(1, 3, 0, 2, false, None),
            cell(2, 1, 1, 1, false, Some(3)),
        ];
        let (r, cache) = (8, |layer: usize| 100 + 5 * layer);
        let at = Chunk::new(&cfg, &cells, r, cache);

        let (d, m, dm, dk, inter) = (8, 3, 2, 12, 6);
        let (q, qkv, kvb) = (8, 16, (dm + d + 1usize).next_multiple_of(8));
        let packed = packed_rows(&cells, m);
        assert_eq!(packed, [(0, 8), (8, 5), (13, 1)]);
        let hid = |x: &StepCell| x.slot * r;
        let qkv_row = |i: usize, x: &StepCell| match x.open_at {
            None => packed[i].0,
            Some(p) => cache(x.state) + p,
        };
        type Triple = (usize, usize, usize);
        let gemm = |m: usize, off: Triple, nk: (usize, usize), ld: Triple| GemmGroup {
            a_offset: off.0,
            b_offset: off.1,
            c_offset: off.2,
            m,
            n: nk.0,
            k: nk.1,
            lda: ld.0,
            ldb: ld.1,
            ldc: ld.2,
        };
        let span = |i: usize, x: &StepCell, in_row, out_row| Span {
            in_row,
            out_row,
            rows: packed[i].1,
            layer: x.layer,
            flag: x.first_segment,
            state: x.state,
            pos: 0,
        };
        for (i, x) in cells.iter().enumerate() {
            let rows = packed[i].1;
            let start = x.open_at.unwrap_or(0);
            let in_scratch = span(i, x, packed[i].0, packed[i].0);
            assert_eq!(at.to_scratch(i), span(i, x, hid(x), packed[i].0));
            assert_eq!(at.in_scratch(i), in_scratch);
            assert_eq!(
                at.read_apply(i),
                Span {
                    in_row: packed[i].0,
                    out_row: hid(x),
                    ..in_scratch
                }
            );
            assert_eq!(
                at.rotate(i),
                Span {
                    in_row: qkv_row(i, x),
                    out_row: qkv_row(i, x),
                    pos: start,
                    ..in_scratch
                }
            );
            assert_eq!(
                at.attend(i),
                Span {
                    in_row: qkv_row(i, x) - start,
                    pos: start,
                    ..in_scratch
                }
            );
            assert_eq!(
                at.mem_span(i),
                Span {
                    in_row: i * m,
                    out_row: i * m,
                    rows: m,
                    ..in_scratch
                }
            );
            let p = packed[i].0;
            let (l, s) = (x.layer, x.state);
            assert_eq!(
                at.read_q(i),
                gemm(rows, (hid(x) * d, l * dm * d, p * dm), (dm, d), (d, d, dm))
            );
            assert_eq!(
                at.read_num(i),
                gemm(rows, (p * dk, s * dk * d, p * d), (d, dk), (dk, d, d))
            );
            assert_eq!(
                at.qkv(i),
                gemm(rows, (p * d, l * qkv * d, qkv_row(i, x) * qkv), (qkv, d), (d, d, qkv))
            );
            assert_eq!(at.o(i), gemm(rows, (p * q, l * d * q, hid(x) * d), (d, q), (q, q, d)));
            let gu = 2 * inter;
            assert_eq!(
                at.gate_up(i),
                gemm(rows, (p * d, l * gu * d, p * gu), (gu, d), (d, d, gu))
            );
            assert_eq!(
                at.down(i),
                gemm(
                    rows,
                    (p * inter, l * d * inter, hid(x) * d),
                    (d, inter),
                    (inter, inter, d)
                )
            );
            let kvb_row = (hid(x) + x.text_rows) * d;
            assert_eq!(
                at.write_kvb(i),
                gemm(m, (kvb_row, l * kvb * d, i * m * kvb), (kvb, d), (d, d, kvb))
            );
            assert_eq!(
                at.write_ka(i),
                gemm(m, (i * m * dk, s * dk * d, i * m * d), (d, dk), (dk, d, d))
            );
            assert_eq!(
                at.write_update(i),
                gemm(dk, (i * m * dk, i * m * d, s * dk * d), (d, m), (dk, d, d))
            );
            // the v2 GEMM's memory projections read the bf16-rounded rows: the read's from the cell's scratch rows,
            // the write's from its write scratch rows
            assert_eq!(
                at.read_q_from_scratch(i),
                GemmGroup {
                    a_offset: p * d,
                    ..at.read_q(i)
                }
            );
            if x.open_at.is_none() {
                assert_eq!(
                    at.mem_from_hidden(i),
                    Span {
                        in_row: hid(x) + x.text_rows,
                        ..at.mem_span(i)
                    }
                );
                assert_eq!(at.write_kvb_from_scratch(i).a_offset, at.mem_span(i).out_row * d);
            }
        }
        // an open cell before whole ones: the write scratch goes by the rank among whole cells, not the index
        let reordered = [cells[2], cells[0], cells[1]];
        let at = Chunk::new(&cfg, &reordered, r, cache);
        for (i, rank) in [(1, 0), (2, 1)] {
            assert_eq!(at.mem_span(i).out_row, rank * m);
            assert_eq!(at.mem_from_hidden(i).out_row, rank * m);
            assert_eq!(at.write_kvb_from_scratch(i).a_offset, rank * m * d);
            assert_eq!(at.write_kvb(i).c_offset, rank * m * kvb);
        }
        // three open cells of layer 2 after a whole cell: one run of three, its groups widened over their scratch rows
        let open = |state, slot, p| cell(2, state, slot, 1, false, Some(p));
        let cells = [
            cell(2, 0, 0, 5, false, None),
            open(4, 1, 3),
            open(7, 3, 0),
            open(1, 2, 4),
        ];
        let at = Chunk::new(&cfg, &cells, r, cache);
        assert_eq!(at.runs, [0..1, 1..4]);
        let run = 1..4;
        assert_eq!(at.scratch_row(1), 8);
        let g = at.qkv_merged(&run);
        assert_eq!((g.m, g.a_offset, g.c_offset), (3, 8 * d, 8 * qkv));
        assert_eq!((g.b_offset, g.ldc), (2 * qkv * d, qkv));
        for (i, s) in [(1, 4), (2, 7), (3, 1)] {
            let x = &cells[i];
            assert_eq!(
                at.qkv_to_cache(i),
                Span {
                    in_row: 8 + i - 1,
                    out_row: cache(s) + x.open_at.unwrap(),
                    rows: 1,
                    ..Span::default()
                }
            );
            assert_eq!(
                at.scratch_to_hidden(i),
                Span {
                    in_row: 8 + i - 1,
                    out_row: x.slot * r,
                    ..at.in_scratch(i)
                }
            );
        }
        let o = at.merged_to_scratch(&run, at.o(1));
        assert_eq!((o.m, o.a_offset, o.c_offset, o.ldc), (3, 8 * q, 8 * d, d));
        let down = at.merged_to_scratch(&run, at.down(1));
        assert_eq!((down.m, down.a_offset, down.c_offset), (3, 8 * inter, 8 * d));
        let act = at.merged(&run, at.gate_up_swiglu(1));
        assert_eq!((act.m, act.a_offset, act.c_offset), (3, 8 * d, 8 * inter));
        let q_read = at.merged(&run, at.read_q_from_scratch(1));
        assert_eq!((q_read.m, q_read.a_offset, q_read.c_offset), (3, 8 * d, 8 * dm));
        // a run of one is the cell's own group
        assert_eq!(at.merged(&(0..1), at.qkv(0)), at.qkv(0));
        // the LM head of `finish`: rows first.. of the final hidden rows → logit rows 0..
        let (first, rows, v) = (4, 1, 11);
        let lm_head = Linear {
            rows,
            x_row: first,
            y_row: 0,
            layer: 0,
            k: d,
            n: v,
        };
        assert_eq!(lm_head.group(), gemm(rows, (first * d, 0, 0), (v, d), (d, d, v)));
    }
}
