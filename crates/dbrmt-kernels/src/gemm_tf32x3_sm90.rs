//! Launchers of `cuda/gemm_tf32x3_sm90.cu`: the ARMT memory's f32 products on the tensor cores ("3×TF32": each
//! f32 operand split into a tf32 high and low part, `lo·hi + hi·lo + hi·hi` accumulated in f32, within 1e-5 of an
//! f32 product) — the read's `φ·A` and the write's `kφ·A` (NN) and `A += kφᵀ·u` (TN), grouped one problem per cell
//! like [`crate::gemm`]'s f32 launchers, which they replace where the shapes allow ([`supports`]).
//!
//! The same [`GemmGroup`]s describe the problems (NN: A `[m, k]`, B `[k, n]`; TN: A stored `[k, m]`, B `[k, n]`;
//! C `[m, n]` row-major). TMA needs: k a multiple of 32 (a k-block never reads another problem's rows), n and every
//! row stride a multiple of 4 (16-byte rows), each group's A and B starting on a row of its buffer, C 16-byte
//! aligned. Tiles are 128 × 128 whatever the launch, there is no split-K: a cell's bits never depend on the other
//! cells of its launch.

use cudarc::driver::sys::CUfunction_attribute;
use cudarc::driver::{CudaSlice, CudaStream, LaunchConfig};

use crate::gemm::{check_disjoint_c, GemmGroup, Layout};
use crate::gemm_sm90::{Sm90Params, Sm90Problem};
use crate::launch::{addr, addr_mut, check_groups, invalid};
use crate::params::MAX_GROUPS;
use crate::tma::{self, F32, SWIZZLE_128B, SWIZZLE_NONE};
use crate::{cubins, Gpu, Kernel, KernelError};

const THREADS: u32 = 384;
/// `tf32x3::smem_bytes()`.
const SMEM: usize = 231496;
/// Tile rows and columns, and the A/B boxes (`tf32x3::A_BOX_*`, `B_BOX_*`).
const TILE: usize = 128;
const A_BOX_COLS: u32 = 32;
const A_BOX_ROWS_NN: u32 = 128;
const A_BOX_ROWS_TN: u32 = 32;
const B_BOX_COLS: u32 = 128;
const B_BOX_ROWS: u32 = 32;

/// Whether the tensor-core kernels run these groups (see the module doc); the reason if not.
pub fn supports(groups: &[GemmGroup], layout: Layout) -> Result<(), String> {
    let Some(g0) = groups.first() else {
        return Err("no groups".into());
    };
    if layout == Layout::Nt {
        return Err("NT is the bf16 GEMM's layout".into());
    }
    let (n, k, lda, ldb) = (g0.n, g0.k, g0.lda, g0.ldb);
    if !k.is_multiple_of(32) || !n.is_multiple_of(4) || !lda.is_multiple_of(4) || !ldb.is_multiple_of(4) {
        return Err(format!(
            "k = {k} must be a multiple of 32, n = {n}, lda = {lda}, ldb = {ldb} of 4"
        ));
    }
    for (i, g) in groups.iter().enumerate() {
        if (g.n, g.k, g.lda, g.ldb) != (n, k, lda, ldb) {
            return Err(format!("group {i}: n, k, lda and ldb differ from group 0's"));
        }
        if !g.a_offset.is_multiple_of(lda) || !g.b_offset.is_multiple_of(ldb) {
            return Err(format!("group {i}: A and B must start on rows of their buffers"));
        }
        if !g.ldc.is_multiple_of(4) || !g.c_offset.is_multiple_of(4) {
            return Err(format!("group {i}: C rows must be 16-byte aligned"));
        }
    }
    Ok(())
}

/// The output tiles of a launch over `groups` (128 × 128 each, `n` of the first group): at most one CTA each.
pub fn tiles(groups: &[GemmGroup]) -> usize {
    let n = groups.first().map_or(0, |g| g.n);
    groups.iter().map(|g| g.m.div_ceil(TILE)).sum::<usize>() * n.div_ceil(TILE)
}

/// The checks on lengths: the kernel's parameters (C offsets in elements) and the A and B map rows.
fn validate(
    entry: &str,
    groups: &[GemmGroup],
    (a_len, b_len, c_len): (usize, usize, usize),
    layout: Layout,
    accumulate: bool,
) -> Result<(Sm90Params, usize, usize), KernelError> {
    if groups.len() > MAX_GROUPS {
        return Err(invalid(entry, format!("{} groups, at most {MAX_GROUPS}", groups.len())));
    }
    check_groups(entry, groups.len())?;
    supports(groups, layout).map_err(|msg| invalid(entry, msg))?;
    let (n, k, lda, ldb) = (groups[0].n, groups[0].k, groups[0].lda, groups[0].ldb);
    let (a_rows, b_rows) = (a_len / lda, b_len / ldb);
    if n > ldb || a_rows > i32::MAX as usize || b_rows > i32::MAX as usize || k > i32::MAX as usize {
        return Err(invalid(
            entry,
            format!("n = {n} > ldb = {ldb}, or sizes beyond 32 bits"),
        ));
    }
    let mut p = Sm90Params {
        problems: [Sm90Problem::default(); MAX_GROUPS],
        count: groups.len() as i32,
        n: n as i32,
        k: k as i32,
        accumulate: i32::from(accumulate),
        mirror_k: 0,
    };
    for (i, g) in groups.iter().enumerate() {
        let (a_row, b_row) = (g.a_offset / lda, g.b_offset / ldb);
        // NN: A is m rows of k columns; TN: k rows of m columns
        let (a_need_rows, a_need_cols) = if layout == Layout::Tn { (k, g.m) } else { (g.m, k) };
        if g.m > 0 && (a_row + a_need_rows > a_rows || a_need_cols > lda) {
            return Err(invalid(entry, format!("group {i}: A past its buffer")));
        }
        if g.m > 0 && b_row + k > b_rows {
            return Err(invalid(
                entry,
                format!("group {i}: B rows {b_row}..{} past {b_rows}", b_row + k),
            ));
        }
        if g.m > 0 && (g.ldc < n || g.c_offset + (g.m - 1) * g.ldc + n > c_len) {
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
    check_disjoint_c(entry, groups)?;
    Ok((p, a_rows, b_rows))
}

/// What a launch's epilogue does besides storing C: it fixes the layout and the entry point, so that an epilogue of
/// the other layout cannot be asked for.
enum Epilogue<'a> {
    /// `C (+)= A·B` (NN) or `Aᵀ·B` (TN).
    Plain(Layout),
    /// The accumulating TN update also writes each state's split form: the stacked states' split buffer and D
    /// ([`gemm_sm90_tn_f32_f32_f32_tf32x3_split`]).
    Split(&'a mut CudaSlice<u32>, usize),
    /// The non-accumulating NN product's epilogue makes the write's prep ([`gemm_sm90_nn_f32_f32_f32_tf32x3_prep`]).
    Prep(PrepInputs<'a>),
}

impl Epilogue<'_> {
    fn layout(&self) -> Layout {
        match self {
            Epilogue::Plain(layout) => *layout,
            Epilogue::Split(..) => Layout::Tn,
            Epilogue::Prep(_) => Layout::Nn,
        }
    }

    fn entry(&self) -> &'static str {
        match self {
            Epilogue::Plain(Layout::Tn) => "gemm_sm90_tn_f32_f32_f32_tf32x3",
            Epilogue::Plain(_) => "gemm_sm90_nn_f32_f32_f32_tf32x3",
            Epilogue::Split(..) => "gemm_sm90_tn_f32_f32_f32_tf32x3_split",
            Epilogue::Prep(_) => "gemm_sm90_nn_f32_f32_f32_tf32x3_prep",
        }
    }
}

/// The inputs of the write's prep made in `kφ·A`'s epilogue ([`gemm_sm90_nn_f32_f32_f32_tf32x3_prep`]).
#[derive(Debug, Clone, Copy)]
pub struct PrepInputs<'a> {
    /// The fused write product, row stride `kvb_ld` (a multiple of 4): V at columns `v_col..v_col + n` (`v_col` a
    /// multiple of 4), row `g` for kφ row `g`.
    pub kvb: &'a CudaSlice<f32>,
    pub kvb_ld: usize,
    pub v_col: usize,
    /// `{δ, β}` per kφ row ([`crate::armt_write::armt_write_features`]).
    pub stats: &'a CudaSlice<f32>,
}

fn launch(
    gpu: &Gpu,
    stream: &CudaStream,
    (a, b): (&CudaSlice<f32>, &CudaSlice<f32>),
    c: &mut CudaSlice<f32>,
    groups: &[GemmGroup],
    accumulate: bool,
    mut epilogue: Epilogue<'_>,
) -> Result<(), KernelError> {
    let (entry, layout) = (epilogue.entry(), epilogue.layout());
    let kernel = Kernel::new(cubins::GEMM_TF32X3_SM90, entry);
    let (mut params, a_rows, b_rows) = validate(entry, groups, (a.len(), b.len(), c.len()), layout, accumulate)?;
    match &epilogue {
        Epilogue::Split(out, d_key) => check_split(entry, groups, out.len(), *d_key, layout, accumulate)?,
        Epilogue::Prep(p) => check_prep(entry, groups, p, layout, accumulate)?,
        Epilogue::Plain(_) => {}
    }
    if groups.iter().all(|g| g.m == 0) {
        return Ok(());
    }
    let (lda, ldb) = (groups[0].lda, groups[0].ldb);
    let a_box = match layout {
        Layout::Tn => [A_BOX_COLS, A_BOX_ROWS_TN],
        _ => [A_BOX_COLS, A_BOX_ROWS_NN],
    };
    let a_map = tma::map(
        entry,
        F32,
        addr(a, stream),
        &[lda as u64, a_rows as u64],
        &[(lda * 4) as u64],
        &a_box,
        SWIZZLE_128B,
    )?;
    let b_map = tma::map(
        entry,
        F32,
        addr(b, stream),
        &[ldb as u64, b_rows as u64],
        &[(ldb * 4) as u64],
        &[B_BOX_COLS, B_BOX_ROWS],
        SWIZZLE_NONE,
    )?;
    let c_base = addr_mut(c, stream);
    for p in &mut params.problems[..groups.len()] {
        p.c = c_base + p.c * 4;
    }
    let f = gpu.function(&kernel)?;
    f.set_attribute(
        CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
        SMEM as i32,
    )?;
    let tiles = tiles(groups);
    let cfg = LaunchConfig {
        grid_dim: (gpu.sm_count().min(tiles).max(1) as u32, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: SMEM as u32,
    };
    let mut builder = crate::launch::Launch::new(stream, &f);
    builder.arg(&a_map).arg(&b_map).arg(&params);
    let split_base = match &mut epilogue {
        Epilogue::Split(out, _) => Some(addr_mut(&mut **out, stream)),
        _ => None,
    };
    if let Some(split_base) = &split_base {
        builder.arg(&c_base).arg(split_base);
    }
    let prep_args = match epilogue {
        Epilogue::Prep(p) => Some((
            addr(p.kvb, stream),
            p.kvb_ld as i32,
            p.v_col as i32,
            addr(p.stats, stream),
        )),
        _ => None,
    };
    if let Some((kvb, kvb_ld, v_col, stats)) = &prep_args {
        builder.arg(kvb).arg(kvb_ld).arg(v_col).arg(stats);
    }
    // SAFETY: the kernel takes (TmaMap a_map, TmaMap b_map, GemmTf32x3Params) by value; GemmTf32x3Params has the
    // layout of GemmSm90Params (gemm_tf32x3_sm90.cu's static_asserts; Sm90Params mirrors it). The maps cover the
    // whole A and B buffers (their lengths in rows of lda and ldb; TMA zero-fills past them); validate() checked
    // every problem's A rows/columns, its k rows of B and its C region against the buffers, the 16-byte alignments
    // and that no two problems write the same element of C; `c` is borrowed mutably, so it aliases neither input.
    // The dynamic shared memory is the kernel's plan, its limit raised on the function. The split entry also takes
    // (c_base, split_base): check_split() made every problem's C one whole state of `c` (m = D, n = ldc = d, offset
    // a multiple of D·d) whose split rows [s·d, (s + 1)·d) × 2D lie inside `split`, borrowed mutably (no alias).
    // The prep entry also takes (kvb, kvb_ld, v_col, stats): check_prep() put every group's kφ rows' V columns
    // (16-byte aligned) inside `kvb` and their {δ, β} inside `stats`; C is not accumulated (not read).
    unsafe { builder.launch(cfg) }?;
    Ok(())
}

/// `C (+)= A·B` for each group on the tensor cores (3×TF32; A `[m, k]`, B `[k, n]`, all f32): the read's `φ·A` and
/// the write's `kφ·A`. See [`supports`] for the shapes it takes.
pub fn gemm_sm90_nn_f32_f32_f32_tf32x3(
    gpu: &Gpu,
    stream: &CudaStream,
    a: &CudaSlice<f32>,
    b: &CudaSlice<f32>,
    c: &mut CudaSlice<f32>,
    groups: &[GemmGroup],
    accumulate: bool,
) -> Result<(), KernelError> {
    launch(gpu, stream, (a, b), c, groups, accumulate, Epilogue::Plain(Layout::Nn))
}

/// The write's `kφ·A_old` whose epilogue stores the write's rows `u = β·(V − ka/δ)` into `u` (C) instead of `ka`: the
/// bits of [`gemm_sm90_nn_f32_f32_f32_tf32x3`] then [`crate::armt_write::armt_write_prep`] for those rows, in one
/// launch (the prep's δ and β from [`crate::armt_write::armt_write_features`]). Not accumulating; `n = d`.
pub fn gemm_sm90_nn_f32_f32_f32_tf32x3_prep(
    gpu: &Gpu,
    stream: &CudaStream,
    (kphi, a): (&CudaSlice<f32>, &CudaSlice<f32>),
    u: &mut CudaSlice<f32>,
    prep: PrepInputs<'_>,
    groups: &[GemmGroup],
) -> Result<(), KernelError> {
    launch(gpu, stream, (kphi, a), u, groups, false, Epilogue::Prep(prep))
}

/// The prep entry's conditions (see [`gemm_sm90_nn_f32_f32_f32_tf32x3_prep`]).
fn check_prep(
    entry: &str,
    groups: &[GemmGroup],
    p: &PrepInputs<'_>,
    layout: Layout,
    accumulate: bool,
) -> Result<(), KernelError> {
    if layout != Layout::Nn || accumulate || !p.kvb_ld.is_multiple_of(4) || !p.v_col.is_multiple_of(4) {
        return Err(invalid(
            entry,
            format!(
                "the prep is the non-accumulating NN product's, kvb_ld = {} and v_col = {} multiples of 4",
                p.kvb_ld, p.v_col
            ),
        ));
    }
    for (i, g) in groups.iter().enumerate().filter(|(_, g)| g.m > 0) {
        let row = g.a_offset / g.lda;
        let (rows_end, cols_end) = (row + g.m, p.v_col + g.n);
        if cols_end > p.kvb_ld || (rows_end - 1) * p.kvb_ld + cols_end > p.kvb.len() || 2 * rows_end > p.stats.len() {
            return Err(invalid(
                entry,
                format!("group {i}: kφ rows {row}..{rows_end}: V or {{δ, β}} past their buffers"),
            ));
        }
    }
    Ok(())
}

/// `C (+)= Aᵀ·B` for each group on the tensor cores (3×TF32; A stored `[k, m]`, B `[k, n]`): the write's
/// `A += kφᵀ·u`.
pub fn gemm_sm90_tn_f32_f32_f32_tf32x3(
    gpu: &Gpu,
    stream: &CudaStream,
    a: &CudaSlice<f32>,
    b: &CudaSlice<f32>,
    c: &mut CudaSlice<f32>,
    groups: &[GemmGroup],
    accumulate: bool,
) -> Result<(), KernelError> {
    launch(gpu, stream, (a, b), c, groups, accumulate, Epilogue::Plain(Layout::Tn))
}

/// The write's update `A += kφᵀ·u` (as [`gemm_sm90_tn_f32_f32_f32_tf32x3`], accumulating) that also writes each
/// updated state's pre-split form into `split` (`[S·d, 2·D]` u32, [`crate::armt_state_split`]'s layout and bits), from
/// the epilogue that stores the new A: one launch and one pass over A fewer than the update then `armt_state_split`.
/// Every group's C must be one whole state of `c` (`m = D = d_key`, a multiple of 32; `n = ldc = d`; the offset a
/// multiple of `D·d`), its split rows inside `split`.
pub fn gemm_sm90_tn_f32_f32_f32_tf32x3_split(
    gpu: &Gpu,
    stream: &CudaStream,
    a: &CudaSlice<f32>,
    b: &CudaSlice<f32>,
    c: &mut CudaSlice<f32>,
    (split, d_key): (&mut CudaSlice<u32>, usize),
    groups: &[GemmGroup],
) -> Result<(), KernelError> {
    launch(gpu, stream, (a, b), c, groups, true, Epilogue::Split(split, d_key))
}

/// The split entry's conditions (see [`gemm_sm90_tn_f32_f32_f32_tf32x3_split`]).
fn check_split(
    entry: &str,
    groups: &[GemmGroup],
    split_len: usize,
    d_key: usize,
    layout: Layout,
    accumulate: bool,
) -> Result<(), KernelError> {
    if layout != Layout::Tn || !accumulate || d_key == 0 || !d_key.is_multiple_of(32) {
        return Err(invalid(
            entry,
            format!("the split output is the accumulating TN update's, D = {d_key} a positive multiple of 32"),
        ));
    }
    for (i, g) in groups.iter().enumerate().filter(|(_, g)| g.m > 0) {
        let state_elems = d_key * g.n;
        if g.m != d_key || g.ldc != g.n || !g.c_offset.is_multiple_of(state_elems) {
            return Err(invalid(
                entry,
                format!("group {i}: C must be one whole state (m = D = {d_key}, ldc = n, offset a multiple of D·n)"),
            ));
        }
        let state = g.c_offset / state_elems;
        if (state + 1) * g.n * 2 * d_key > split_len {
            return Err(invalid(
                entry,
                format!("group {i}: state {state}'s split rows past the {split_len} of the split buffer"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nn(m: usize, n: usize, k: usize, row: usize, state: usize) -> GemmGroup {
        GemmGroup {
            a_offset: row * k,
            b_offset: state * k * n,
            c_offset: row * n,
            m,
            n,
            k,
            lda: k,
            ldb: n,
            ldc: n,
        }
    }

    #[test]
    fn validates_the_read_and_refuses_what_tma_cannot_take() {
        // 1B read: φ [2·1152, 384] × A [2·384, 2048]
        let g = [nn(1152, 2048, 384, 0, 0), nn(1152, 2048, 384, 1152, 1)];
        let lens = (2304 * 384, 2 * 384 * 2048, 2304 * 2048);
        let (p, a_rows, b_rows) = validate("t", &g, lens, Layout::Nn, false).unwrap();
        assert_eq!((a_rows, b_rows, p.count, p.k), (2304, 768, 2, 384));
        assert_eq!((p.problems[1].a_row, p.problems[1].b_row), (1152, 384));
        assert!(validate("t", &[nn(1, 2048, 96 + 8, 0, 0)], lens, Layout::Nn, false).is_err()); // k % 32
        assert!(validate("t", &[nn(1, 2046, 384, 0, 0)], lens, Layout::Nn, false).is_err()); // n % 4
        assert!(validate("t", &[nn(1200, 2048, 384, 1152, 0)], lens, Layout::Nn, false).is_err()); // A past
        assert!(validate("t", &[nn(10, 2048, 384, 0, 2)], lens, Layout::Nn, false).is_err()); // B past
        assert!(supports(&g, Layout::Nt).is_err());
    }

    #[test]
    fn validates_the_update() {
        // A[state] += kφᵀ·u: kφ stored [M = 128, D = 384] per cell, u [128, 2048]
        let g = GemmGroup {
            a_offset: 128 * 384,
            b_offset: 128 * 2048,
            c_offset: 384 * 2048,
            m: 384,
            n: 2048,
            k: 128,
            lda: 384,
            ldb: 2048,
            ldc: 2048,
        };
        let lens = (2 * 128 * 384, 2 * 128 * 2048, 2 * 384 * 2048);
        let (p, _, _) = validate("t", &[g], lens, Layout::Tn, true).unwrap();
        assert_eq!((p.problems[0].a_row, p.problems[0].b_row, p.accumulate), (128, 128, 1));
        assert_eq!(tiles(&[g, g]), 2 * 3 * 16); // two states of 384 × 2048: the 1B update's 48 tiles each
        assert!(validate("t", &[GemmGroup { m: 400, ..g }], lens, Layout::Tn, true).is_err());
        // m > lda
    }

    /// The split entry takes whole states only (its kernel finds the state from C's address): m = D, ldc = n, the
    /// offset a multiple of D·n, the state's split rows inside the buffer; the accumulating TN product only.
    #[test]
    fn the_split_output_takes_whole_states() {
        let (dk, d) = (384, 2048);
        let g = GemmGroup {
            a_offset: 0,
            b_offset: 0,
            c_offset: 2 * dk * d, // state 2
            m: dk,
            n: d,
            k: 128,
            lda: dk,
            ldb: d,
            ldc: d,
        };
        let split_len = 3 * d * 2 * dk; // three states
        assert!(check_split("t", &[g], split_len, dk, Layout::Tn, true).is_ok());
        let refused = |g: GemmGroup, len: usize, dk: usize, layout: Layout, acc: bool| {
            check_split("t", &[g], len, dk, layout, acc).is_err()
        };
        assert!(
            refused(g, split_len - 1, dk, Layout::Tn, true),
            "state 2's rows past the buffer"
        );
        assert!(
            refused(GemmGroup { m: 128, ..g }, split_len, dk, Layout::Tn, true),
            "part of a state"
        );
        assert!(
            refused(
                GemmGroup {
                    c_offset: dk * d + 4,
                    ..g
                },
                split_len,
                dk,
                Layout::Tn,
                true
            ),
            "offset"
        );
        assert!(
            refused(GemmGroup { ldc: d + 4, ..g }, split_len, dk, Layout::Tn, true),
            "strided C"
        );
        assert!(refused(g, split_len, dk, Layout::Nn, true), "NN");
        assert!(refused(g, split_len, dk, Layout::Tn, false), "not accumulating");
        assert!(
            refused(GemmGroup { m: 0, ..g }, split_len, 48, Layout::Tn, true),
            "D not a multiple of 32"
        );
        // a group without rows is never checked against the state rule
        assert!(check_split(
            "t",
            &[GemmGroup { m: 0, c_offset: 7, ..g }],
            split_len,
            dk,
            Layout::Tn,
            true
        )
        .is_ok());
    }
}
