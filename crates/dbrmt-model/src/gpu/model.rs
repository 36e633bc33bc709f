//! One diagonal step on the device: up to `max_cells` cells, each a group of every grouped launch.

use std::sync::Arc;

use cudarc::driver::{sys::CUevent_flags, CudaEvent, CudaSlice, CudaStream};
use dbrmt_kernels::{
    armt_read::armt_read_apply,
    armt_read_fused_sm90::{self, armt_read_fused_sm90, armt_read_fused_sm90_q, ReadShape, ReadSplit, ReadState},
    armt_write::{armt_write_features, armt_write_prep, armt_z_update, WriteFeatures, WritePrep},
    attention::attention_causal,
    attention_sm90::{self, attention_sm90_causal},
    dpfp::dpfp,
    embed::{embed_segment, embed_segment_mirrored},
    gemm::{
        gemm_nn_f32_f32_f32, gemm_nt_bf16_bf16_bf16, gemm_nt_bf16_bf16_f32, gemm_nt_f32_bf16_f32, gemm_tn_f32_f32_f32,
        GemmGroup,
    },
    gemm_sm90::{
        self, gemm_sm90_nt_bf16_bf16_bf16, gemm_sm90_nt_bf16_bf16_f32, gemm_sm90_nt_bf16_bf16_f32_mirrored,
        gemm_sm90_nt_bf16_bf16_swiglu, gemm_sm90_nt_normed, Epilogue, NormedRows,
    },
    gemm_sm90_rope::{gemm_sm90_nt_bf16_bf16_bf16_rope, rope_width, RopeTables},
    gemm_tf32x3_sm90::{
        gemm_sm90_nn_f32_f32_f32_tf32x3, gemm_sm90_nn_f32_f32_f32_tf32x3_prep, gemm_sm90_tn_f32_f32_f32_tf32x3,
        gemm_sm90_tn_f32_f32_f32_tf32x3_split, PrepInputs,
    },
    params::{Heads, Span, MAX_GROUPS},
    rms_norm::rms_norm,
    rope::{rope_and_prefetch, L2Prefetch},
    rows::add_rows_f32,
    swiglu::swiglu,
    to_bf16::to_bf16,
    Gpu, KernelError,
};

use half::bf16;

use super::chunk::Chunk;
use super::graphs::{Buffers, StepShape};
use super::runs;
use super::{DeviceState, DeviceWeights, Workspace};
use dbrmt_formats::ModelConfig;

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
    pub(super) fn rows(&self, mem: usize) -> usize {
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

/// The largest gate/up weights of a layer that a decode step's RoPE brings into L2 ahead of the gate/up product
/// (`rope_and_prefetch`). H200, session 14 (`docs/log/decode_graphs.md` §8): SmolLM2's 3.5 MB a layer whole, decode
/// 1.170–1.178 ms a token against 1.181–1.208 without; the 1B model's 67 MB, of which the first 24 MiB (1,536 bytes of
/// each row), 1.373–1.415 against 1.334–1.349 (the RoPE launch 5.3 µs instead of 3.2, the gate/up product only 0.8 µs
/// shorter): so only layers whose weights fit well inside the L2.
const L2_PREFETCH_BYTES: usize = 8 << 20;

/// Which kernels run the memory's f32 products (the read's `φ·A`, the write's `kφ·A` and `A += kφᵀ·u`), and
/// whether the read after its query projection is one fused launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryProducts {
    /// `φ·A` and `kφ·A` on the tensor cores (`gemm_sm90_nn_f32_f32_f32_tf32x3`), else SIMT (`gemm_nn_f32_f32_f32`).
    pub nn_tf32x3: bool,
    /// `A += kφᵀ·u` on the tensor cores (`gemm_sm90_tn_f32_f32_f32_tf32x3`), else SIMT (`gemm_tn_f32_f32_f32`).
    pub tn_tf32x3: bool,
    /// The read's DPFP, `φ·A` and `h += num / (φ·z + ε)` in one launch (`armt_read_fused_sm90_*`) with this split of
    /// `φ·A` (tf32 + bf16; 3×TF32 with `DBRMT_MEMORY=tf32x3`), else (`None`) `dpfp`, the `φ·A` product and
    /// `armt_read_apply` as three.
    pub read_fused: Option<ReadSplit>,
    /// The fused tf32 + bf16 read takes `A` split once per change (`armt_state_split` after the write, kept in
    /// [`DeviceState::split`]) instead of converting it in every read: the same bits, no converter warps
    /// (`DBRMT_STATE_SPLIT=off` turns it off).
    pub read_pre_split: bool,
    /// With the pre-split read, a decode step's read makes its own query projection (launches of ≤ 64 rows a cell
    /// at 32 columns: `armt_read_fused_sm90_q`, the q GEMM's bits): one launch instead of two, where the hidden size
    /// lets it pay (`armt_read_fused_sm90::fused_q_pays`; `DBRMT_READ_Q=off`).
    pub read_fused_q: bool,
}

impl MemoryProducts {
    /// The tensor-core kernels where the shapes take them (D = 2·ν·d_mem a multiple of 32 and d of 4; for the update
    /// also M a multiple of 32), the fused read where the tensor-core products run and it takes the shape (d_mem 32
    /// or 64, D ≤ 512), its `φ·A` split tf32 + bf16. `DBRMT_MEMORY=simt` forces SIMT (and the unfused read),
    /// `DBRMT_MEMORY=unfused` only the unfused read, `DBRMT_MEMORY=tf32x3` the fused read in 3×TF32 (to compare on one
    /// build). Per model, like the other choices, so diagonal, sequential and decoding runs use the same kernels.
    pub fn for_model(cfg: &ModelConfig) -> Self {
        let choice = std::env::var("DBRMT_MEMORY").unwrap_or_default();
        Self::for_shape(cfg, &choice)
    }

    /// [`MemoryProducts::for_model`] with the value of `DBRMT_MEMORY` given (`""` when unset).
    fn for_shape(cfg: &ModelConfig, choice: &str) -> Self {
        let pre_split = !dbrmt_kernels::switches::is_off(dbrmt_kernels::switches::STATE_SPLIT);
        Self::for_choices(cfg, choice, pre_split)
    }

    /// [`MemoryProducts::for_shape`] with the pre-split switch given.
    fn for_choices(cfg: &ModelConfig, choice: &str, pre_split: bool) -> Self {
        let simt = choice == "simt";
        let nn = !simt && cfg.d_key().is_multiple_of(32) && cfg.llama.hidden_size.is_multiple_of(4);
        let shape = ReadShape {
            d: cfg.llama.hidden_size,
            d_mem: cfg.armt.d_mem,
            nu: cfg.armt.nu,
        };
        let read_fused =
            (nn && choice != "unfused" && armt_read_fused_sm90::supports(shape).is_ok()).then_some(match choice {
                "tf32x3" => ReadSplit::Tf32x3,
                _ => ReadSplit::Tf32Bf16,
            });
        MemoryProducts {
            nn_tf32x3: nn,
            tn_tf32x3: nn && cfg.armt.num_mem_tokens.is_multiple_of(32),
            read_fused,
            read_pre_split: pre_split && read_fused == Some(ReadSplit::Tf32Bf16),
            read_fused_q: pre_split
                && read_fused == Some(ReadSplit::Tf32Bf16)
                && armt_read_fused_sm90::fused_q_pays(shape)
                && !dbrmt_kernels::switches::is_off(dbrmt_kernels::switches::READ_Q),
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

/// A decode step's norms inside the q/k/v and gate/up launches (`gemm_sm90_nt_normed`; the same bytes as `rms_norm`
/// and the product): on unless `DBRMT_DECODE_NORM=off` or [`set_decode_norm`] said otherwise.
pub fn decode_norm_enabled() -> bool {
    DECODE_NORM.enabled()
}

/// Turns the normed decode launches on or off for the steps that follow (tests compare both).
pub fn set_decode_norm(on: bool) {
    DECODE_NORM.set(on);
}

static DECODE_NORM: dbrmt_kernels::switches::RuntimeSwitch =
    dbrmt_kernels::switches::RuntimeSwitch::new(dbrmt_kernels::switches::DECODE_NORM);

/// A prefill's RoPE inside its q/k/v product for whole segments (`gemm_sm90_nt_bf16_bf16_bf16_rope`, v12: the same
/// bytes as the product and `rope` in place): on unless `DBRMT_QKV_ROPE=off` or [`set_qkv_rope`] said otherwise.
pub fn qkv_rope_enabled() -> bool {
    QKV_ROPE.enabled()
}

/// Turns the q/k/v product's RoPE on or off for the steps that follow (tests compare both).
pub fn set_qkv_rope(on: bool) {
    QKV_ROPE.set(on);
}

static QKV_ROPE: dbrmt_kernels::switches::RuntimeSwitch =
    dbrmt_kernels::switches::RuntimeSwitch::new(dbrmt_kernels::switches::QKV_ROPE);

/// [`GpuModel::two_streams_pay`]'s rule for one group of cells of `rows` rows each at hidden size `d`: its o product's
/// 128 × 128 tiles make 4 to 16 waves on `sms` SMs.
fn group_waves_pay(rows: impl Iterator<Item = usize>, d: usize, sms: usize) -> bool {
    let tiles = rows.map(|r| r.div_ceil(128)).sum::<usize>() * d.div_ceil(128);
    (4 * sms..=16 * sms).contains(&tiles)
}

/// Whether the open cells of one layer share one group per projection (`DBRMT_MERGE_ROWS=off`: one group per cell, to
/// compare; the bits are the same either way, see [`runs`]).
pub(super) fn merge_rows() -> bool {
    !dbrmt_kernels::switches::is_off(dbrmt_kernels::switches::MERGE_ROWS)
}

impl GpuModel {
    /// Runs one step: every cell's read, decoder layer and write. The cells must be independent (one step of a
    /// valid schedule); more than the workspace or a launch can hold are run in chunks, which is equally valid. A step
    /// of open cells only (decode) runs as a CUDA graph once its shape has been seen ([`super::graphs`]): the same
    /// launches, replayed.
    pub fn step(
        &self,
        gpu: &Gpu,
        stream: &Arc<CudaStream>,
        ws: &mut Workspace,
        st: &mut DeviceState,
        cells: &[StepCell],
    ) -> Result<(), KernelError> {
        let sorted = self.prepare_step(stream, ws, cells)?;
        let shape = StepShape::of(&sorted, || self.step_buffers(stream, ws, st).into_inner());
        ws.launch_or_replay(stream, shape, st, |ws, st| {
            self.step_chunks(gpu, stream, ws, st, &sorted)
        })
    }

    /// [`GpuModel::step`] as plain launches (inside a larger capture: a session's whole decode token).
    pub(crate) fn step_launches(
        &self,
        gpu: &Gpu,
        stream: &Arc<CudaStream>,
        ws: &mut Workspace,
        st: &mut DeviceState,
        cells: &[StepCell],
    ) -> Result<(), KernelError> {
        let sorted = self.prepare_step(stream, ws, cells)?;
        self.step_chunks(gpu, stream, ws, st, &sorted)
    }

    /// A step's checks, its open cells' positions (which RoPE and attention read on the device; uploaded only when one
    /// changed), and its cells in launch order: open cells of one layer side by side, so that each chunk merges them
    /// (any order of a step's cells is valid).
    fn prepare_step(
        &self,
        stream: &Arc<CudaStream>,
        ws: &mut Workspace,
        cells: &[StepCell],
    ) -> Result<Vec<StepCell>, KernelError> {
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
        ws.set_positions(stream, cells.iter().filter_map(|x| x.open_at.map(|p| (x.state, p))))?;
        Ok(runs::merge_order(cells).into_iter().map(|i| cells[i]).collect())
    }

    /// The step's cells in chunks of at most a launch's groups and the workspace's cells.
    fn step_chunks(
        &self,
        gpu: &Gpu,
        stream: &CudaStream,
        ws: &mut Workspace,
        st: &mut DeviceState,
        sorted: &[StepCell],
    ) -> Result<(), KernelError> {
        let m = self.cfg.armt.num_mem_tokens;
        for chunk in chunks(sorted, m, ws.max_cells.max(1), ws.scratch_rows) {
            self.step_chunk(gpu, stream, ws, st, chunk)?;
        }
        Ok(())
    }

    /// Every buffer a step's launches take (a captured step is replayed only over the same ones), and the stream.
    pub(crate) fn step_buffers<'s>(&self, stream: &'s CudaStream, ws: &Workspace, st: &DeviceState) -> Buffers<'s> {
        let mut b = Buffers::new(stream);
        let f32s = [
            &ws.hidden, &ws.u, &ws.phi, &ws.num, &ws.kvb, &ws.kphi, &ws.ka, &ws.upd, &ws.gamma, &st.a, &st.z,
        ];
        for buf in f32s {
            b.add(buf);
        }
        match &st.split {
            Some(split) => b.add(split),
            None => b.add_raw(0),
        };
        // the model's weights too (a workspace may serve another model)
        for buf in [
            &ws.hidden_bf16,
            &ws.normed,
            &ws.qkv,
            &ws.attn,
            &ws.gate_up,
            &ws.act,
            &self.weights.qkv,
        ] {
            b.add(buf);
        }
        // and the stream the graph was captured on
        b.add(&ws.ids).add(&ws.positions).add_raw(stream.cu_stream() as u64);
        b
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
        self.chunk_front(gpu, stream, ws, st, &at)?;
        self.chunk_back(gpu, stream, ws, st, &at)
    }

    /// A chunk's embedding of entering segments and its read.
    fn chunk_front(
        &self,
        gpu: &Gpu,
        stream: &CudaStream,
        ws: &mut Workspace,
        st: &mut DeviceState,
        at: &Chunk,
    ) -> Result<(), KernelError> {
        self.embed_entering(gpu, stream, ws, at)?;
        self.read(gpu, stream, ws, st, at)
    }

    /// A chunk's attention block, MLP block and write.
    fn chunk_back(
        &self,
        gpu: &Gpu,
        stream: &CudaStream,
        ws: &mut Workspace,
        st: &mut DeviceState,
        at: &Chunk,
    ) -> Result<(), KernelError> {
        self.attention_block(gpu, stream, ws, at)?;
        self.mlp_block(gpu, stream, ws, at)?;
        self.write(gpu, stream, ws, st, at)
    }

    /// Whether a prefill step's cells fit [`GpuModel::step_two_streams`]: whole segments only, all in one chunk.
    pub fn fits_two_streams(&self, ws: &Workspace, cells: &[StepCell]) -> bool {
        let m = self.cfg.armt.num_mem_tokens;
        ws.profile.is_none()
            && cells.iter().all(|x| x.open_at.is_none())
            && chunks(cells, m, ws.max_cells.max(1), ws.scratch_rows).len() <= 1
    }

    /// Whether running a step's two groups on two streams pays, by the waves of 128 × 128 tiles of each group's
    /// narrowest product (o: `d` columns): between 4 and 16. Fewer, and halving a launch's cells costs its products
    /// waves; more, and the step is its products, with little short work to hide beside them. Measured on the H200
    /// (session 20, `docs/log/two_streams.md`), diagonal against one stream: 1B T = 1024 (8.7 waves) 131K −2%; 160M
    /// T = 512 (1.4) +3–6%; 1B T = 4096 (32), 3B (23) and 8B (35) T = 1024 at 32K within ±0.7%.
    /// `DBRMT_TWO_STREAMS=force` takes two streams wherever both groups have cells (to measure).
    pub fn two_streams_pay(&self, gpu: &Gpu, groups: [&[StepCell]; 2]) -> bool {
        if super::executor::two_streams_forced() {
            return true;
        }
        let (m, d) = (self.cfg.armt.num_mem_tokens, self.cfg.llama.hidden_size);
        groups
            .iter()
            .all(|g| group_waves_pay(g.iter().map(|x| x.rows(m)), d, gpu.sm_count()))
    }

    /// One prefill step as two groups on two streams: `low` (the lower layers' cells) on `s1`, `high` on `s2`, their
    /// scratch side by side (the bits of every cell are those of [`GpuModel::step`]: the same launches, other rows).
    /// `s2` first waits for all that `s1` issued before (the previous step's `low`, whose rows `high`'s lowest layer
    /// reads); then the two groups run side by side, one group's short memory launches beside the other's products.
    /// The caller orders what else the two streams share (hidden slots reused, the end of the prefill); the event
    /// returned is recorded on `s2` after `high`. Cells must pass [`GpuModel::fits_two_streams`] together.
    #[allow(clippy::too_many_arguments)]
    pub fn step_two_streams(
        &self,
        gpu: &Gpu,
        s1: &Arc<CudaStream>,
        s2: &Arc<CudaStream>,
        ws: &mut Workspace,
        st: &mut DeviceState,
        low: &[StepCell],
        high: &[StepCell],
    ) -> Result<CudaEvent, KernelError> {
        // Where `s2` starts was measured three ways (session 20): at the step's start, after `low`'s read, after its
        // attention block — within 0.5% on 1B, the start best on 160M; the start is the simplest.
        let no_timing = Some(CUevent_flags::CU_EVENT_DISABLE_TIMING);
        let at_low = Chunk::new(&self.cfg, low, ws.rows, |layer| ws.cache_row(layer));
        let at_high = Chunk::new(&self.cfg, high, ws.rows, |layer| ws.cache_row(layer)).placed_at(at_low.scratch_end());
        s2.wait(&s1.record_event(no_timing)?)?;
        self.chunk_front(gpu, s2, ws, st, &at_high)?;
        self.chunk_back(gpu, s2, ws, st, &at_high)?;
        let high_done = s2.record_event(no_timing)?;
        self.chunk_front(gpu, s1, ws, st, &at_low)?;
        self.chunk_back(gpu, s1, ws, st, &at_low)?;
        Ok(high_done)
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
        let (d, vocab) = (l.hidden_size, l.vocab_size);
        if self.memory_projections_on_sm90() {
            // and the rows in bf16 into `hidden_bf16`, for a layer-0 read's q projection
            let rows = (&mut ws.hidden, &mut ws.hidden_bf16);
            embed_segment_mirrored(gpu, stream, &ws.ids, &w.embed, &w.memory, rows, &entering, d, vocab)?;
        } else {
            embed_segment(
                gpu,
                stream,
                &ws.ids,
                &w.embed,
                &w.memory,
                &mut ws.hidden,
                &entering,
                d,
                vocab,
            )?;
        }
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
        let apply: Vec<Span> = readers.iter().map(|&i| at.read_apply(i)).collect();
        let shape = ReadShape {
            d,
            d_mem: a.d_mem,
            nu: a.nu,
        };
        if self.memory_projections_on_sm90() {
            // The rows in bf16 are `hidden_bf16`, written by the previous layer's down projection (layer 0: by the
            // embedding, in this step). A decode step (≤ 64 rows a cell, the read at 32 columns): the read makes u
            // itself from those rows.
            let width = || {
                let decode = dbrmt_kernels::gemm_sm90::decode_tiles_enabled();
                armt_read_fused_sm90::read_width(&apply, shape, gpu.sm_count(), decode)
            };
            if let Some(split) = st.split.as_ref().filter(|_| self.memory.read_fused_q && width() == 32) {
                // x's rows are the cells' hidden rows (the spans' in_row; the outputs stay `apply`'s)
                let from_hidden: Vec<Span> = apply
                    .iter()
                    .map(|s| Span {
                        in_row: s.out_row,
                        ..*s
                    })
                    .collect();
                let (x, hidden) = ((&ws.hidden_bf16, d), (&mut ws.hidden, d));
                armt_read_fused_sm90_q(gpu, stream, x, &w.mem_q, split, &st.z, hidden, &from_hidden, shape)?;
                return ws.mark(stream, "read: q projection + fused φ·A + apply");
            }
            let reading = |r: &&std::ops::Range<usize>| !at.cells[r.start].first_segment;
            if at.runs.iter().filter(reading).all(|r| r.len() == 1) {
                // one group a cell: A its hidden rows in bf16, u its scratch rows
                let q: Vec<GemmGroup> = readers.iter().map(|&i| at.read_q(i)).collect();
                gemm_sm90_nt_bf16_bf16_f32(gpu, stream, &ws.hidden_bf16, &w.mem_q, &mut ws.u, &q, false)?;
            } else {
                // merged runs (several requests' decode rows of one layer): the rows rounded into the packed scratch
                // so that a run is one group (the layer's W_mq read once for all its rows; the bits are the same)
                let rows: Vec<Span> = readers.iter().map(|&i| at.to_scratch(i)).collect();
                to_bf16(gpu, stream, &ws.hidden, d, &mut ws.normed, d, &rows, d)?;
                ws.mark(stream, "read: rows to bf16 (merged runs)")?;
                let q: Vec<GemmGroup> = at
                    .runs
                    .iter()
                    .filter(reading)
                    .map(|r| at.merged(r, at.read_q_from_scratch(r.start)))
                    .collect();
                gemm_sm90_nt_bf16_bf16_f32(gpu, stream, &ws.normed, &w.mem_q, &mut ws.u, &q, false)?;
            }
        } else {
            let q: Vec<GemmGroup> = readers.iter().map(|&i| at.read_q(i)).collect();
            gemm_nt_f32_bf16_f32(gpu, stream, &ws.hidden, &w.mem_q, &mut ws.u, &q, false)?;
        }
        ws.mark(stream, "read: q projection")?;
        if let Some(split) = self.memory.read_fused {
            // u's scratch rows → the cell's hidden rows, with its state (`apply`, the spans of the unfused apply);
            // the split form when the model keeps one (every write and upload made it again), else the f32 state
            let state = match &st.split {
                Some(split) if self.memory.read_pre_split => ReadState::Split(split),
                _ => ReadState::F32(&st.a),
            };
            armt_read_fused_sm90(
                gpu,
                stream,
                (&ws.u, a.d_mem),
                state,
                &st.z,
                (&mut ws.hidden, d),
                &apply,
                shape,
                split,
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
        armt_read_apply(gpu, stream, &ws.num, &ws.phi, &st.z, &mut ws.hidden, d, &apply, d, dk)?;
        ws.mark(stream, "read: apply")
    }

    /// The attention block: `x += o(attn(rope(qkv(norm(x)))))`. The q/k/v rows of every cell go to the packed
    /// scratch; RoPE moves an open segment's into its layer's KV cache rows, after the rows cached before them.
    fn attention_block(
        &self,
        gpu: &Gpu,
        stream: &CudaStream,
        ws: &mut Workspace,
        at: &Chunk,
    ) -> Result<(), KernelError> {
        let (w, l) = (&self.weights, &self.cfg.llama);
        let all = 0..at.len();
        let heads = Heads {
            heads: l.num_heads,
            kv_heads: l.num_kv_heads,
            head_dim: l.head_dim,
        };
        let mut rotate: Vec<Span> = all.clone().map(|i| at.rotate(i)).collect();
        // every run's rows are one group into its scratch rows; RoPE moves an open cell's into its KV cache
        let qkv: Vec<GemmGroup> = at.runs.iter().map(|r| at.merged(r, at.qkv(r.start))).collect();
        let (product, label) = ((&w.qkv, &qkv[..], Epilogue::Bf16), "rms_norm + q/k/v projection");
        if !self.norm_for(gpu, stream, ws, at, &w.input_norm, product, label)? {
            if let Some(fused) = self.qkv_rope(gpu, at, &qkv, &rotate, heads) {
                // v12: whole segments rotated by the product; RoPE's launch keeps only the other cells
                let tables = RopeTables {
                    cos: &w.rope_cos,
                    sin: &w.rope_sin,
                    heads,
                };
                gemm_sm90_nt_bf16_bf16_bf16_rope(gpu, stream, &ws.normed, &w.qkv, &mut ws.qkv, &qkv, &tables, &fused)?;
                ws.mark(stream, "q/k/v projection + rope")?;
                rotate = rotate
                    .into_iter()
                    .zip(&fused)
                    .filter(|(_, &f)| !f)
                    .map(|(s, _)| s)
                    .collect();
            } else {
                self.linear_bf16(gpu, stream, &ws.normed, &w.qkv, &mut ws.qkv, &qkv)?;
                ws.mark(stream, "q/k/v projection")?;
            }
        }
        let (alone, merged) = runs::split(&at.runs);
        // one layer's cells whose gate/up weights fit: a decode step's RoPE (the `_few` entry; the launcher
        // prefetches for no other) brings them into L2 meanwhile
        let (layer, rows) = (at.cells[0].layer, 2 * l.intermediate_size);
        let one_layer = at.cells.iter().all(|c| c.layer == layer);
        let prefetch = (self.projections == Projections::Sm90 && one_layer && rows * at.d * 2 <= L2_PREFETCH_BYTES)
            .then_some(L2Prefetch {
                buf: &w.gate_up,
                first_row: layer * rows,
                rows,
                row_len: at.d,
                prefix: at.d,
            });
        if !rotate.is_empty() {
            let (qkv, tables) = ((&mut ws.qkv, at.qkv_width), (&w.rope_cos, &w.rope_sin));
            let positions = Some(&ws.positions);
            rope_and_prefetch(gpu, stream, qkv, tables, &rotate, positions, heads, prefetch.as_ref())?;
            ws.mark(stream, "rope")?;
        }
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
            Some(&ws.positions),
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
        let w = &self.weights;
        let all = 0..at.len();
        // every run's rows (one cell, or the merged open cells of one layer) are one group: A and C in the scratch
        let act: Vec<GemmGroup> = at
            .runs
            .iter()
            .map(|r| at.merged(r, at.gate_up_swiglu(r.start)))
            .collect();
        let product = (&w.gate_up, &act[..], Epilogue::SwiGlu);
        let label = "rms_norm + gate/up projection + swiglu";
        if self.norm_for(gpu, stream, ws, at, &w.post_norm, product, label)? {
            // the normed launch made the activations
        } else if self.projections == Projections::Sm90 {
            // silu(gate)·up straight out of the gate/up product (weights interleaved on upload)
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
        let mirror = self.memory_projections_on_sm90();
        if !down.is_empty() {
            if mirror {
                // and the result rounded to bf16 into `hidden_bf16`, for the write's and the next read's projections
                let (hidden, bf16_rows) = (&mut ws.hidden, &mut ws.hidden_bf16);
                gemm_sm90_nt_bf16_bf16_f32_mirrored(gpu, stream, &ws.act, &w.down, (hidden, bf16_rows), &down, true)?;
            } else {
                self.linear_f32(gpu, stream, &ws.act, &w.down, &mut ws.hidden, &down, true)?;
            }
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
            if mirror {
                let rows: Vec<Span> = merged.iter().flat_map(|r| r.clone()).map(|i| at.in_hidden(i)).collect();
                to_bf16(gpu, stream, &ws.hidden, at.d, &mut ws.hidden_bf16, at.d, &rows, at.d)?;
            }
        }
        ws.mark(stream, "down projection + residual")
    }

    /// A block's RMSNorm of its cells' hidden rows with `norm_w` (a row a layer) for the product `groups` of `b`
    /// with `epilogue`: where [`Self::normed_rows`] takes it (a decode step), made inside that product's launch
    /// (`gemm_sm90_nt_normed`, into the q/k/v rows for bf16 output, the activations for SwiGLU), marked `label`, and
    /// `true`; else `rms_norm` into `ws.normed` for the caller's product, and `false`.
    #[allow(clippy::too_many_arguments)]
    fn norm_for(
        &self,
        gpu: &Gpu,
        stream: &CudaStream,
        ws: &mut Workspace,
        at: &Chunk,
        norm_w: &CudaSlice<bf16>,
        (b, groups, epilogue): (&CudaSlice<bf16>, &[GemmGroup], Epilogue),
        label: &'static str,
    ) -> Result<bool, KernelError> {
        let eps = self.cfg.llama.rms_norm_eps;
        if let Some(rows) = self.normed_rows(gpu, at, groups, epilogue) {
            let a = NormedRows {
                x: &ws.hidden,
                x_ld: at.d,
                w: norm_w,
                eps,
                rows: &rows,
            };
            let c = match epilogue {
                Epilogue::SwiGlu => &mut ws.act,
                _ => &mut ws.qkv,
            };
            gemm_sm90_nt_normed(gpu, stream, &a, b, c, groups, epilogue)?;
            ws.mark(stream, label)?;
            return Ok(true);
        }
        let to_scratch: Vec<Span> = (0..at.len()).map(|i| at.to_scratch(i)).collect();
        let (x, y) = (&ws.hidden, &mut ws.normed);
        rms_norm(gpu, stream, x, at.d, norm_w, y, at.d, &to_scratch, at.d, eps)?;
        ws.mark(stream, "rms_norm")?;
        Ok(false)
    }

    /// Where a launch's RMSNorm goes into its product (`gemm_sm90_nt_normed`, a decode step): the v2 projections,
    /// `DBRMT_DECODE_NORM` on, a normed width for `groups` (decode rows of at most 8 a group: [`gemm_sm90::normed_width`])
    /// and each run's cells one after another in the hidden rows (one cell a run, a decode step of one request; a
    /// merged run's cells sit in separate slots). Then per run: its first hidden row and its layer (the norm's row).
    fn normed_rows(
        &self,
        gpu: &Gpu,
        at: &Chunk,
        groups: &[GemmGroup],
        epilogue: Epilogue,
    ) -> Option<Vec<(usize, usize)>> {
        let on = self.projections == Projections::Sm90 && decode_norm_enabled();
        let decode = gemm_sm90::decode_tiles_enabled();
        if !on || gemm_sm90::normed_width(groups, epilogue, gpu.sm_count(), decode).is_none() {
            return None;
        }
        at.runs
            .iter()
            .map(|r| {
                let first = at.to_scratch(r.start);
                let mut next = first.in_row;
                for i in r.clone() {
                    let s = at.to_scratch(i);
                    (s.in_row == next).then_some(())?;
                    next += s.rows;
                }
                Some((first.in_row, first.layer))
            })
            .collect()
    }

    /// Which of a step's cells the q/k/v product rotates itself (v12, `gemm_sm90_nt_bf16_bf16_bf16_rope`), or `None`
    /// where it rotates none: the v2 projections, `DBRMT_QKV_ROPE` on, a RoPE width for the launch ([`rope_width`]:
    /// not a decode launch, head dims 64 and 128), one cell a run; then each cell whose RoPE is a whole segment in
    /// place (position 0, the product's own rows).
    fn qkv_rope(
        &self,
        gpu: &Gpu,
        at: &Chunk,
        groups: &[GemmGroup],
        rotate: &[Span],
        heads: Heads,
    ) -> Option<Vec<bool>> {
        let decode = gemm_sm90::decode_tiles_enabled();
        let one_cell_a_run = at.runs.iter().all(|r| r.len() == 1) && groups.len() == rotate.len();
        if self.projections != Projections::Sm90
            || !qkv_rope_enabled()
            || !one_cell_a_run
            || rope_width(groups, heads, gpu.sm_count(), decode).is_none()
        {
            return None;
        }
        let whole = |(g, s): (&GemmGroup, &Span)| {
            !s.dynamic && s.pos == 0 && s.out_row == s.in_row && g.c_offset == s.in_row * g.ldc && g.m == s.rows
        };
        let fused: Vec<bool> = groups.iter().zip(rotate).map(whole).collect();
        fused.contains(&true).then_some(fused)
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
    pub(super) fn linear_f32(
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
        let kvb_groups: Vec<GemmGroup> = writers.iter().map(|&i| at.write_kvb(i)).collect();
        if self.memory_projections_on_sm90() {
            // the memory rows in bf16: `hidden_bf16`, as the down projection just left them
            let (rows, kvb) = (&ws.hidden_bf16, &mut ws.kvb);
            gemm_sm90_nt_bf16_bf16_f32(gpu, stream, rows, &w.mem_kvb, kvb, &kvb_groups, false)?;
        } else {
            gemm_nt_f32_bf16_f32(gpu, stream, &ws.hidden, &w.mem_kvb, &mut ws.kvb, &kvb_groups, false)?;
        }
        ws.mark(stream, "write: k/v/β projection")?;
        // kφ·A_old, not for segment 0
        let ka: Vec<GemmGroup> = writers
            .iter()
            .filter(|&&i| !at.cells[i].first_segment)
            .map(|&i| at.write_ka(i))
            .collect();
        // The prep in the product's epilogue where the product is the tensor-core one: DPFP with the rows' statistics
        // (δ, β, γ; segment 0's u), then kφ·A storing u (the same bits as DPFP, the product into ka and the prep).
        let prep_in_product = self.memory.nn_tf32x3
            && !dbrmt_kernels::switches::is_off(dbrmt_kernels::switches::PREP_IN_PRODUCT)
            && kvb.is_multiple_of(4)
            && a.d_mem.is_multiple_of(4);
        if prep_in_product {
            let features = WriteFeatures {
                kvb: &ws.kvb,
                kvb_ld: kvb,
                v_col: a.d_mem,
                d_mem: a.d_mem,
                nu: a.nu,
                z: &st.z,
                b_beta: &w.beta_bias,
                d,
                correction: a.correction,
            };
            let (kphi, stats, upd, gamma) = (&mut ws.kphi, &mut ws.write_stats, &mut ws.upd, &mut ws.gamma);
            armt_write_features(gpu, stream, &features, kphi, stats, upd, gamma, &mem)?;
            ws.mark(stream, "write: dpfp + row statistics")?;
            if !ka.is_empty() {
                let prep = PrepInputs {
                    kvb: &ws.kvb,
                    kvb_ld: kvb,
                    v_col: a.d_mem,
                    stats: &ws.write_stats,
                };
                gemm_sm90_nn_f32_f32_f32_tf32x3_prep(gpu, stream, (&ws.kphi, &st.a), &mut ws.upd, prep, &ka)?;
                ws.mark(stream, "write: kφ·A → u (prep in the epilogue)")?;
            }
        } else {
            dpfp(gpu, stream, &ws.kvb, kvb, 0, &mut ws.kphi, dk, &mem, a.d_mem, a.nu)?;
            ws.mark(stream, "write: dpfp")?;
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
        }
        let update: Vec<GemmGroup> = writers.iter().map(|&i| at.write_update(i)).collect();
        // The split in the update's epilogue lengthens each tile by its pass over the tile: it pays where the tiles
        // fill the GPU (a diagonal step: 1B 16 cells × 48 tiles), not for one cell's 18–48 tiles (a sequential
        // step), where the separate split's many small blocks finish sooner (H200, session 19 call 6).
        let split_in_update = self.memory.tn_tf32x3
            && !dbrmt_kernels::switches::is_off(dbrmt_kernels::switches::SPLIT_IN_UPDATE)
            && dk.is_multiple_of(32)
            && dbrmt_kernels::gemm_tf32x3_sm90::tiles(&update) >= gpu.sm_count();
        if let (Some(split), true) = (st.split.as_mut(), split_in_update) {
            // the new A and its split form (for the next reads) from the update's epilogue: one pass over A fewer
            let (kphi, upd) = (&ws.kphi, &ws.upd);
            gemm_sm90_tn_f32_f32_f32_tf32x3_split(gpu, stream, kphi, upd, &mut st.a, (split, dk), &update)?;
            ws.mark(stream, "write: A += kφᵀ·u, split")?;
        } else {
            match self.memory.tn_tf32x3 {
                true => gemm_sm90_tn_f32_f32_f32_tf32x3(gpu, stream, &ws.kphi, &ws.upd, &mut st.a, &update, true)?,
                false => gemm_tn_f32_f32_f32(gpu, stream, &ws.kphi, &ws.upd, &mut st.a, &update, true)?,
            }
            ws.mark(stream, "write: A += kφᵀ·u")?;
            if st.split.is_some() {
                // A changed: its split form for the next reads (armt_state_split)
                let states: Vec<usize> = writers.iter().map(|&i| at.cells[i].state).collect();
                st.derive_split(gpu, stream, &states)?;
                ws.mark(stream, "write: split A")?;
            }
        }
        armt_z_update(gpu, stream, &ws.kphi, &ws.gamma, &mut st.z, &mem, dk)?;
        ws.mark(stream, "write: z update")
    }
}

#[cfg(test)]
pub(super) mod tests {
    use dbrmt_formats::{ArmtParams, LlamaConfig};

    use super::*;

    pub(crate) fn config() -> ModelConfig {
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

    /// The fused read (tf32 + bf16; `tf32x3` picks 3×TF32) where the tensor-core products run and d_mem is 32 or 64;
    /// `unfused` and `simt` turn it off.
    #[test]
    fn memory_products_choose_the_fused_read() {
        let mut cfg = config();
        cfg.llama.hidden_size = 2048;
        cfg.armt.d_mem = 64;
        cfg.armt.num_mem_tokens = 128;
        let on = MemoryProducts::for_shape(&cfg, "");
        assert!(on.nn_tf32x3 && on.tn_tf32x3 && on.read_fused == Some(ReadSplit::Tf32Bf16));
        let x3 = MemoryProducts::for_shape(&cfg, "tf32x3");
        assert_eq!(x3.read_fused, Some(ReadSplit::Tf32x3));
        let unfused = MemoryProducts::for_shape(&cfg, "unfused");
        assert!(unfused.nn_tf32x3 && unfused.read_fused.is_none());
        let simt = MemoryProducts::for_shape(&cfg, "simt");
        assert!(!simt.nn_tf32x3 && !simt.tn_tf32x3 && simt.read_fused.is_none());
        cfg.armt.d_mem = 16; // D = 96: tensor-core products, but no fused read
        let small = MemoryProducts::for_shape(&cfg, "");
        assert!(small.nn_tf32x3 && small.read_fused.is_none());
        assert!(MemoryProducts::for_shape(&config(), "").read_fused.is_none(), "d_mem 2");
    }

    /// The pre-split state goes with the tf32 + bf16 fused read only, and the switch turns it off.
    #[test]
    fn the_pre_split_read_is_the_tf32_bf16_reads() {
        let mut cfg = config();
        cfg.llama.hidden_size = 2048;
        cfg.armt.d_mem = 64;
        cfg.armt.num_mem_tokens = 128;
        assert!(MemoryProducts::for_choices(&cfg, "", true).read_pre_split);
        assert!(!MemoryProducts::for_choices(&cfg, "", false).read_pre_split);
        for other in ["tf32x3", "unfused", "simt"] {
            assert!(
                !MemoryProducts::for_choices(&cfg, other, true).read_pre_split,
                "{other}"
            );
        }
    }

    /// The two-stream rule at the shapes it was measured on (H200, 132 SMs, M = 128; halves of a full step): on for
    /// the 1B model at T = 512 and 1024, off for the 160M model, for the 1B at T = 2048 and for 3B and 8B.
    #[test]
    fn two_streams_where_the_halves_keep_4_to_16_waves() {
        let half = |cells: usize, t: usize, d: usize| group_waves_pay(std::iter::repeat_n(t + 128, cells), d, 132);
        assert!(half(8, 512, 2048), "1B T = 512: 4.8 waves");
        assert!(half(8, 1024, 2048), "1B T = 1024: 8.7 waves");
        assert!(!half(8, 2048, 2048), "1B T = 2048: 16.5 waves");
        assert!(!half(6, 512, 768), "160M T = 512: 1.4 waves");
        assert!(!half(14, 1024, 3072), "3B T = 1024: 23 waves");
        assert!(!half(16, 1024, 4096), "8B T = 1024: 35 waves");
    }
}
