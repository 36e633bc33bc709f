//! Launchers of `cuda/gemm_sm90.cu`: the version-2 grouped GEMM (TMA loads, wgmma, a producer and two consumer
//! warpgroups, a persistent tile scheduler) for the bf16 projections, `C = A·Bᵀ` with A the rows of the cells
//! (`[rows, k]`, one buffer, row stride `lda`) and B the stacked weights of every layer (`[L·n, k]`, dense).
//!
//! The same [`GemmGroup`]s as the version-1 launchers describe the problems; this file adds the conditions the
//! tensor-memory accelerator needs ([`supports`]): `k`, `n` and `lda` multiples of 8 (16-byte rows), every group's A
//! starting on a row of the A buffer (`a_offset % lda == 0`), B dense (`ldb == k`) with each group's B on a row of
//! the stack, every C 16-byte aligned. A caller checks [`supports`] once per model and falls back to
//! [`crate::gemm`] otherwise. Tile width is chosen from `(n, k)` only ([`tile_width`]), except for launches whose
//! problems all have at most [`DECODE_MAX_ROWS`] rows (decode steps), which may take the narrow widths
//! ([`decode_tile_width`]; `DBRMT_DECODE_TILES=off` turns that off). There is no split-K, and an element's bits do
//! not depend on the tile width (the same k order and instructions at every width; `check/gemm_sm90.rs` checks it
//! bitwise on the device): a cell's bits do not depend on the other cells of its launch, and a decode row has the
//! bits of the same row inside its whole segment.
//!
//! Three epilogues: bf16 C, f32 C (optionally accumulating: the residual adds into the f32 hidden rows), and SwiGLU
//! (`silu(gate)·up` of a gate/up weight stored interleaved in blocks of 64 rows, [`interleave_gate_up`]; the output
//! has `n/2` columns).

use cudarc::driver::sys::CUfunction_attribute;
use cudarc::driver::{CudaSlice, CudaStream, DeviceRepr, LaunchConfig};
use half::bf16;

use crate::gemm::GemmGroup;
use crate::launch::{addr, addr_mut, check_groups, invalid};
use crate::params::MAX_GROUPS;
use crate::tma::{self, TmaMap};
use crate::{cubins, Gpu, Kernel, KernelError};

/// Threads per block (`sm90::THREADS`: two consumer warpgroups and a producer warpgroup).
const THREADS: u32 = 384;
/// Rows per tile (`sm90::BM`) and k per pipeline stage (`sm90::BK`).
pub(crate) const BM: usize = 128;
const BK: usize = 64;
/// The dynamic shared memory every launch is given: all a block may have (`sm90::SMEM_LIMIT`). Each entry point's
/// plan (`gemm_sm90_smem_bytes(epilogue, BN)`: its pipeline stages and epilogue buffers) fits in it, and a kernel
/// traps if given less than its plan, never if given more; one block per SM either way.
const SMEM_LIMIT: usize = 232448;

/// The epilogue, which also fixes C's element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Epilogue {
    /// C bf16, rounded once.
    Bf16,
    /// C f32; `accumulate`: `C += A·Bᵀ`.
    F32 { accumulate: bool },
    /// C bf16 `[m, n/2]` = `silu(gate)·up`, B interleaved ([`interleave_gate_up`]).
    SwiGlu,
}

/// The tile widths with entry points (SwiGLU: 128 and 256 only), ascending (`GEMM_SM90_BN_LIST`).
pub const TILE_WIDTHS: [usize; 8] = [128, 144, 152, 160, 192, 208, 224, 256];

/// The narrow tile widths (`GEMM_SM90_DECODE_BN_LIST`), bf16 and f32 output only: 64 A rows per stage, so only for
/// launches whose problems all have at most [`DECODE_MAX_ROWS`] rows.
pub const DECODE_TILE_WIDTHS: [usize; 3] = [16, 32, 64];

/// The narrow SwiGLU tile (v6, entry `gemm_sm90_nt_bf16_bf16_swiglu_bn128_decode`: 128 interleaved B rows, i.e. 64
/// gate + 64 up rows, 64 outputs per tile; one k-block per stage), named by its 64 output columns
/// (`GEMM_SM90_DECODE_SWIGLU_BN`) so that it differs from the wide SwiGLU widths (128, 256: B rows) and is one of
/// [`DECODE_TILE_WIDTHS`] (launches whose problems all have at most [`DECODE_MAX_ROWS`] rows).
pub const SWIGLU_DECODE_WIDTH: usize = 64;

/// The most rows a problem may have in a launch that takes [`decode_tile_width`] (`GEMM_SM90_DECODE_MAX_ROWS`): the
/// narrow widths hold 64 A rows per stage (one consumer warpgroup's wgmma height), so a larger problem would need the
/// second warpgroup and the 128-row stage of the wide widths. Decode steps have 1 row per request (merged: one row
/// per open request of the layer), so 64 covers every step of up to 64 requests.
pub const DECODE_MAX_ROWS: usize = 64;

/// The A box rows of a narrow-width launch whose largest problem has `max_m` rows: 8, 16, 32 or 64 (mirror of
/// `gemm_sm90_decode_a_rows`; the kernel expects exactly these bytes per stage).
pub fn decode_a_rows(max_m: usize) -> usize {
    match max_m {
        0..=8 => 8,
        9..=16 => 16,
        17..=32 => 32,
        _ => 64,
    }
}

/// Tile width of a launch whose problems all have at most [`DECODE_MAX_ROWS`] rows: `row_tiles` problems with rows,
/// the largest `max_m` rows. The mirror of `gemm_sm90_decode_bn_rule` in `cuda/gemm_sm90.cu` (the bandwidth model
/// is in its comment and docs/log/gemm_sm90.md, v6): every width with an entry point, narrow and wide, costed in ns
/// as `2500 + 400·(waves − 1) + max(B bytes / 4 TB/s, waves · steps · step)` (a narrow step: a stage of 128/BN
/// k-blocks, `max(120 + 40·KS, its bytes / 100 GB/s)`; a wide step: a k-block, `max(160, its bytes / 90 GB/s)`);
/// the cheapest wins, ties (0.5%) to the wider. SwiGLU: [`SWIGLU_DECODE_WIDTH`] if the same model finds it cheaper
/// than [`tile_width`]'s width by more than 0.5%, else that width.
pub fn decode_tile_width(n: usize, k: usize, epilogue: Epilogue, sms: usize, row_tiles: usize, max_m: usize) -> usize {
    let sms = sms.max(1);
    let row_tiles = row_tiles.max(1);
    let cost = |bn: usize, ks: usize| decode_cost(bn, ks, n, k, sms, row_tiles, max_m);
    if epilogue == Epilogue::SwiGlu {
        // v6: the narrow SwiGLU tile (128 B rows, 1 k-block per stage) if cheaper by more than 0.5%
        let wide = tile_width(n, k, epilogue, sms);
        return if cost(128, 1) * 1.005 < cost(wide, 0) {
            SWIGLU_DECODE_WIDTH
        } else {
            wide
        };
    }
    let widths = || DECODE_TILE_WIDTHS.iter().chain(TILE_WIDTHS.iter()).copied();
    let ks = |bn: usize| if bn < 128 { 128 / bn } else { 0 };
    let min = widths().map(|bn| cost(bn, ks(bn))).fold(f64::INFINITY, f64::min);
    // the list ascends: the widest tie (within 0.5%) wins
    widths().rfind(|&bn| cost(bn, ks(bn)) <= min * 1.005).unwrap_or(128)
}

/// The decode model's cost in ns of a launch at width `bn` (`gemm_sm90_decode_cost`): `ks` k-blocks per stage of a
/// narrow entry (128 / BN; 1 for the narrow SwiGLU tile), or 0 for a wide entry.
fn decode_cost(bn: usize, ks: usize, n: usize, k: usize, sms: usize, row_tiles: usize, max_m: usize) -> f64 {
    let kbi = k.div_ceil(64);
    let kb = kbi as f64;
    let tiles = row_tiles * n.div_ceil(bn);
    let waves = tiles.div_ceil(sms) as f64;
    let hbm = tiles as f64 * kb * bn as f64 * 128.0 / 4000.0;
    let (steps, step) = if ks > 0 {
        // v6: stages of ks k-blocks: a barrier round trip, ks k-blocks of issue and wgmma, or the stage's bytes at
        // ~100 GB/s per SM
        let a_rows = decode_a_rows(max_m) as f64;
        let fixed = 120.0 + 40.0 * ks as f64;
        let bytes = ks as f64 * (bn as f64 + a_rows) * 128.0 / 100.0;
        (kbi.div_ceil(ks) as f64, fixed.max(bytes))
    } else {
        (kb, ((bn as f64 + 128.0) * 128.0 / 90.0).max(160.0))
    };
    let sm = waves * steps * step;
    2500.0 + 400.0 * (waves - 1.0) + hbm.max(sm)
}

/// Whether launches of few rows may take the narrow widths: on unless the environment has `DBRMT_DECODE_TILES=off`
/// (read once), which restores the `(n, k)`-only rule for every launch.
pub fn decode_tiles_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| !crate::switches::is_off(crate::switches::DECODE_TILES))
}

/// The tile width a launch of `groups` takes on `sms` multiprocessors: [`decode_tile_width`] when `decode` (see
/// [`decode_tiles_enabled`]) and every group has at most [`DECODE_MAX_ROWS`] rows, else
/// [`tile_width`].
pub fn launch_tile_width(groups: &[GemmGroup], epilogue: Epilogue, sms: usize, decode: bool) -> usize {
    let (n, k) = groups.first().map_or((0, 0), |g| (g.n, g.k));
    let max_m = groups.iter().map(|g| g.m).max().unwrap_or(0);
    if decode && max_m <= DECODE_MAX_ROWS {
        let row_tiles = groups.iter().filter(|g| g.m > 0).count();
        decode_tile_width(n, k, epilogue, sms, row_tiles, max_m)
    } else {
        let row_tiles = groups.iter().map(|g| g.m.div_ceil(BM)).sum();
        wide_tile_width(n, k, epilogue, sms, row_tiles)
    }
}

/// The tile width of a launch of `row_tiles` 128-row tiles that is not a decode launch: [`tile_width`]'s, but for f32
/// output (the o and down projections) at the offloaded-epilogue widths 128–160, in a launch of at least
/// [`WAVE_ROW_TILES`] row tiles, the width whose waves cost least, `ceil(tiles / SMs) · (BN + 20)` (the 20: a tile's
/// fixed cost in columns), where it beats the rule's by 2% or more. With many tiles the last wave's waste decides
/// (session 8, `bench kernels`, each against the rule's width in the same run: 1B o and down at 16 cells 625 vs 592
/// and 707 vs 689 TFLOP/s at 128; 8B at 32 cells 709 vs 688 and 757 vs 694 at 152); below a wave of row tiles the
/// rule's minimax widths stay (128 lost there: 303 vs 406 for 1B o at one cell). No element's bits depend on the
/// width (`check::gemm_sm90::width_checks`).
pub fn wide_tile_width(n: usize, k: usize, epilogue: Epilogue, sms: usize, row_tiles: usize) -> usize {
    let rule = tile_width(n, k, epilogue, sms);
    let offloaded = F32_OFFLOADED_WIDTHS;
    if !matches!(epilogue, Epilogue::F32 { .. }) || !offloaded.contains(&rule) || row_tiles < WAVE_ROW_TILES {
        return rule;
    }
    let cost = |bn: usize| (row_tiles * n.div_ceil(bn)).div_ceil(sms.max(1)) * (bn + 20);
    let best = offloaded.into_iter().min_by_key(|&bn| (cost(bn), bn)).unwrap_or(rule);
    if cost(best) * 100 <= cost(rule) * 98 {
        best
    } else {
        rule
    }
}

/// The f32-output widths with the offloaded epilogue (`exported_store` in gemm_sm90.cu: `Store::Off` for f32 at 128..160),
/// among which [`wide_tile_width`] chooses.
pub const F32_OFFLOADED_WIDTHS: [usize; 4] = [128, 144, 152, 160];

/// Row tiles from which [`wide_tile_width`] weighs the last wave (about one wave of the H200's 132 SMs).
pub const WAVE_ROW_TILES: usize = 128;

/// Tile width (`BN`) for products of `n` columns over `k` on a device of `sms` multiprocessors: the mirror of
/// `gemm_sm90_bn_rule` in `cuda/gemm_sm90.cu` (whose comment and docs/log/gemm_sm90.md give the model). A function
/// of the shapes and the device only, never of the rows or cells of a launch, so a cell's tiles — and bits — are the
/// same alone and in any launch.
pub fn tile_width(n: usize, k: usize, epilogue: Epilogue, sms: usize) -> usize {
    if epilogue == Epilogue::SwiGlu {
        return if n >= 1024 { 256 } else { 128 };
    }
    let score = width_score(n, k, epilogue, sms);
    let min = TILE_WIDTHS.iter().map(|&bn| score(bn)).fold(f64::INFINITY, f64::min);
    // the list ascends: the widest tie (within 0.5%) wins
    TILE_WIDTHS
        .iter()
        .copied()
        .rfind(|&bn| score(bn) <= min * 1.005)
        .unwrap_or(128)
}

/// [`tile_width`]'s measure of a width for `(n, k)` (bf16 or f32 output): its modelled time over the best width's at
/// 1, 4 and 16 cells, the worst of the three (1.0: the best at every count).
pub(crate) fn width_score(n: usize, k: usize, epilogue: Epilogue, sms: usize) -> impl Fn(usize) -> f64 {
    let sms = if sms < 1 { 132 } else { sms } as f64;
    let kb = k.div_ceil(64) as f64;
    let counts = [1.0, 4.0, 16.0];
    let f32_out = matches!(epilogue, Epilogue::F32 { .. });
    let cost = move |bn: usize, c: f64| {
        let bnf = bn as f64;
        let bytes_per_flop = (128.0 + bnf) / (128.0 * bnf);
        let eff = 1.0 + 0.25 * (bytes_per_flop / (384.0 / 32768.0) - 1.0);
        // f32: the offloaded epilogue of widths ≤ 160 exposes little; the inline one of the wider tiles more
        let ovh = match (f32_out, bn <= 160) {
            (true, true) => 75.0 + 2.0 * bnf,
            (true, false) => 250.0 + 9.0 * bnf,
            (false, _) => 125.0 + 0.8 * bnf,
        };
        let tiles = 9.0 * c * n.div_ceil(bn) as f64;
        let waves = (tiles / sms).ceil();
        waves * (bnf * kb * eff + ovh)
    };
    let best: Vec<f64> = counts
        .iter()
        .map(|&c| TILE_WIDTHS.iter().map(|&bn| cost(bn, c)).fold(f64::INFINITY, f64::min))
        .collect();
    move |bn: usize| {
        counts
            .iter()
            .zip(&best)
            .map(|(&c, &b)| cost(bn, c) / b)
            .fold(0.0, f64::max)
    }
}

/// The entry point of `epilogue` at tile width `bn` (`gemm_sm90_nt_bf16_bf16_<out>_bn<BN>`).
fn kernel(epilogue: Epilogue, bn: usize) -> Option<Kernel> {
    macro_rules! widths {
        ($out:literal) => {
            match bn {
                16 => concat!("gemm_sm90_nt_bf16_bf16_", $out, "_bn16"),
                32 => concat!("gemm_sm90_nt_bf16_bf16_", $out, "_bn32"),
                64 => concat!("gemm_sm90_nt_bf16_bf16_", $out, "_bn64"),
                128 => concat!("gemm_sm90_nt_bf16_bf16_", $out, "_bn128"),
                144 => concat!("gemm_sm90_nt_bf16_bf16_", $out, "_bn144"),
                152 => concat!("gemm_sm90_nt_bf16_bf16_", $out, "_bn152"),
                160 => concat!("gemm_sm90_nt_bf16_bf16_", $out, "_bn160"),
                192 => concat!("gemm_sm90_nt_bf16_bf16_", $out, "_bn192"),
                208 => concat!("gemm_sm90_nt_bf16_bf16_", $out, "_bn208"),
                224 => concat!("gemm_sm90_nt_bf16_bf16_", $out, "_bn224"),
                256 => concat!("gemm_sm90_nt_bf16_bf16_", $out, "_bn256"),
                _ => return None,
            }
        };
    }
    let entry = match epilogue {
        Epilogue::Bf16 => widths!("bf16"),
        Epilogue::F32 { .. } => widths!("f32"),
        Epilogue::SwiGlu => match bn {
            SWIGLU_DECODE_WIDTH => "gemm_sm90_nt_bf16_bf16_swiglu_bn128_decode",
            128 => "gemm_sm90_nt_bf16_bf16_swiglu_bn128",
            256 => "gemm_sm90_nt_bf16_bf16_swiglu_bn256",
            _ => return None,
        },
    };
    Some(Kernel::new(cubins::GEMM_SM90, entry))
}

/// One problem (`GemmSm90Problem` in gemm_sm90.cu).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sm90Problem {
    pub c: u64,
    pub a_row: i32,
    pub b_row: i32,
    pub m: i32,
    pub ldc: i32,
}

/// `GemmSm90Params` in gemm_sm90.cu.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Sm90Params {
    pub problems: [Sm90Problem; MAX_GROUPS],
    pub count: i32,
    pub n: i32,
    pub k: i32,
    pub accumulate: i32,
    /// v7: the bf16 mirror of f32 output, `mirror base − C base / 2` (mod 2⁶⁴); 0: none.
    pub mirror_k: u64,
}

// SAFETY: #[repr(C)] plain-old-data mirrors of gemm_sm90.cu's structs (sizes checked by the tests below against
// its static_asserts); the addresses in them are formed by the launcher after its checks, never dereferenced here.
unsafe impl DeviceRepr for Sm90Params {}

/// Whether the v2 kernel can run `groups` (see the module doc) with element sizes of C `c_size`; the reason if not.
pub fn supports(groups: &[GemmGroup], epilogue: Epilogue) -> Result<(), String> {
    let Some(g0) = groups.first() else {
        return Err("no groups".into());
    };
    let (n, k, lda) = (g0.n, g0.k, g0.lda);
    if !(k.is_multiple_of(8) && lda.is_multiple_of(8) && n.is_multiple_of(8)) {
        return Err(format!(
            "k = {k}, n = {n} and lda = {lda} must be multiples of 8 (16-byte TMA rows)"
        ));
    }
    if epilogue == Epilogue::SwiGlu && !n.is_multiple_of(128) {
        return Err(format!(
            "SwiGLU needs n = {n} to be a multiple of 128 (interleaved blocks of 64)"
        ));
    }
    for (i, g) in groups.iter().enumerate() {
        if (g.n, g.k, g.lda) != (n, k, lda) {
            return Err(format!(
                "group {i}: n, k and lda differ from group 0's (one tensor map per launch)"
            ));
        }
        if g.ldb != k || !g.b_offset.is_multiple_of(k) {
            return Err(format!("group {i}: B must be dense rows (ldb = k) starting on a row"));
        }
        if !g.a_offset.is_multiple_of(lda) {
            return Err(format!("group {i}: A must start on a row of its buffer"));
        }
    }
    Ok(())
}

/// Checks `groups` against the buffers and returns the kernel's parameters with C addresses relative to C's base (in
/// elements) and the rows of the A and B maps.
pub(crate) fn validate(
    entry: &str,
    groups: &[GemmGroup],
    a_len: usize,
    b_len: usize,
    c_len: usize,
    epilogue: Epilogue,
) -> Result<(Sm90Params, usize, usize), KernelError> {
    if groups.len() > MAX_GROUPS {
        return Err(invalid(
            entry,
            format!("{} groups, but one launch takes at most {MAX_GROUPS}", groups.len()),
        ));
    }
    check_groups(entry, groups.len())?;
    supports(groups, epilogue).map_err(|msg| invalid(entry, msg))?;
    let (n, k, lda) = (groups[0].n, groups[0].k, groups[0].lda);
    let out_cols = if epilogue == Epilogue::SwiGlu { n / 2 } else { n };
    let c_size = if matches!(epilogue, Epilogue::F32 { .. }) { 4 } else { 2 };
    let (a_rows, b_rows) = (a_len / lda, b_len / k);
    if k > lda || a_rows > i32::MAX as usize || b_rows > i32::MAX as usize || n > i32::MAX as usize {
        return Err(invalid(
            entry,
            format!("k = {k} > lda = {lda}, or dimensions beyond 32 bits"),
        ));
    }
    let mut p = Sm90Params {
        problems: [Sm90Problem::default(); MAX_GROUPS],
        count: groups.len() as i32,
        n: n as i32,
        k: k as i32,
        accumulate: i32::from(epilogue == Epilogue::F32 { accumulate: true }),
        mirror_k: 0,
    };
    for (i, g) in groups.iter().enumerate() {
        let (a_row, b_row) = (g.a_offset / lda, g.b_offset / k);
        if a_row + g.m > a_rows {
            return Err(invalid(
                entry,
                format!("group {i}: A rows {a_row}..{} past {a_rows}", a_row + g.m),
            ));
        }
        if b_row + n > b_rows {
            return Err(invalid(
                entry,
                format!("group {i}: B rows {b_row}..{} past {b_rows}", b_row + n),
            ));
        }
        if g.ldc < out_cols || (g.ldc * c_size) % 16 != 0 || (g.c_offset * c_size) % 16 != 0 {
            return Err(invalid(
                entry,
                format!(
                    "group {i}: C row stride {} must hold {out_cols} columns, and C rows must be 16-byte aligned",
                    g.ldc
                ),
            ));
        }
        if g.m > 0 && g.c_offset + (g.m - 1) * g.ldc + out_cols > c_len {
            return Err(invalid(entry, format!("group {i}: C past its {c_len} elements")));
        }
        if g.m > i32::MAX as usize || g.ldc > i32::MAX as usize {
            return Err(invalid(entry, format!("group {i}: m or ldc beyond 32 bits")));
        }
        p.problems[i] = Sm90Problem {
            c: g.c_offset as u64,
            a_row: a_row as i32,
            b_row: b_row as i32,
            m: g.m as i32,
            ldc: g.ldc as i32,
        };
    }
    // two problems writing one C element would race
    let as_c: Vec<GemmGroup> = groups.iter().map(|g| GemmGroup { n: out_cols, ..*g }).collect();
    crate::gemm::check_disjoint_c(entry, &as_c)?;
    Ok((p, a_rows, b_rows))
}

/// K-blocks of 64 per pipeline stage of a narrow width (`sm90::narrow_ks`): 128 / BN.
fn narrow_ks(bn: usize) -> usize {
    if bn >= 128 {
        1
    } else {
        128 / bn
    }
}

/// The tensor map of a narrow width (v10): where a stage holds several k-blocks (`ks` > 1) and `k` is whole k-blocks,
/// a 3-D view `{64, rows, k / 64}` (strides: the row, then 128 bytes a k-block) whose box `{64, box_rows, ks}` is a
/// stage's k-block slots in one copy — what the kernel then issues (`boxes3` in `gemm_sm90_narrow`, the same
/// condition); else [`tensor_map`]'s 2-D map.
fn narrow_map(
    entry: &str,
    base: u64,
    (k, rows, ld): (usize, usize, usize),
    box_rows: usize,
    ks: usize,
) -> Result<TmaMap, KernelError> {
    if ks <= 1 || !k.is_multiple_of(BK) {
        return tensor_map(entry, base, k, rows, ld, box_rows);
    }
    tma::bf16_map(
        entry,
        base,
        &[BK as u64, rows as u64, (k / BK) as u64],
        &[(ld * 2) as u64, (BK * 2) as u64],
        &[BK as u32, box_rows as u32, ks as u32],
    )
}

/// A 2-D bf16 tensor map over `rows` rows of `k` elements (stride `ld` elements) at device address `base`, with
/// boxes of 64 × `box_rows`.
pub(crate) fn tensor_map(
    entry: &str,
    base: u64,
    k: usize,
    rows: usize,
    ld: usize,
    box_rows: usize,
) -> Result<TmaMap, KernelError> {
    tma::bf16_map(
        entry,
        base,
        &[k as u64, rows as u64],
        &[(ld * 2) as u64],
        &[BK as u32, box_rows as u32],
    )
}

fn launch<TC: DeviceRepr>(
    gpu: &Gpu,
    stream: &CudaStream,
    (a, b): (&CudaSlice<bf16>, &CudaSlice<bf16>),
    out: (&mut CudaSlice<TC>, Option<&mut CudaSlice<bf16>>),
    groups: &[GemmGroup],
    epilogue: Epilogue,
) -> Result<(), KernelError> {
    let bn = launch_tile_width(groups, epilogue, gpu.sm_count(), decode_tiles_enabled());
    launch_mirrored(gpu, stream, (a, b), out, groups, epilogue, bn)
}

/// The launch of `groups` at tile width `bn` (any width with an entry point for `epilogue`: [`TILE_WIDTHS`], and
/// [`DECODE_TILE_WIDTHS`] when every group has at most [`DECODE_MAX_ROWS`] rows; SwiGLU: 128, 256 and
/// [`SWIGLU_DECODE_WIDTH`]), whatever the rule would pick: for
/// the checks that every width gives the same bytes (`check/gemm_sm90.rs`) and for benchmarks. C's element type must
/// match the epilogue (f32 for [`Epilogue::F32`], bf16 otherwise).
pub fn launch_at_width<TC: DeviceRepr>(
    gpu: &Gpu,
    stream: &CudaStream,
    (a, b): (&CudaSlice<bf16>, &CudaSlice<bf16>),
    c: &mut CudaSlice<TC>,
    groups: &[GemmGroup],
    epilogue: Epilogue,
    bn: usize,
) -> Result<(), KernelError> {
    launch_mirrored(gpu, stream, (a, b), (c, None), groups, epilogue, bn)
}

/// [`launch_at_width`] with, for f32 output, a bf16 mirror of C: every element the launch writes to C is also written,
/// rounded to bf16 (round to nearest even, as [`crate::to_bf16::to_bf16`]), to the same index of `mirror`, which
/// must have at least C's length.
pub fn launch_mirrored<TC: DeviceRepr>(
    gpu: &Gpu,
    stream: &CudaStream,
    (a, b): (&CudaSlice<bf16>, &CudaSlice<bf16>),
    (c, mirror): (&mut CudaSlice<TC>, Option<&mut CudaSlice<bf16>>),
    groups: &[GemmGroup],
    epilogue: Epilogue,
    bn: usize,
) -> Result<(), KernelError> {
    let kernel = kernel(epilogue, bn).ok_or_else(|| invalid("gemm_sm90", format!("no kernel of tile width {bn}")))?;
    let (mut params, a_rows, b_rows) = validate(kernel.entry, groups, a.len(), b.len(), c.len(), epilogue)?;
    let max_m = groups.iter().map(|g| g.m).max().unwrap_or(0);
    let narrow = DECODE_TILE_WIDTHS.contains(&bn);
    if narrow && max_m > DECODE_MAX_ROWS {
        return Err(invalid(
            kernel.entry,
            format!("a problem of {max_m} rows, but the narrow widths take at most {DECODE_MAX_ROWS}"),
        ));
    }
    assert_eq!(
        size_of::<TC>(),
        if matches!(epilogue, Epilogue::F32 { .. }) { 4 } else { 2 },
        "C's element type"
    );
    if let Some(m) = mirror.as_ref() {
        if !matches!(epilogue, Epilogue::F32 { .. }) || m.len() < c.len() {
            let why = format!(
                "a bf16 mirror of {} elements for C of {} ({epilogue:?})",
                m.len(),
                c.len()
            );
            return Err(invalid(kernel.entry, why));
        }
    }
    if groups.iter().all(|g| g.m == 0) {
        return Ok(());
    }
    let (k, lda) = (groups[0].k, groups[0].lda);
    // B rows per tile: the width, but 128 for the narrow SwiGLU tile (named by its 64 outputs)
    let b_box = if epilogue == Epilogue::SwiGlu && narrow {
        128
    } else {
        bn
    };
    let (a_map, b_map) = if narrow {
        // the A box: the rows the kernel expects per stage (wide launches: a whole 128-row tile, wide_maps)
        let (a_box, ks) = (decode_a_rows(max_m), narrow_ks(b_box));
        (
            narrow_map(kernel.entry, addr(a, stream), (k, a_rows, lda), a_box, ks)?,
            narrow_map(kernel.entry, addr(b, stream), (k, b_rows, k), b_box, ks)?,
        )
    } else {
        wide_maps(kernel.entry, stream, (a, a_rows), (b, b_rows), groups[0], b_box)?
    };
    let (f, cfg, c_base) = persistent_launch(gpu, stream, &kernel, c, &mut params, groups, b_box)?;
    if let Some(m) = mirror {
        let why = || {
            invalid(
                kernel.entry,
                "the mirror sits at C's address / 2 (reads as no mirror)".into(),
            )
        };
        params.mirror_k = mirror_k(c_base, addr_mut(m, stream)).ok_or_else(why)?;
    }
    let mut builder = crate::launch::Launch::new(stream, &f);
    builder.arg(&a_map).arg(&b_map).arg(&params);
    // SAFETY: the kernel takes (TmaMap a_map, TmaMap b_map, GemmSm90Params) by value; these are their #[repr(C)]
    // mirrors. The maps cover exactly the A buffer (`a_rows` whole rows of `lda`) and the B buffer (`b_rows` rows of
    // `k`), so TMA never reads outside them (it zero-fills past their edges); validate() checked every problem's A and
    // B rows against them and its C region (m rows of the output width, stride ldc, 16-byte aligned) against `c`,
    // and that no two problems write the same element of C; `c` is borrowed mutably, so it aliases neither input.
    // C's element size matches the epilogue (asserted above). The dynamic shared memory is the kernel's plan for
    // this tile width, and its limit was raised to it on the function. A narrow width is launched only with every
    // problem at most DECODE_MAX_ROWS rows and an A box of decode_a_rows(max m) rows, the bytes the kernel expects
    // per stage (it derives the same number from the problems and traps on a larger m). With a mirror (f32 only,
    // checked above), each C element e the kernel stores also goes to element e of `mirror` (at least C's length,
    // borrowed mutably for this call, so it aliases nothing else of the launch).
    unsafe { builder.launch(cfg) }?;
    Ok(())
}

/// The A and B maps of a wide launch (v2's tiles): A's 128-row boxes over the `a_rows` rows of `a` (stride `g.lda`),
/// B's `b_box`-row boxes over the `b_rows` rows of `b` (stride `g.k`), `g` any group of the launch (they share `k`
/// and `lda`).
pub(crate) fn wide_maps(
    entry: &str,
    stream: &CudaStream,
    (a, a_rows): (&CudaSlice<bf16>, usize),
    (b, b_rows): (&CudaSlice<bf16>, usize),
    g: GemmGroup,
    b_box: usize,
) -> Result<(TmaMap, TmaMap), KernelError> {
    Ok((
        tensor_map(entry, addr(a, stream), g.k, a_rows, g.lda, BM)?,
        tensor_map(entry, addr(b, stream), g.k, b_rows, g.k, b_box)?,
    ))
}

/// What every persistent launch of `groups` finishes with: each problem's C made absolute (`c`'s address plus its
/// offset in elements of C's type), the kernel's function, and the launch over the groups' tiles of `b_box` B rows;
/// also C's address.
pub(crate) fn persistent_launch<TC: DeviceRepr>(
    gpu: &Gpu,
    stream: &CudaStream,
    kernel: &Kernel,
    c: &mut CudaSlice<TC>,
    params: &mut Sm90Params,
    groups: &[GemmGroup],
    b_box: usize,
) -> Result<(cudarc::driver::CudaFunction, LaunchConfig, u64), KernelError> {
    let c_base = addr_mut(c, stream);
    for p in &mut params.problems[..groups.len()] {
        p.c = c_base + p.c * size_of::<TC>() as u64;
    }
    let f = gpu.function(kernel)?;
    let n = groups.first().map_or(0, |g| g.n);
    let tiles: usize = groups.iter().map(|g| g.m.div_ceil(BM)).sum::<usize>() * n.div_ceil(b_box);
    let cfg = persistent_config(gpu, &f, tiles)?;
    Ok((f, cfg, c_base))
}

/// The launch of a persistent GEMM entry over `tiles` tiles: one CTA per SM (at most one per tile), [`THREADS`]
/// threads, all the dynamic shared memory a block may have ([`SMEM_LIMIT`], its limit raised on `f` to it).
pub(crate) fn persistent_config(
    gpu: &Gpu,
    f: &cudarc::driver::CudaFunction,
    tiles: usize,
) -> Result<LaunchConfig, KernelError> {
    f.set_attribute(
        CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
        SMEM_LIMIT as i32,
    )?;
    Ok(LaunchConfig {
        grid_dim: (gpu.sm_count().min(tiles).max(1) as u32, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: SMEM_LIMIT as u32,
    })
}

/// The kernel's `mirror_k` for f32 C at `c_base` and its bf16 mirror at `m_base`: C element e at `c_base + 4e` goes
/// to `m_base + 2e = (c_base + 4e) / 2 + (m_base − c_base / 2)` (mod 2⁶⁴). `None` where that is 0, which the kernel
/// reads as no mirror.
fn mirror_k(c_base: u64, m_base: u64) -> Option<u64> {
    Some(m_base.wrapping_sub(c_base / 2)).filter(|&k| k != 0)
}

/// `C = A·Bᵀ` for each group, bf16 C (v2 kernel). See [`supports`] for the shapes it takes.
pub fn gemm_sm90_nt_bf16_bf16_bf16(
    gpu: &Gpu,
    stream: &CudaStream,
    a: &CudaSlice<bf16>,
    b: &CudaSlice<bf16>,
    c: &mut CudaSlice<bf16>,
    groups: &[GemmGroup],
) -> Result<(), KernelError> {
    launch(gpu, stream, (a, b), (c, None), groups, Epilogue::Bf16)
}

/// `C (+)= A·Bᵀ` for each group, f32 C (v2 kernel): the residual adds into the f32 hidden rows, and the logits.
pub fn gemm_sm90_nt_bf16_bf16_f32(
    gpu: &Gpu,
    stream: &CudaStream,
    a: &CudaSlice<bf16>,
    b: &CudaSlice<bf16>,
    c: &mut CudaSlice<f32>,
    groups: &[GemmGroup],
    accumulate: bool,
) -> Result<(), KernelError> {
    launch(gpu, stream, (a, b), (c, None), groups, Epilogue::F32 { accumulate })
}

/// [`gemm_sm90_nt_bf16_bf16_f32`] that also writes every C element it stores, rounded to bf16, to the same index of
/// `mirror` (at least C's length): the bf16 copy of the hidden rows that the memory's projections read, without a
/// `to_bf16` pass of their own (the same bits as one).
pub fn gemm_sm90_nt_bf16_bf16_f32_mirrored(
    gpu: &Gpu,
    stream: &CudaStream,
    a: &CudaSlice<bf16>,
    b: &CudaSlice<bf16>,
    (c, mirror): (&mut CudaSlice<f32>, &mut CudaSlice<bf16>),
    groups: &[GemmGroup],
    accumulate: bool,
) -> Result<(), KernelError> {
    launch(
        gpu,
        stream,
        (a, b),
        (c, Some(mirror)),
        groups,
        Epilogue::F32 { accumulate },
    )
}

/// `C = silu(A·Gᵀ) ⊙ (A·Uᵀ)` for each group (v2 kernel), from a gate/up weight interleaved by
/// [`interleave_gate_up`]: a group's `n` is `2·I` (its B rows) and its C has `I` columns.
pub fn gemm_sm90_nt_bf16_bf16_swiglu(
    gpu: &Gpu,
    stream: &CudaStream,
    a: &CudaSlice<bf16>,
    b: &CudaSlice<bf16>,
    c: &mut CudaSlice<bf16>,
    groups: &[GemmGroup],
) -> Result<(), KernelError> {
    launch(gpu, stream, (a, b), (c, None), groups, Epilogue::SwiGlu)
}

/// The most rows a problem of a normed launch may have ([`normed_width`]; `NORMED_ROWS` of gemm_sm90.cu).
pub const NORMED_MAX_ROWS: usize = 8;
/// The widest `k` (the norm's width) a normed launch takes (`NORMED_MAX_K`).
pub const NORMED_MAX_K: usize = 4096;

/// The RMSNorm a normed launch makes its A rows with ([`gemm_sm90_nt_normed`]): group `i`'s row `r` is the norm of
/// row `rows[i].0 + r` of `x` (f32, row stride `x_ld`) with row `rows[i].1` of `w` (`[layers, k]`) and `eps` —
/// `rms_norm`'s bits for those rows, which the launch does not need anywhere.
#[derive(Debug, Clone, Copy)]
pub struct NormedRows<'a> {
    pub x: &'a CudaSlice<f32>,
    pub x_ld: usize,
    pub w: &'a CudaSlice<bf16>,
    pub eps: f32,
    /// Per group: the x row of its first A row, and its norm weights' row (the layer).
    pub rows: &'a [(usize, usize)],
}

/// `GemmSm90NormRows` in gemm_sm90.cu.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct Sm90NormRows {
    x: u64,
    w: u64,
    x_ld: i64,
    eps: f32,
    pad: i32,
    x_row: [i32; MAX_GROUPS],
    layer: [i32; MAX_GROUPS],
}

// SAFETY: a #[repr(C)] plain-old-data mirror of gemm_sm90.cu's GemmSm90NormRows (its static_assert, the size test
// below); the addresses in it are formed by the launcher after its checks.
unsafe impl DeviceRepr for Sm90NormRows {}

/// The tile width a normed launch of `groups` takes ([`gemm_sm90_nt_normed`]), or `None` where it takes none: the
/// decode rule's width ([`launch_tile_width`] with `decode`) where that is a narrow one (bf16 output: 16, 32, 64;
/// SwiGLU: [`SWIGLU_DECODE_WIDTH`]), every group at most [`NORMED_MAX_ROWS`] rows, `k` at most [`NORMED_MAX_K`]. The
/// same width as the unnormed launch of the same groups, so the same bytes.
pub fn normed_width(groups: &[GemmGroup], epilogue: Epilogue, sms: usize, decode: bool) -> Option<usize> {
    let k = groups.first()?.k;
    let max_m = groups.iter().map(|g| g.m).max()?;
    if !decode || max_m > NORMED_MAX_ROWS || k > NORMED_MAX_K || k == 0 {
        return None;
    }
    let bn = launch_tile_width(groups, epilogue, sms, decode);
    let narrow = match epilogue {
        Epilogue::Bf16 => DECODE_TILE_WIDTHS.contains(&bn),
        Epilogue::SwiGlu => bn == SWIGLU_DECODE_WIDTH,
        Epilogue::F32 { .. } => false,
    };
    narrow.then_some(bn)
}

/// `C = norm(X)·Bᵀ` (bf16 C) or SwiGLU of it, for the groups of a decode step (v9, `gemm_sm90_*_normed`): the A rows
/// are made from `a`'s f32 rows by `rms_norm`'s arithmetic inside the launch instead of loaded from a normed buffer
/// — one launch instead of `rms_norm` + the GEMM, the same bytes. The groups' A fields (`a_offset`, `lda`) are not
/// read (there is no A buffer); everything else as [`gemm_sm90_nt_bf16_bf16_bf16`] /
/// [`gemm_sm90_nt_bf16_bf16_swiglu`]. Only where [`normed_width`] (with `decode` = [`decode_tiles_enabled`]) gives a
/// width; elsewhere an error.
pub fn gemm_sm90_nt_normed(
    gpu: &Gpu,
    stream: &CudaStream,
    a: &NormedRows<'_>,
    b: &CudaSlice<bf16>,
    c: &mut CudaSlice<bf16>,
    groups: &[GemmGroup],
    epilogue: Epilogue,
) -> Result<(), KernelError> {
    const K: &str = "gemm_sm90_nt_normed";
    let bn = normed_width(groups, epilogue, gpu.sm_count(), decode_tiles_enabled()).ok_or_else(|| {
        let why = format!("no normed width for {epilogue:?} (decode rows ≤ {NORMED_MAX_ROWS}, k ≤ {NORMED_MAX_K})");
        invalid(K, why)
    })?;
    let entry = match (epilogue, bn) {
        (Epilogue::SwiGlu, _) => "gemm_sm90_nt_bf16_bf16_swiglu_bn128_decode_normed",
        (_, 16) => "gemm_sm90_nt_bf16_bf16_bf16_bn16_normed",
        (_, 32) => "gemm_sm90_nt_bf16_bf16_bf16_bn32_normed",
        _ => "gemm_sm90_nt_bf16_bf16_bf16_bn64_normed",
    };
    // the groups' A rows are never read: an A length that holds them passes validate's A checks
    let a_len = groups.iter().map(|g| g.a_offset + g.m * g.lda).max().unwrap_or(0);
    let (mut params, _, b_rows) = validate(entry, groups, a_len, b.len(), c.len(), epilogue)?;
    let norm = normed_params(entry, a, groups)?;
    if groups.iter().all(|g| g.m == 0) {
        return Ok(());
    }
    let k = groups[0].k;
    let b_box = if epilogue == Epilogue::SwiGlu { 128 } else { bn };
    let b_map = narrow_map(entry, addr(b, stream), (k, b_rows, k), b_box, narrow_ks(b_box))?;
    let norm = Sm90NormRows {
        x: addr(a.x, stream),
        w: addr(a.w, stream),
        ..norm
    };
    // (every problem has at most NORMED_MAX_ROWS rows: one row tile each problem with rows)
    let kernel = Kernel::new(cubins::GEMM_SM90, entry);
    let (f, cfg, _) = persistent_launch(gpu, stream, &kernel, c, &mut params, groups, b_box)?;
    let mut builder = crate::launch::Launch::new(stream, &f);
    builder.arg(&b_map).arg(&params).arg(&norm);
    // SAFETY: the kernel takes (TmaMap b_map, GemmSm90Params, GemmSm90NormRows) by value; these are their #[repr(C)]
    // mirrors. The B map covers exactly the B buffer; validate() checked every problem's B rows and C region against
    // `b` and `c` (borrowed mutably: it aliases neither input) and that no two problems write one C element;
    // normed_params() checked each problem's m x rows (k columns, stride x_ld ≥ k) inside `a.x` and its norm row
    // inside `a.w`. The width is normed_width's: a narrow one, every problem at most NORMED_MAX_ROWS rows and k at most
    // NORMED_MAX_K, which the kernel's plan holds (it traps otherwise). The dynamic shared memory is the whole limit.
    unsafe { builder.launch(cfg) }?;
    Ok(())
}

/// The normed launch's norm parameters on lengths only (addresses 0): each group's x rows and norm row inside
/// their buffers.
fn normed_params(entry: &str, a: &NormedRows<'_>, groups: &[GemmGroup]) -> Result<Sm90NormRows, KernelError> {
    let k = groups.first().map_or(0, |g| g.k);
    if a.rows.len() != groups.len() {
        let why = format!("{} norm rows for {} groups", a.rows.len(), groups.len());
        return Err(invalid(entry, why));
    }
    if a.x_ld < k || a.x_ld > i32::MAX as usize || !a.eps.is_finite() || a.eps < 0.0 {
        let why = format!("x rows of stride {} for a norm of {k} (eps {})", a.x_ld, a.eps);
        return Err(invalid(entry, why));
    }
    let (x_rows, w_rows) = (a.x.len() / a.x_ld.max(1), a.w.len() / k.max(1));
    let mut p = Sm90NormRows {
        x: 0,
        w: 0,
        x_ld: a.x_ld as i64,
        eps: a.eps,
        pad: 0,
        x_row: [0; MAX_GROUPS],
        layer: [0; MAX_GROUPS],
    };
    for (i, (g, &(row, layer))) in groups.iter().zip(a.rows).enumerate() {
        if row + g.m > x_rows || layer >= w_rows || row > i32::MAX as usize || layer > i32::MAX as usize {
            let why = format!(
                "group {i}: x rows {row}..+{} of {x_rows}, norm row {layer} of {w_rows}",
                g.m
            );
            return Err(invalid(entry, why));
        }
        (p.x_row[i], p.layer[i]) = (row as i32, layer as i32);
    }
    Ok(p)
}

/// The row of the interleaved gate/up weight that holds row `r` of a layer's `[gate (I rows); up (I rows)]`: for every
/// 64 output columns `j0..j0+64`, 64 gate rows then 64 up rows (so a 128-wide tile holds gate and up of the same
/// columns). `i` (= I) must be a multiple of 64.
pub fn interleave_gate_up(r: usize, i: usize) -> usize {
    let (half, j) = if r < i { (0, r) } else { (1, r - i) };
    128 * (j / 64) + 64 * half + j % 64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_k_maps_every_element_to_its_mirror() {
        for (c, m) in [
            (0x7f00_0000_0000u64, 0x7f10_0000_0100u64),
            (0x7f10_0000_0000, 0x7f00_0000_0000),
        ] {
            let k = mirror_k(c, m).unwrap();
            for e in [0u64, 1, 1000, 1 << 30] {
                assert_eq!(((c + 4 * e) >> 1).wrapping_add(k), m + 2 * e);
            }
        }
        assert_eq!(mirror_k(0x2000, 0x1000), None, "reads as no mirror");
    }

    #[test]
    fn params_layout_matches_gemm_sm90_cu() {
        // the static_asserts of gemm_sm90.cu: 24-byte problems, 64 of them + 24 bytes
        assert_eq!(size_of::<Sm90Problem>(), 24);
        assert_eq!(size_of::<Sm90Params>(), 24 * MAX_GROUPS + 24);
    }

    #[test]
    fn norm_rows_layout_matches_gemm_sm90_cu() {
        assert_eq!(size_of::<Sm90NormRows>(), 32 + 8 * MAX_GROUPS);
        let cu = include_str!("../../../cuda/gemm_sm90.cu");
        assert!(cu.contains("constexpr int NORMED_ROWS = 8;") && cu.contains("constexpr int NORMED_MAX_K = 4096;"));
        assert_eq!((NORMED_MAX_ROWS, NORMED_MAX_K), (8, 4096));
    }

    #[test]
    fn normed_launches_take_the_narrow_widths_of_decode_rows_only() {
        let g = |m, n, k| GemmGroup {
            m,
            n,
            k,
            a_offset: 0,
            lda: k,
            b_offset: 0,
            ldb: k,
            c_offset: 0,
            ldc: n,
        };
        // 1B q/k/v and gate/up, SmolLM2's q/k/v, one decoded row: the decode rule's narrow widths
        assert_eq!(normed_width(&[g(1, 3072, 2048)], Epilogue::Bf16, 132, true), Some(32));
        assert_eq!(normed_width(&[g(1, 960, 576)], Epilogue::Bf16, 132, true), Some(32));
        assert_eq!(
            normed_width(&[g(1, 16384, 2048)], Epilogue::SwiGlu, 132, true),
            Some(64)
        );
        // the shapes of check::gemm_sm90_normed
        let two = [g(1, 3072, 2048), g(8, 3072, 2048)];
        assert!(normed_width(&two, Epilogue::Bf16, 132, true).is_some());
        assert!(normed_width(&[g(3, 16384, 2048)], Epilogue::SwiGlu, 132, true).is_some());
        assert!(normed_width(&[g(1, 960, 576), g(2, 960, 576)], Epilogue::Bf16, 132, true).is_some());
        assert!(normed_width(&[g(1, 3072, 576)], Epilogue::SwiGlu, 132, true).is_some());
        assert!(normed_width(&[g(1, 6144, 4096)], Epilogue::Bf16, 132, true).is_some());
        assert!(normed_width(&[g(5, 2048, 2048)], Epilogue::Bf16, 132, true).is_some());
        assert!(normed_width(&[g(1, 512, 200)], Epilogue::Bf16, 132, true).is_some());
        // not: more than 8 rows, decode tiles off, f32 output, k past 4096, a wide width
        assert_eq!(normed_width(&[g(9, 3072, 2048)], Epilogue::Bf16, 132, true), None);
        assert_eq!(normed_width(&[g(1, 3072, 2048)], Epilogue::Bf16, 132, false), None);
        assert_eq!(
            normed_width(&[g(1, 3072, 2048)], Epilogue::F32 { accumulate: false }, 132, true),
            None
        );
        assert_eq!(normed_width(&[g(1, 3072, 4104)], Epilogue::Bf16, 132, true), None);
        assert_eq!(normed_width(&[g(1, 128256, 2048)], Epilogue::Bf16, 132, true), None);
    }

    #[test]
    fn every_rule_width_has_an_entry_point() {
        for e in [Epilogue::Bf16, Epilogue::F32 { accumulate: true }, Epilogue::SwiGlu] {
            for n in [64, 768, 2048, 3072, 16384] {
                assert!(kernel(e, tile_width(n, 2048, e, 132)).is_some(), "{e:?} n {n}");
            }
        }
    }

    #[test]
    fn tile_rule_picks_what_the_notes_say() {
        // docs/log/gemm_sm90.md, the tile rule on 132 SMs (bf16 picks unchanged since v3)
        let bf16 = |n, k| tile_width(n, k, Epilogue::Bf16, 132);
        assert_eq!(bf16(2048, 2048), 152);
        assert_eq!(bf16(3072, 2048), 224);
        assert_eq!(bf16(4096, 4096), 144);
        assert_eq!(bf16(5120, 3072), 192);
        assert_eq!(bf16(6144, 4096), 224);
        assert_eq!(bf16(2304, 768), 224);
        assert_eq!(bf16(768, 768), 128);
        assert_eq!(bf16(16384, 2048), 192);
        assert_eq!(bf16(28672, 4096), 256);
        assert_eq!(tile_width(16384, 2048, Epilogue::SwiGlu, 132), 256);
    }

    #[test]
    fn wide_launches_weigh_the_last_wave_for_f32_output() {
        let f32 = Epilogue::F32 { accumulate: true };
        let w = |n, k, row_tiles| wide_tile_width(n, k, f32, 132, row_tiles);
        // 1B o and down: the rule's 152 at 1 and 4 cells of 9 row tiles, 128 at 16 (and 15 + a 300-row cell)
        for k in [2048, 8192] {
            assert_eq!(tile_width(2048, k, f32, 132), 152);
            assert_eq!(
                (w(2048, k, 9), w(2048, k, 36), w(2048, k, 144), w(2048, k, 138)),
                (152, 152, 128, 128)
            );
        }
        // 8B o and down at 32 cells: 152 for the rule's 144; 3B o at 28 cells keeps the rule's 128
        for k in [4096, 14336] {
            assert_eq!(
                (tile_width(4096, k, f32, 132), w(4096, k, 288), w(4096, k, 9)),
                (144, 152, 144)
            );
        }
        assert_eq!((tile_width(3072, 3072, f32, 132), w(3072, 3072, 252)), (128, 128));
        // bf16 output never moves
        assert_eq!(wide_tile_width(2048, 2048, Epilogue::Bf16, 132, 144), 152);
    }

    /// `gemm_sm90_decode_bn_rule` of cuda/gemm_sm90.cu on 132 SMs, computed by the C++ itself (its host code from
    /// `#define GEMM_SM90_EPI_BF16` to `namespace sm90`, compiled with g++; epilogue codes 0 bf16, 1 f32, 2 SwiGLU,
    /// whose narrow tile prints as 64): per line `epilogue n k:` then the picks for
    /// row_tiles 1, 2, 4, 8, 16, 64 (outer) × max m 1, 8, 16, 33, 64 (inner). The Rust mirror must give the same.
    const CUDA_DECODE_PICKS: &str = "\
0 3072 2048: 32 32 32 32 32 64 64 64 64 64 128 128 128 128 128 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256
1 3072 2048: 32 32 32 32 32 64 64 64 64 64 128 128 128 128 128 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256
0 2048 2048: 16 16 16 16 16 64 64 64 32 32 64 64 64 64 64 128 128 128 128 128 256 256 256 256 256 256 256 256 256 256
1 2048 2048: 16 16 16 16 16 64 64 64 32 32 64 64 64 64 64 128 128 128 128 128 256 256 256 256 256 256 256 256 256 256
0 2048 8192: 16 16 16 16 16 64 64 64 32 32 64 64 64 64 64 128 128 128 128 128 256 256 256 256 256 256 256 256 256 256
1 2048 8192: 16 16 16 16 16 64 64 64 32 32 64 64 64 64 64 128 128 128 128 128 256 256 256 256 256 256 256 256 256 256
0 64 2048: 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 64 64 64 32 32
1 64 2048: 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 64 64 64 32 32
0 2120 2048: 32 32 32 32 32 64 64 64 64 64 64 64 64 64 64 152 152 152 152 152 152 152 152 152 152 152 152 152 152 152
1 2120 2048: 32 32 32 32 32 64 64 64 64 64 64 64 64 64 64 152 152 152 152 152 152 152 152 152 152 152 152 152 152 152
0 128256 2048: 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256
1 128256 2048: 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256
0 512 2048: 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 64 64 64 32 32 64 64 64 64 64 256 256 256 256 256
1 512 2048: 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 64 64 64 32 32 64 64 64 64 64 256 256 256 256 256
0 16384 2048: 208 208 208 208 208 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256
1 16384 2048: 208 208 208 208 208 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256
0 768 768: 32 32 32 32 32 32 32 32 32 32 32 32 32 32 32 64 64 64 64 64 128 128 128 128 128 256 256 256 256 256
1 768 768: 32 32 32 32 32 32 32 32 32 32 32 32 32 32 32 64 64 64 64 64 128 128 128 128 128 256 256 256 256 256
0 2304 768: 32 32 32 32 32 64 64 64 64 64 64 64 64 64 64 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256
1 2304 768: 32 32 32 32 32 64 64 64 64 64 64 64 64 64 64 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256
0 4096 4096: 64 64 64 32 32 64 64 64 64 64 152 152 152 152 152 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256
1 4096 4096: 64 64 64 32 32 64 64 64 64 64 152 152 152 152 152 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256
0 6144 4096: 64 64 64 64 64 128 128 128 128 128 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256
1 6144 4096: 64 64 64 64 64 128 128 128 128 128 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256
0 4096 14336: 64 64 64 32 32 64 64 64 64 64 152 152 152 152 152 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256
1 4096 14336: 64 64 64 32 32 64 64 64 64 64 152 152 152 152 152 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256
0 960 576: 32 32 32 32 32 32 32 32 32 32 64 64 64 32 32 64 64 64 64 64 192 192 192 192 192 192 192 192 192 192
1 960 576: 32 32 32 32 32 32 32 32 32 32 64 64 64 32 32 64 64 64 64 64 192 192 192 192 192 192 192 192 192 192
0 200 576: 32 32 32 32 32 32 32 32 32 32 32 32 32 32 32 32 32 32 32 32 32 32 32 32 32 208 208 208 208 208
1 200 576: 32 32 32 32 32 32 32 32 32 32 32 32 32 32 32 32 32 32 32 32 32 32 32 32 32 208 208 208 208 208
2 16384 2048: 64 64 64 64 64 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256
2 6144 768: 64 64 64 64 64 64 64 64 64 64 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256
2 16384 3072: 64 64 64 64 64 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256
2 28672 4096: 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256 256
2 512 2048: 64 64 64 64 64 64 64 64 64 64 64 64 64 64 64 64 64 64 64 64 64 64 64 64 64 128 128 128 128 128
2 1024 576: 64 64 64 64 64 64 64 64 64 64 64 64 64 64 64 64 64 64 64 64 64 64 64 64 64 256 256 256 256 256
";

    #[test]
    fn decode_rule_mirrors_the_cuda_rule() {
        let mut lines = 0;
        for line in CUDA_DECODE_PICKS.lines() {
            let (head, picks) = line.split_once(':').unwrap();
            let h: Vec<usize> = head.split_whitespace().map(|x| x.parse().unwrap()).collect();
            let e = match h[0] {
                0 => Epilogue::Bf16,
                1 => Epilogue::F32 { accumulate: true },
                _ => Epilogue::SwiGlu,
            };
            let picks: Vec<usize> = picks.split_whitespace().map(|x| x.parse().unwrap()).collect();
            assert_eq!(picks.len(), 30);
            let mut i = 0;
            for rt in [1, 2, 4, 8, 16, 64] {
                for mm in [1, 8, 16, 33, 64] {
                    assert_eq!(
                        decode_tile_width(h[1], h[2], e, 132, rt, mm),
                        picks[i],
                        "{line}: rt {rt} m {mm}"
                    );
                    i += 1;
                }
            }
            lines += 1;
        }
        assert_eq!(lines, 36);
    }

    #[test]
    fn decode_rule_picks_what_the_notes_say() {
        // docs/log/gemm_sm90.md v5/v6: Llama-3.2-1B decoding one request (one row per step) on 132 SMs
        let one = |n, k, e| launch_tile_width(&[group(1, n, k, 0, 0, 0)], e, 132, true);
        let f32acc = Epilogue::F32 { accumulate: true };
        assert_eq!(one(3072, 2048, Epilogue::Bf16), 32); // q/k/v: 96 CTAs
        assert_eq!(one(2048, 2048, f32acc), 16); // o: 128 CTAs
        assert_eq!(one(2048, 8192, f32acc), 16); // down: 128 CTAs
        assert_eq!(one(64, 2048, Epilogue::F32 { accumulate: false }), 16); // the memory read's q: 4 CTAs
        assert_eq!(one(16384, 2048, Epilogue::SwiGlu), SWIGLU_DECODE_WIDTH); // gate/up (v6): 128 CTAs
        assert_eq!(one(128256, 2048, Epilogue::F32 { accumulate: false }), 256); // an LM head stays wide
                                                                                 // the switch, and launches with a problem of more than DECODE_MAX_ROWS rows: the (n, k) rule
        assert_eq!(
            launch_tile_width(&[group(1, 2048, 2048, 0, 0, 0)], f32acc, 132, false),
            152
        );
        let mixed = [group(1, 2048, 2048, 0, 0, 0), group(65, 2048, 2048, 1, 1, 2048)];
        assert_eq!(launch_tile_width(&mixed, f32acc, 132, true), 152);
        let merged = [group(64, 2048, 2048, 0, 0, 0)];
        assert_eq!(launch_tile_width(&merged, f32acc, 132, true), 16);
        // every pick has an entry point, the narrow ones bf16 and f32 only
        for e in [Epilogue::Bf16, f32acc] {
            for bn in DECODE_TILE_WIDTHS {
                assert!(kernel(e, bn).is_some());
            }
        }
        assert!(kernel(Epilogue::SwiGlu, 16).is_none());
        assert!(kernel(Epilogue::SwiGlu, SWIGLU_DECODE_WIDTH).is_some());
    }

    #[test]
    fn decode_a_rows_match_the_kernel() {
        let cu = include_str!("../../../cuda/gemm_sm90.cu");
        assert!(cu.contains(&format!("#define GEMM_SM90_DECODE_MAX_ROWS {DECODE_MAX_ROWS}\n")));
        assert!(cu.contains("#define GEMM_SM90_DECODE_BN_LIST {16, 32, 64}\n"));
        assert!(cu.contains(&format!("#define GEMM_SM90_DECODE_SWIGLU_BN {SWIGLU_DECODE_WIDTH}\n")));
        assert!(cu.contains("gemm_sm90_nt_bf16_bf16_swiglu_bn128_decode("));
        assert!(cu.contains("#define GEMM_SM90_BN_LIST {128, 144, 152, 160, 192, 208, 224, 256}\n"));
        assert!(cu.contains("return max_m <= 8 ? 8 : (max_m <= 16 ? 16 : (max_m <= 32 ? 32 : 64));"));
        let rows: Vec<usize> = [0, 1, 8, 9, 16, 17, 32, 33, 64].map(decode_a_rows).to_vec();
        assert_eq!(rows, [8, 8, 8, 16, 16, 32, 32, 64, 64]);
        for bn in DECODE_TILE_WIDTHS.iter().chain(&TILE_WIDTHS) {
            for out in ["bf16", "f32"] {
                assert!(
                    cu.contains(&format!("(gemm_sm90_nt_bf16_bf16_{out}_bn{bn}, {bn},")),
                    "{out} {bn}"
                );
            }
        }
    }

    fn group(m: usize, n: usize, k: usize, a_row: usize, layer: usize, c_offset: usize) -> GemmGroup {
        GemmGroup {
            a_offset: a_row * k,
            b_offset: layer * n * k,
            c_offset,
            m,
            n,
            k,
            lda: k,
            ldb: k,
            ldc: n,
        }
    }

    #[test]
    fn validates_shapes_and_buffers() {
        let e = Epilogue::Bf16;
        let ok = [group(100, 256, 64, 0, 0, 0), group(28, 256, 64, 100, 1, 100 * 256)];
        let (p, a_rows, b_rows) = validate("t", &ok, 128 * 64, 2 * 256 * 64, 128 * 256, e).unwrap();
        assert_eq!((a_rows, b_rows, p.count, p.n, p.k), (128, 512, 2, 256, 64));
        assert_eq!(
            (p.problems[1].a_row, p.problems[1].b_row, p.problems[1].m),
            (100, 256, 28)
        );
        // A past its buffer, B past the stack, C past its buffer, C misaligned, overlapping C, mixed n, odd k
        assert!(validate("t", &[group(129, 256, 64, 0, 0, 0)], 128 * 64, 512 * 64, 1 << 20, e).is_err());
        assert!(validate("t", &[group(1, 256, 64, 0, 2, 0)], 128 * 64, 512 * 64, 1 << 20, e).is_err());
        assert!(validate("t", &[group(100, 256, 64, 0, 0, 0)], 128 * 64, 512 * 64, 99 * 256, e).is_err());
        assert!(validate("t", &[group(1, 256, 64, 0, 0, 3)], 128 * 64, 512 * 64, 1 << 20, e).is_err());
        let overlap = [group(10, 256, 64, 0, 0, 0), group(10, 256, 64, 10, 0, 256)];
        assert!(validate("t", &overlap, 128 * 64, 512 * 64, 1 << 20, e).is_err());
        let mixed = [group(1, 256, 64, 0, 0, 0), group(1, 128, 64, 1, 0, 256)];
        assert!(validate("t", &mixed, 128 * 64, 512 * 64, 1 << 20, e).is_err());
        assert!(supports(&[group(1, 256, 60, 0, 0, 0)], e).is_err());
        assert!(supports(&[group(1, 192, 64, 0, 0, 0)], Epilogue::SwiGlu).is_err());
        assert!(validate("t", &[], 1, 1, 1, e).is_err());
    }

    #[test]
    fn gate_up_interleave_is_a_permutation_in_blocks_of_64() {
        let i = 256;
        let rows: Vec<usize> = (0..2 * i).map(|r| interleave_gate_up(r, i)).collect();
        let mut sorted = rows.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..2 * i).collect::<Vec<_>>());
        assert_eq!(&rows[..3], &[0, 1, 2]); // gate 0.. first
        assert_eq!(rows[64], 128); // gate 64 opens the second block
        assert_eq!(rows[i], 64); // up 0 follows gate 0..63
        assert_eq!(rows[i + 65], 128 + 64 + 1);
    }
}
