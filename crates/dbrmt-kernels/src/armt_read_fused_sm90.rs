//! Launcher of `cuda/armt_read_fused_sm90.cu`: ARMT's whole associative read after the query projection, in one
//! launch over the step's reading cells: `h += φ(u)·A / (φ(u)·z + ε)` with `u = h·W_qᵀ` `[rows, d_mem]` already
//! computed, `φ` = DPFP(ν) made on the fly, `φ·A` on the tensor cores at f32 accuracy, straight into the f32 hidden
//! rows. It replaces [`crate::dpfp::dpfp`] + the 3×TF32 `φ·A` + [`crate::armt_read::armt_read_apply`]; the math is
//! [`reference::armt_read::read_from_u`](crate::reference::armt_read::read_from_u).
//!
//! One span per cell: `in_row` its first row of `u`, `out_row` its first hidden row, `rows`, `state` (its `A` and
//! `z`). Tiles are 128 × 128 whatever the launch, with no split-K and no atomics, so a cell's bits never depend on
//! the other cells of its launch (nor a row's on where it sits in a tile: decoded rows get the bits of a prefill).

use cudarc::driver::sys::CUfunction_attribute;
use cudarc::driver::{CudaSlice, CudaStream, DeviceRepr, LaunchConfig};

use crate::launch::{addr, addr_mut, check_disjoint_outputs, check_groups, check_index, check_rows, invalid, Rows};
use crate::params::{Span, MAX_GROUPS};
use crate::tma::{self, F32, SWIZZLE_128B, SWIZZLE_NONE};
use crate::{cubins, Gpu, Kernel, KernelError};
use half::bf16;

const THREADS: u32 = 384;
/// `read_fused::smem_bytes()`: 3 stages × 48 KB, the 34 KB u tile (128 rows of 68 f32), 2 KB of z, 2 × 17408
/// epilogue staging, 11 barriers (the 128-wide plan; [`smem_for`] gives every width's).
#[cfg(test)]
const SMEM: usize = 3 * 49152 + 34816 + 2048 + 2 * 17408 + 11 * 8;
/// Tile rows and columns, and the A box (`read_fused::A_BOX_*`; the narrow column tiles take an A box of `{width, 32}`).
const TILE: usize = 128;
/// The u box is `{d_mem + U_PAD, 128}`, unswizzled: one box a tile, rows padded by 4 zero-filled columns (the
/// kernel's bank-conflict-free layout, `read_fused::u_pitch_bytes`).
const U_PAD: usize = 4;
const U_BOX_ROWS: u32 = 128;
/// The kernel's fixed buffers beside the stages (`read_fused::U_BYTES`, `Z_BYTES`, `sm90::STAGING_BYTES`): the u tile
/// at the largest d_mem (64), z at the largest D (512), the two warpgroups' epilogue staging.
const U_BYTES: usize = (64 + U_PAD) * U_BOX_ROWS as usize * 4;
const Z_BYTES: usize = 512 * 4;
const STAGING_BYTES: usize = 17408;
const A_BOX: [u32; 2] = [128, 32];

/// The column tile widths with an entry point of each split, ascending: 32 and 64 (`armt_read_fused_sm90_n32_f32`,
/// `_n64_f32`, `_tf32bf16_n32_f32`, `_tf32bf16_n64_f32`) and [`TILE`]. Every width gives the same bytes (the
/// per-element arithmetic does not depend on the column tile; `check/armt_read_fused_sm90.rs` checks it bitwise), so
/// [`read_width`] may choose by rows.
pub const READ_WIDTHS: [usize; 3] = [32, 64, 128];

/// `read_fused::smem_bytes_for(width, pre)`: `stages_for(width, pre)` stages of `3 · 32 · width · 4` bytes (raw
/// block, hi and lo tiles; 3 at 128, else as many as fit, at most 8) or, reading a pre-split state, `2 · 32 · width ·
/// 4` (hi and lo tiles; as many as fit at every width, at most 8), the u tile, z, the epilogue staging, `3·stages + 2`
/// barriers.
pub fn smem_for(width: usize, pre: bool) -> usize {
    let stage = if pre { 2 } else { 3 } * 32 * width * 4;
    let fixed = U_BYTES + Z_BYTES + 2 * STAGING_BYTES;
    let stages = if width == TILE && !pre {
        3
    } else {
        ((232448 - fixed - 16) / (stage + 24)).min(8)
    };
    stages * stage + fixed + (3 * stages + 2) * 8
}

/// The entry point of `split` at column tile `width`, reading the f32 state or (`pre`) its split form.
fn entry_at(split: ReadSplit, width: usize, pre: bool) -> Option<&'static str> {
    if pre {
        return match (split, width) {
            (ReadSplit::Tf32Bf16, 128) => Some("armt_read_fused_sm90_split_f32"),
            (ReadSplit::Tf32Bf16, 64) => Some("armt_read_fused_sm90_split_n64_f32"),
            (ReadSplit::Tf32Bf16, 32) => Some("armt_read_fused_sm90_split_n32_f32"),
            _ => None,
        };
    }
    match (split, width) {
        (_, 128) => Some(split.entry()),
        (ReadSplit::Tf32x3, 64) => Some("armt_read_fused_sm90_n64_f32"),
        (ReadSplit::Tf32x3, 32) => Some("armt_read_fused_sm90_n32_f32"),
        (ReadSplit::Tf32Bf16, 64) => Some("armt_read_fused_sm90_tf32bf16_n64_f32"),
        (ReadSplit::Tf32Bf16, 32) => Some("armt_read_fused_sm90_tf32bf16_n32_f32"),
        _ => None,
    }
}

/// The column tile width of a read over `spans` on `sms` multiprocessors: [`TILE`] unless `decode` (the decode tiles
/// are on, [`crate::gemm_sm90::decode_tiles_enabled`]) and every span has at most
/// [`crate::gemm_sm90::DECODE_MAX_ROWS`] rows (a decode step: 16 tiles for one row at d = 2048); then the cheapest of
/// [`READ_WIDTHS`] by the GEMM decode rule's bandwidth model (docs/log/gemm_sm90.md §12), in ns:
/// `1000 + 400·waves + max(tiles·D·width·4 B / 4 TB/s, waves·(D·width·4 + 128·d_mem·4) B / 64 GB/s)` (a tile reads
/// its D × width block of the state and the 128-row u tile), ties to the wider. One row of the 1B model: 32 (64 CTAs).
pub fn read_width(spans: &[Span], shape: ReadShape, sms: usize, decode: bool) -> usize {
    if !decode || !crate::launch::few_rows(spans) {
        return TILE;
    }
    let row_tiles = spans.iter().filter(|s| s.rows > 0).count().max(1);
    let (d, dk, dm) = (shape.d, shape.d_key(), shape.d_mem);
    let sms = sms.max(1);
    let cost = |w: usize| {
        let tiles = row_tiles * d.div_ceil(w);
        let waves = tiles.div_ceil(sms) as f64;
        let hbm = (tiles * dk * w * 4) as f64 / 4000.0;
        let sm = waves * (dk * w * 4 + 128 * dm * 4) as f64 / 64.0;
        1000.0 + 400.0 * waves + hbm.max(sm)
    };
    let min = READ_WIDTHS.iter().map(|&w| cost(w)).fold(f64::INFINITY, f64::min);
    READ_WIDTHS
        .iter()
        .copied()
        .rfind(|&w| cost(w) <= min * 1.005)
        .unwrap_or(TILE)
}

/// How `φ·A` is split over the tensor cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadSplit {
    /// 3×TF32 (`lo·hi + hi·lo + hi·hi`), as `gemm_tf32x3_sm90`: ~3e-7 per product (`DBRMT_MEMORY=tf32x3` makes it
    /// the engine's).
    Tf32x3,
    /// `hi·hi` in tf32 plus both corrections in one bf16 product: 2/3 of the tensor work, ~1e-6 per product (measured
    /// 4.7e-7 of a 1B read, against 1.6e-7; the contract is 1e-5). The engine's.
    Tf32Bf16,
}

impl ReadSplit {
    /// The entry point of the split.
    pub fn entry(self) -> &'static str {
        match self {
            ReadSplit::Tf32x3 => "armt_read_fused_sm90_f32",
            ReadSplit::Tf32Bf16 => "armt_read_fused_sm90_tf32bf16_f32",
        }
    }
}

/// The state a read takes: the stacked f32 states `[S·D, d]` (the kernel splits each block of `A` for the tensor
/// cores as it reads it) or their split form `[S·d, 2·D]` u32 ([`crate::armt_state_split`], made when the states
/// changed; [`ReadSplit::Tf32Bf16`] only), which the kernel loads as it is: the same bytes either way.
#[derive(Debug, Clone, Copy)]
pub enum ReadState<'a> {
    F32(&'a CudaSlice<f32>),
    Split(&'a CudaSlice<u32>),
}

/// The memory's sizes the read needs: hidden width `d`, `d_mem` and the DPFP order `nu` (`D = 2·nu·d_mem`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadShape {
    pub d: usize,
    pub d_mem: usize,
    pub nu: usize,
}

impl ReadShape {
    /// `D = 2·nu·d_mem`.
    pub fn d_key(&self) -> usize {
        2 * self.nu * self.d_mem
    }
}

/// Whether the kernel takes the shape (`d_mem` 32 or 64, so a k-block of 32 features lies in one DPFP block and the
/// u tile fits; `D ≤ 512`; `d` a multiple of 4); the reason if not.
pub fn supports(shape: ReadShape) -> Result<(), String> {
    let ReadShape { d, d_mem, nu } = shape;
    if d_mem != 32 && d_mem != 64 {
        return Err(format!("d_mem = {d_mem}: the fused read takes 32 or 64"));
    }
    if nu == 0 || shape.d_key() > 512 {
        return Err(format!("D = 2·{nu}·{d_mem}: must be 1..=512"));
    }
    if d == 0 || !d.is_multiple_of(4) || d > i32::MAX as usize {
        return Err(format!("d = {d}: must be a positive multiple of 4"));
    }
    Ok(())
}

/// `ReadFusedProblem` of the kernel (32 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Problem {
    /// Offset of the cell's first h element (validate) / its device address (launch).
    h: u64,
    /// Offset of `z[state]` / its device address.
    z: u64,
    u_row: i32,
    a_row: i32,
    m: i32,
    h_ld: i32,
}

/// `ReadFusedParams` of the kernel (2064 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct Params {
    problems: [Problem; MAX_GROUPS],
    count: i32,
    n: i32,
    d_mem: i32,
    nu: i32,
    /// The fused-q entry's first W_mq row of each problem (its layer · d_mem); 0 else.
    w_row: [i32; MAX_GROUPS],
}

// SAFETY: plain-old-data #[repr(C)] structs of integers with the layout of the kernel's ReadFusedProblem /
// ReadFusedParams (the static_asserts there, the layout test here); the addresses in them are only dereferenced by
// the kernel, after validate() checked every region they cover.
unsafe impl DeviceRepr for Params {}

/// Buffer lengths (elements) and row strides of a launch.
#[derive(Debug, Clone, Copy)]
struct Lens {
    u: Rows,
    /// Elements of the state operand: f32 `[S·D, d]`, or u32 `[S·d, 2·D]` when `pre`.
    a: usize,
    pre: bool,
    z: usize,
    h: Rows,
}

/// What [`validate`] returns: the parameters (offsets in elements), the rows the u and A maps cover, and the tiles.
struct Checked {
    params: Params,
    u_rows: usize,
    a_rows: usize,
    tiles: usize,
}

/// The launcher's checks, on buffer lengths only.
fn validate(entry: &str, lens: Lens, spans: &[Span], shape: ReadShape) -> Result<Checked, KernelError> {
    check_groups(entry, spans.len())?;
    supports(shape).map_err(|m| invalid(entry, m))?;
    let (d, dk) = (shape.d, shape.d_key());
    let (u, h) = (lens.u, lens.h);
    if !u.ld.is_multiple_of(4) || !h.ld.is_multiple_of(4) {
        return Err(invalid(
            entry,
            format!("u_ld = {}, h_ld = {}: 16-byte rows need multiples of 4", u.ld, h.ld),
        ));
    }
    // the state operand's rows (f32: D a state; split: d a state) and the states it holds
    let (a_rows, a_states, a_row_of) = match lens.pre {
        false => (lens.a / d, lens.a / d / dk, dk),
        true => (lens.a / (2 * dk), lens.a / (2 * dk) / d, d),
    };
    let (u_rows, states) = (u.len / u.ld.max(1), lens.z / dk);
    if u_rows > i32::MAX as usize || a_rows > i32::MAX as usize {
        return Err(invalid(entry, "u or A rows beyond 32 bits".into()));
    }
    let mut p = Params {
        problems: [Problem::default(); MAX_GROUPS],
        count: spans.len() as i32,
        n: d as i32,
        d_mem: shape.d_mem as i32,
        nu: shape.nu as i32,
        w_row: [0; MAX_GROUPS],
    };
    for (i, s) in spans.iter().enumerate() {
        check_rows(entry, "u", u, s.in_row, s.rows, 0, shape.d_mem)?;
        check_rows(entry, "h", h, s.out_row, s.rows, 0, d)?;
        check_index(entry, "state (z)", s.state, states)?;
        check_index(entry, "state (A)", s.state, a_states)?;
        p.problems[i] = Problem {
            h: (s.out_row * h.ld) as u64,
            z: (s.state * dk) as u64,
            u_row: s.in_row as i32,
            a_row: (s.state * a_row_of) as i32,
            m: s.rows as i32,
            h_ld: h.ld as i32,
        };
    }
    check_disjoint_outputs(entry, spans)?;
    let tiles = spans.iter().map(|s| s.rows.div_ceil(TILE)).sum::<usize>() * d.div_ceil(TILE);
    Ok(Checked {
        params: p,
        u_rows,
        a_rows,
        tiles,
    })
}

/// For every span (a reading cell) and each of its rows `r`: `h[out_row + r] += φ·A[state] / (φ·z[state] + ε)` with
/// `φ = dpfp(u[in_row + r], nu)`, in one launch (see the module doc). `u` is `[*, u_ld]` (the query projection,
/// `d_mem` columns), `a` the stacked states `[S·D, d]`, `z` `[S, D]`, `h` the f32 hidden rows `[*, h_ld]`, updated
/// in place. `span.layer` and `span.flag` are not used (the caller leaves segment-0 cells out).
///
/// Fails with [`KernelError::InvalidArgument`] (before anything is launched) unless `1 ≤ spans.len() ≤ MAX_GROUPS`,
/// the shape is one [`supports`] takes, `u_ld` and `h_ld` are multiples of 4, every span fits `u` and `h`, every
/// state is one of `a` and `z`, and no two spans write the same rows of `h`. Asynchronous on `stream`.
#[allow(clippy::too_many_arguments)]
pub fn armt_read_fused_sm90(
    gpu: &Gpu,
    stream: &CudaStream,
    (u, u_ld): (&CudaSlice<f32>, usize),
    a: ReadState<'_>,
    z: &CudaSlice<f32>,
    (h, h_ld): (&mut CudaSlice<f32>, usize),
    spans: &[Span],
    shape: ReadShape,
    split: ReadSplit,
) -> Result<(), KernelError> {
    let width = read_width(spans, shape, gpu.sm_count(), crate::gemm_sm90::decode_tiles_enabled());
    armt_read_fused_sm90_at(gpu, stream, (u, u_ld), a, z, (h, h_ld), spans, shape, split, width)
}

/// [`armt_read_fused_sm90`] at column tile `width` (one of [`READ_WIDTHS`]),
/// whatever [`read_width`] would pick: for the checks that every width gives the same bytes.
#[allow(clippy::too_many_arguments)]
pub fn armt_read_fused_sm90_at(
    gpu: &Gpu,
    stream: &CudaStream,
    (u, u_ld): (&CudaSlice<f32>, usize),
    a: ReadState<'_>,
    z: &CudaSlice<f32>,
    (h, h_ld): (&mut CudaSlice<f32>, usize),
    spans: &[Span],
    shape: ReadShape,
    split: ReadSplit,
    width: usize,
) -> Result<(), KernelError> {
    let (pre, a_len, a_addr) = match a {
        ReadState::F32(a) => (false, a.len(), addr(a, stream)),
        ReadState::Split(a) => (true, a.len(), addr(a, stream)),
    };
    let entry = entry_at(split, width, pre).ok_or_else(|| {
        invalid(
            split.entry(),
            format!("no entry point of column tile width {width} for this split and state (pre-split: {pre})"),
        )
    })?;
    let lens = Lens {
        u: Rows { len: u.len(), ld: u_ld },
        a: a_len,
        pre,
        z: z.len(),
        h: Rows { len: h.len(), ld: h_ld },
    };
    let Checked {
        mut params,
        u_rows,
        a_rows,
        tiles,
    } = validate(entry, lens, spans, shape)?;
    if tiles == 0 {
        return Ok(());
    }
    let tiles = tiles / shape.d.div_ceil(TILE) * shape.d.div_ceil(width);
    let u_map = tma::map(
        entry,
        F32,
        addr(u, stream),
        &[shape.d_mem as u64, u_rows as u64],
        &[(u_ld * 4) as u64],
        &[(shape.d_mem + U_PAD) as u32, U_BOX_ROWS],
        SWIZZLE_NONE,
    )?;
    let a_map = if pre {
        // [S·d, 2D] u32 (copied as f32: TMA moves the bits), a box of one k-block's 32 values of `width` columns,
        // 128B-swizzled as the converters would have written the tile
        let dk2 = 2 * shape.d_key();
        tma::map(
            entry,
            F32,
            a_addr,
            &[dk2 as u64, a_rows as u64],
            &[(dk2 * 4) as u64],
            &[32, width as u32],
            SWIZZLE_128B,
        )?
    } else {
        tma::map(
            entry,
            F32,
            a_addr,
            &[shape.d as u64, a_rows as u64],
            &[(shape.d * 4) as u64],
            &[width as u32, A_BOX[1]],
            SWIZZLE_NONE,
        )?
    };
    address_outputs(entry, &mut params, spans.len(), addr_mut(h, stream), addr(z, stream))?;
    let (f, cfg) = function_and_grid(gpu, entry, smem_for(width, pre), tiles)?;
    let mut builder = crate::launch::Launch::new(stream, &f);
    builder.arg(&u_map).arg(&a_map).arg(&params);
    // SAFETY: the kernel takes (TmaMap u_map, TmaMap a_map, ReadFusedParams) by value; Params mirrors
    // ReadFusedParams (layout test below, static_asserts in the kernel). The maps cover the whole u and A buffers
    // (their lengths in rows of u_ld and d; TMA zero-fills past them). validate() checked the shape, every span's u
    // and h rows, its state against A and z, the 16-byte row strides (h addresses: base + out_row·h_ld·4) and that no
    // two spans write the same rows; `h` is borrowed mutably, so it aliases no input. The dynamic shared memory is
    // the kernel's plan for this column width (smem_for mirrors smem_bytes_for), its limit raised on the function;
    // the A map's box is the entry point's: {width, 32} of the f32 state, or {32, width} 128B-swizzled of the split
    // form (whose rows a span's state·d .. + d validate() checked like the f32 state's).
    unsafe { builder.launch(cfg) }?;
    Ok(())
}

/// The widest hidden size at which the fused q pays: every tile of the read repeats the q projection's chain of
/// `d/16` dependent wgmmas over the whole of `W_mq`'s layer, so the saved launch wins only while that chain is short.
/// H200 (session 12, call 1, one binary on / off): SmolLM2 (d = 576) decode 1.21 vs 1.25 ms a token, Llama-3.2-1B
/// (d = 2048) 1.42 vs 1.37.
pub const FUSED_Q_MAX_D: usize = 1024;

/// Whether a decode read of `shape` takes [`armt_read_fused_sm90_q`] (d ≤ [`FUSED_Q_MAX_D`]) rather than the q GEMM
/// and the read.
pub fn fused_q_pays(shape: ReadShape) -> bool {
    shape.d <= FUSED_Q_MAX_D
}

/// The fused-q plan's shared memory: the pre-split 32-column plan, the q stages (4 × (64 x rows + 64 W_mq rows) of 128
/// bytes) and their 8 barriers (`read_fused::smem_bytes_for(32, true, true)`).
pub fn smem_for_q() -> usize {
    smem_for(32, true) + 4 * 2 * 64 * 128 + 2 * 4 * 8
}

/// A decode step's read that makes its own query projection (`armt_read_fused_sm90_split_q_n32_f32`): for every span,
/// `u = x[in_row ..]·W_mq[layer]ᵀ` with the q projection GEMM's chain (the same bits as
/// `gemm_sm90_nt_bf16_bf16_f32` over those rows), then the read of the pre-split state as [`armt_read_fused_sm90_at`]
/// at 32 columns: one launch instead of two. `x` is `to_bf16`'s rows `[*, x_ld]` (u's rows would be the same), `w`
/// the stacked `W_mq` `[L·d_mem, d]`, `span.layer` the layer.
///
/// Fails with [`KernelError::InvalidArgument`] (before anything is launched) where [`armt_read_fused_sm90`] would, and
/// unless every span has at most [`crate::gemm_sm90::DECODE_MAX_ROWS`] rows, x holds its rows' `d` columns and `w`
/// its layer's rows. Asynchronous on `stream`.
#[allow(clippy::too_many_arguments)]
pub fn armt_read_fused_sm90_q(
    gpu: &Gpu,
    stream: &CudaStream,
    (x, x_ld): (&CudaSlice<bf16>, usize),
    w: &CudaSlice<bf16>,
    state: &CudaSlice<u32>,
    z: &CudaSlice<f32>,
    (h, h_ld): (&mut CudaSlice<f32>, usize),
    spans: &[Span],
    shape: ReadShape,
) -> Result<(), KernelError> {
    const ENTRY: &str = "armt_read_fused_sm90_split_q_n32_f32";
    let (d, dm) = (shape.d, shape.d_mem);
    let lens = Lens {
        u: Rows { len: x.len(), ld: x_ld },
        a: state.len(),
        pre: true,
        z: z.len(),
        h: Rows { len: h.len(), ld: h_ld },
    };
    let Checked {
        mut params,
        u_rows: x_rows,
        a_rows,
        tiles,
    } = validate(ENTRY, lens, spans, shape)?;
    let w_rows = w.len() / d;
    if !crate::launch::few_rows(spans) {
        return Err(invalid(
            ENTRY,
            format!(
                "a span of more than {} rows: the fused q takes decode steps",
                crate::gemm_sm90::DECODE_MAX_ROWS
            ),
        ));
    }
    for (i, s) in spans.iter().enumerate() {
        check_rows(ENTRY, "x", Rows { len: x.len(), ld: x_ld }, s.in_row, s.rows, 0, d)?;
        check_index(ENTRY, "layer (W_mq)", s.layer, w_rows / dm)?;
        params.w_row[i] = (s.layer * dm) as i32;
    }
    if tiles == 0 {
        return Ok(());
    }
    if !x_ld.is_multiple_of(8) || !d.is_multiple_of(8) {
        return Err(invalid(
            ENTRY,
            format!("x_ld = {x_ld}, d = {d}: TMA needs 16-byte rows of x and W_mq"),
        ));
    }
    let tiles = tiles / d.div_ceil(TILE) * d.div_ceil(32);
    let x_map = tma::bf16_map(
        ENTRY,
        addr(x, stream),
        &[d as u64, x_rows as u64],
        &[(x_ld * 2) as u64],
        &[64, 64],
    )?;
    let w_map = tma::bf16_map(
        ENTRY,
        addr(w, stream),
        &[d as u64, w_rows as u64],
        &[(d * 2) as u64],
        &[64, dm as u32],
    )?;
    let dk2 = 2 * shape.d_key();
    let a_map = tma::map(
        ENTRY,
        F32,
        addr(state, stream),
        &[dk2 as u64, a_rows as u64],
        &[(dk2 * 4) as u64],
        &[32, 32],
        SWIZZLE_128B,
    )?;
    address_outputs(ENTRY, &mut params, spans.len(), addr_mut(h, stream), addr(z, stream))?;
    let (f, cfg) = function_and_grid(gpu, ENTRY, smem_for_q(), tiles)?;
    let mut builder = crate::launch::Launch::new(stream, &f);
    builder.arg(&x_map).arg(&a_map).arg(&w_map).arg(&params);
    // SAFETY: the kernel takes (TmaMap x_map, TmaMap a_map, TmaMap w_map, ReadFusedParams) by value; Params mirrors
    // ReadFusedParams (layout test). The maps cover the whole x, split state and W_mq buffers (TMA zero-fills past
    // them); validate() and the checks above put every span's x rows (d columns), h rows, state and layer inside
    // their buffers, at most 64 rows a span, no two spans writing the same h rows; `h` is borrowed mutably, so it
    // aliases no input. The dynamic shared memory is the fused-q plan (smem_for_q mirrors smem_bytes_for(32, true,
    // true)), its limit raised on the function.
    unsafe { builder.launch(cfg) }?;
    Ok(())
}

/// The spans' h and z offsets (elements, from validate) made device addresses. The kernel copies z[state] into shared
/// memory with one bulk copy (16-byte aligned source): the offsets are multiples of D = 2·nu·d_mem floats (d_mem 32
/// or 64), so the base decides.
fn address_outputs(
    entry: &str,
    params: &mut Params,
    spans: usize,
    h_base: u64,
    z_base: u64,
) -> Result<(), KernelError> {
    if !z_base.is_multiple_of(16) {
        return Err(invalid(
            entry,
            format!("z at {z_base:#x}: the bulk copy needs 16-byte alignment"),
        ));
    }
    for p in &mut params.problems[..spans] {
        p.h = h_base + p.h * 4;
        p.z = z_base + p.z * 4;
    }
    Ok(())
}

/// The entry point with its dynamic shared memory limit raised to `smem`, and the persistent grid over `tiles`.
fn function_and_grid(
    gpu: &Gpu,
    entry: &'static str,
    smem: usize,
    tiles: usize,
) -> Result<(cudarc::driver::CudaFunction, LaunchConfig), KernelError> {
    let f = gpu.function(&Kernel::new(cubins::ARMT_READ_FUSED_SM90, entry))?;
    f.set_attribute(
        CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
        smem as i32,
    )?;
    let cfg = LaunchConfig {
        grid_dim: (gpu.sm_count().min(tiles).max(1) as u32, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: smem as u32,
    };
    Ok((f, cfg))
}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;
    use crate::launch::tests::rejected;

    const CU: &str = include_str!("../../../cuda/armt_read_fused_sm90.cu");

    fn span(in_row: usize, out_row: usize, rows: usize, state: usize) -> Span {
        Span {
            in_row,
            out_row,
            rows,
            state,
            ..Span::default()
        }
    }

    const B1: ReadShape = ReadShape {
        d: 2048,
        d_mem: 64,
        nu: 3,
    };

    fn lens(u_rows: usize, states: usize, h_rows: usize) -> Lens {
        Lens {
            u: Rows {
                len: u_rows * 64,
                ld: 64,
            },
            a: states * 384 * 2048,
            pre: false,
            z: states * 384,
            h: Rows {
                len: h_rows * 2048,
                ld: 2048,
            },
        }
    }

    #[test]
    fn constants_match_the_kernel() {
        for (name, value) in [
            ("BM", TILE),
            ("BN", TILE),
            ("STAGES", 3),
            ("THREADS", THREADS as usize),
            ("U_PAD", U_PAD),
            ("U_BOX_ROWS", U_BOX_ROWS as usize),
            ("A_BOX_COLS", A_BOX[0] as usize),
            ("A_BOX_ROWS", A_BOX[1] as usize),
            ("MAX_D_MEM", 64),
        ] {
            assert!(CU.contains(&format!("constexpr int {name} = {value};")), "{name}");
        }
        // smem_bytes() = STAGES * STAGE_BYTES + U_BYTES + Z_BYTES + 2 * STAGING_BYTES + (3 * STAGES + 2) * 8
        assert!(CU.contains(
            "return STAGES * STAGE_BYTES + U_BYTES + Z_BYTES + 2 * sm90::STAGING_BYTES + (3 * STAGES + 2) * 8;"
        ));
        assert!(CU.contains("constexpr int Z_BYTES = 512 * 4;"));
        assert!(CU.contains("constexpr int U_BYTES = (MAX_D_MEM + U_PAD) * U_BOX_ROWS * 4;"));
        assert_eq!(SMEM, 219224);
        assert_eq!(smem_for(TILE, false), SMEM);
        assert_eq!((smem_for(64, false), smem_for(32, false)), (219296, 170192));
        // pre-split: 4 stages of 32 KB at 128, 8 at 64 and 32
        assert_eq!(
            (smem_for(128, true), smem_for(64, true), smem_for(32, true)),
            (202864, 202960, 137424)
        );
        assert!(CU.contains("stages_for(BN, true) == 4 && stages_for(64, true) == 8 && stages_for(32, true) == 8"));
        assert!(CU.contains("return (pre ? 2 : 3) * BK * bn * 4;"));
        // the fused-q plan: 4 q stages of 16 KB and their 8 barriers beside the pre-split 32-column plan
        assert_eq!(smem_for_q(), 203024);
        assert!(CU.contains("constexpr int QSTAGES = 4;") && CU.contains("constexpr int QX_BYTES = 64 * 128;"));
        assert!(CU.contains("    armt_read_fused_sm90_split_q_n32_f32("));
        assert!(CU.contains("stages_for(64) == 6 && stages_for(32) == 8"));
        for (split, w) in [ReadSplit::Tf32x3, ReadSplit::Tf32Bf16]
            .into_iter()
            .flat_map(|s| READ_WIDTHS.map(|w| (s, w)))
        {
            let e = entry_at(split, w, false).unwrap();
            assert!(CU.contains(&format!("    {e}(")), "{e}");
            // the pre-split state has entries of the tf32 + bf16 split only
            match entry_at(split, w, true) {
                Some(e) => assert!(split == ReadSplit::Tf32Bf16 && CU.contains(&format!("    {e}(")), "{e}"),
                None => assert_eq!(split, ReadSplit::Tf32x3),
            }
        }
        assert!(entry_at(ReadSplit::Tf32Bf16, 96, false).is_none());
        for split in [ReadSplit::Tf32x3, ReadSplit::Tf32Bf16] {
            assert!(CU.contains(&format!("    {}(", split.entry())), "{}", split.entry());
        }
    }

    #[test]
    fn params_layout_matches_the_kernel() {
        assert_eq!(size_of::<Problem>(), 32);
        assert_eq!(offset_of!(Problem, u_row), 16);
        assert_eq!(offset_of!(Problem, h_ld), 28);
        assert_eq!(size_of::<Params>(), 36 * MAX_GROUPS + 16);
        assert_eq!(offset_of!(Params, w_row), 32 * MAX_GROUPS + 16);
        assert_eq!(offset_of!(Params, count), 32 * MAX_GROUPS);
        assert_eq!(offset_of!(Params, nu), 32 * MAX_GROUPS + 12);
        assert!(CU.contains("#define READ_FUSED_MAX_PROBLEMS 64"));
    }

    #[test]
    fn validates_the_1b_step() {
        // 16 cells of 1152 rows, u and h packed differently, states out of order
        let spans: Vec<Span> = (0..16)
            .map(|i| span(i * 1152, (15 - i) * 1152, 1152, (i * 7) % 16))
            .collect();
        let c = validate("t", lens(16 * 1152, 16, 16 * 1152), &spans, B1).unwrap();
        assert_eq!(
            (c.tiles, c.u_rows, c.a_rows, c.params.count),
            (16 * 9 * 16, 16 * 1152, 16 * 384, 16)
        );
        let p = c.params.problems[1];
        assert_eq!(
            (p.h, p.z, p.u_row, p.a_row, p.m, p.h_ld),
            (14 * 1152 * 2048, 7 * 384, 1152, 7 * 384, 1152, 2048)
        );
        assert_eq!((c.params.n, c.params.d_mem, c.params.nu), (2048, 64, 3));
    }

    #[test]
    fn validates_a_pre_split_state() {
        // the split form holds 2·D·d u32 a state; a state's map rows start at state·d
        let pre = |states: usize| Lens {
            a: states * 2 * 384 * 2048,
            pre: true,
            ..lens(128, 2, 128)
        };
        let c = validate("t", pre(2), &[span(0, 0, 100, 1)], B1).unwrap();
        assert_eq!((c.a_rows, c.params.problems[0].a_row), (2 * 2048, 2048));
        assert!(
            rejected(validate("t", pre(1), &[span(0, 0, 100, 1)], B1).map(|c| c.tiles)),
            "state 1 of 1"
        );
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let ok = [span(0, 0, 100, 0), span(100, 100, 28, 1)];
        let v = |l: Lens, s: &[Span], shape: ReadShape| validate("t", l, s, shape).map(|c| c.tiles);
        assert_eq!(v(lens(128, 2, 128), &ok, B1).unwrap(), 2 * 16);
        assert!(rejected(v(lens(127, 2, 128), &ok, B1)), "u short");
        assert!(rejected(v(lens(128, 2, 127), &ok, B1)), "h short");
        assert!(rejected(v(lens(128, 1, 128), &ok, B1)), "state 1 of 1");
        let short_z = Lens {
            z: 384,
            ..lens(128, 2, 128)
        };
        assert!(rejected(v(short_z, &ok, B1)), "z of one state");
        assert!(
            rejected(v(lens(128, 2, 128), &[span(0, 0, 100, 0), span(100, 99, 28, 1)], B1)),
            "overlap"
        );
        assert!(rejected(v(lens(128, 2, 128), &[], B1)), "no spans");
        assert!(
            rejected(v(lens(128, 2, 128), &vec![span(0, 0, 0, 0); 65], B1)),
            "65 spans"
        );
        let odd_h = Lens {
            h: Rows {
                len: 128 * 2050,
                ld: 2050,
            },
            ..lens(128, 2, 128)
        };
        assert!(rejected(v(odd_h, &ok, B1)), "h stride not a multiple of 4");
        assert!(
            rejected(v(lens(128, 2, 128), &ok, ReadShape { d_mem: 16, ..B1 })),
            "d_mem 16"
        );
        assert!(rejected(v(lens(128, 2, 128), &ok, ReadShape { nu: 5, ..B1 })), "D 640");
        assert!(
            rejected(v(lens(128, 2, 128), &ok, ReadShape { d: 2046, ..B1 })),
            "d % 4"
        );
        // an empty span is no tile and needs nothing
        assert_eq!(v(lens(0, 1, 0), &[span(5000, 5000, 0, 0)], B1).unwrap(), 0);
    }

    #[test]
    fn read_width_narrows_decode_steps_only() {
        let one = [span(0, 0, 1, 0)];
        assert_eq!(read_width(&one, B1, 132, true), 32); // one decode row: 64 CTAs instead of 16
        assert_eq!(read_width(&one, B1, 132, false), 128); // DBRMT_DECODE_TILES=off
        assert_eq!(read_width(&[span(0, 0, 65, 0)], B1, 132, true), 128); // more than 64 rows
        assert_eq!(read_width(&[span(0, 0, 64, 0)], B1, 132, true), 32);
        let eight: Vec<Span> = (0..8).map(|i| span(i, i, 1, i)).collect();
        assert_eq!(read_width(&eight, B1, 132, true), 128); // 128 tiles already
    }

    #[test]
    fn supports_the_model_shapes() {
        assert!(supports(B1).is_ok());
        assert!(supports(ReadShape { d: 768, ..B1 }).is_ok()); // LLaMA-160M
        assert!(supports(ReadShape { d_mem: 32, ..B1 }).is_ok());
        assert!(supports(ReadShape { d_mem: 2, ..B1 }).is_err());
    }
}
