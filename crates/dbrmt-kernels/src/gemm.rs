//! Launchers of `cuda/gemm_bf16.cu` and `cuda/gemm_f32.cu`: grouped matrix products, one problem per cell of a
//! diagonal step.
//!
//! Each launch runs up to [`MAX_GROUPS`] independent problems `C (+)= op(A) · op(B)`, each with its own operands
//! (given as element offsets into three shared buffers), shape and row strides: a cell multiplies its own rows by its
//! own layer's weights (weights stacked `[L, out, in]`, so a group only picks its offset), and row counts differ
//! where the last segment is short. A problem's result never depends on the other problems of the launch (no
//! split-K, no atomics), so diagonal and sequential execution give the same bits.
//!
//! The launchers are safe: every problem is checked against its buffers' lengths ([`KernelError::InvalidArgument`]
//! otherwise) before any device address is formed, and the output regions of different problems must not overlap.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg};
use half::bf16;

use crate::launch::{addr, addr_mut, check_groups, check_rows, invalid};
use crate::params::{GemmProblem, GroupedGemm, MAX_GROUPS};
use crate::{cubins, Gpu, Kernel, KernelError};

/// One problem of a grouped product, in elements of the three buffers.
///
/// `a_offset`, `b_offset`, `c_offset` are where the operands start in their buffers; `lda`, `ldb`, `ldc` are row
/// strides in elements (at least the stored row width, which depends on the layout: see each launcher).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GemmGroup {
    /// First element of this group's A in the A buffer.
    pub a_offset: usize,
    /// First element of this group's B (e.g. `layer · out · in` in a stacked weight).
    pub b_offset: usize,
    /// First element of this group's C.
    pub c_offset: usize,
    /// Rows of C.
    pub m: usize,
    /// Columns of C.
    pub n: usize,
    /// The summed dimension.
    pub k: usize,
    /// Row stride of A as stored, in elements.
    pub lda: usize,
    /// Row stride of B as stored, in elements.
    pub ldb: usize,
    /// Row stride of C, in elements.
    pub ldc: usize,
}

const GEMM_BF16_NT_BF16: Kernel = Kernel {
    file: "gemm_bf16",
    cubin: cubins::GEMM_BF16,
    entry: "gemm_bf16_nt_bf16",
};
const GEMM_BF16_NT_F32: Kernel = Kernel {
    file: "gemm_bf16",
    cubin: cubins::GEMM_BF16,
    entry: "gemm_bf16_nt_f32",
};
const GEMM_BF16_NT_F32_AF32: Kernel = Kernel {
    file: "gemm_bf16",
    cubin: cubins::GEMM_BF16,
    entry: "gemm_bf16_nt_f32_af32",
};
const GEMM_F32_NN: Kernel = Kernel {
    file: "gemm_f32",
    cubin: cubins::GEMM_F32,
    entry: "gemm_f32_nn",
};
const GEMM_F32_TN: Kernel = Kernel {
    file: "gemm_f32",
    cubin: cubins::GEMM_F32,
    entry: "gemm_f32_tn",
};

/// Output tile of every kernel of both files (rows × columns of C per block); blockIdx.x walks a problem's tiles.
const TILE_M: usize = 64;
const TILE_N: usize = 64;
/// Threads per block: `gemm_bf16.cu` (4 warps) and `gemm_f32.cu` (16 × 16).
const THREADS_BF16: u32 = 128;
const THREADS_F32: u32 = 256;
/// Largest m, n or k accepted: far above any model dimension, and low enough that the kernels' `int` tile loops
/// (`k0 += 32`, `m0 + 64`) cannot overflow.
const MAX_DIM: usize = 1 << 30;

/// How the kernel reads A and B (C is always row-major `[m, n]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// A `[m, k]`, B `[n, k]` (an `nn.Linear` weight): `C = A·Bᵀ`.
    Nt,
    /// A `[m, k]`, B `[k, n]`: `C = A·B`.
    Nn,
    /// A stored `[k, m]`, B `[k, n]`: `C = Aᵀ·B`.
    Tn,
}

impl Layout {
    /// (rows, row width) of A as stored.
    fn a_extent(self, g: &GemmGroup) -> (usize, usize) {
        match self {
            Layout::Nt | Layout::Nn => (g.m, g.k),
            Layout::Tn => (g.k, g.m),
        }
    }

    /// (rows, row width) of B as stored.
    fn b_extent(self, g: &GemmGroup) -> (usize, usize) {
        match self {
            Layout::Nt => (g.n, g.k),
            Layout::Nn | Layout::Tn => (g.k, g.n),
        }
    }
}

/// Checks every group against the lengths of its buffers and returns the problems with **element offsets** in
/// `a`, `b`, `c` (the launcher turns them into device addresses).
///
/// Fails unless: `1 ≤ groups ≤ MAX_GROUPS`; each operand, as `rows × width` with its row stride starting at its
/// offset, lies inside its buffer (an operand with no elements only needs its offset inside the buffer); every
/// dimension and stride fits the kernels' `int`s; the output regions of different groups do not overlap.
pub(crate) fn validate(
    kernel: &str,
    groups: &[GemmGroup],
    a_len: usize,
    b_len: usize,
    c_len: usize,
    layout: Layout,
) -> Result<Vec<GemmProblem>, KernelError> {
    if groups.len() > MAX_GROUPS {
        return Err(invalid(
            kernel,
            format!(
                "{} groups, but one launch takes at most {MAX_GROUPS}: split the step into several launches \
                 (its groups are independent)",
                groups.len()
            ),
        ));
    }
    check_groups(kernel, groups.len())?;
    let mut problems = Vec::with_capacity(groups.len());
    for (i, g) in groups.iter().enumerate() {
        if g.m > MAX_DIM || g.n > MAX_DIM || g.k > MAX_DIM {
            return Err(invalid(
                kernel,
                format!("group {i}: m={} n={} k={} exceed {MAX_DIM}", g.m, g.n, g.k),
            ));
        }
        let (a_rows, a_width) = layout.a_extent(g);
        let (b_rows, b_width) = layout.b_extent(g);
        check_operand(kernel, i, "A", a_len, g.a_offset, a_rows, a_width, g.lda)?;
        check_operand(kernel, i, "B", b_len, g.b_offset, b_rows, b_width, g.ldb)?;
        check_operand(kernel, i, "C", c_len, g.c_offset, g.m, g.n, g.ldc)?;
        if tiles(g) > i32::MAX as usize {
            return Err(invalid(
                kernel,
                format!("group {i}: {} output tiles exceed the grid", tiles(g)),
            ));
        }
        problems.push(GemmProblem {
            a: g.a_offset as u64,
            b: g.b_offset as u64,
            c: g.c_offset as u64,
            m: g.m as i32,
            n: g.n as i32,
            k: g.k as i32,
            lda: g.lda as i32,
            ldb: g.ldb as i32,
            ldc: g.ldc as i32,
        });
    }
    check_disjoint_c(kernel, groups)?;
    Ok(problems)
}

/// One operand of group `i`: `rows × width` elements with row stride `ld`, from element `offset` of a buffer of
/// `len` elements.
#[allow(clippy::too_many_arguments)]
fn check_operand(
    kernel: &str,
    i: usize,
    what: &str,
    len: usize,
    offset: usize,
    rows: usize,
    width: usize,
    ld: usize,
) -> Result<(), KernelError> {
    if offset > len {
        return Err(invalid(
            kernel,
            format!("group {i}: {what} starts at {offset}, past its {len} elements"),
        ));
    }
    if ld > i32::MAX as usize {
        return Err(invalid(
            kernel,
            format!("group {i}: {what}: row stride {ld} beyond 32 bits"),
        ));
    }
    if rows == 0 || width == 0 {
        // Never read or written: only its address is formed.
        return Ok(());
    }
    check_rows(
        kernel,
        &format!("group {i}: {what}"),
        len - offset,
        0,
        rows,
        ld,
        0,
        width,
    )
}

/// Output tiles of a group (the blocks its problem needs).
fn tiles(g: &GemmGroup) -> usize {
    g.m.div_ceil(TILE_M) * g.n.div_ceil(TILE_N)
}

/// Fails if two groups write a common element of C.
///
/// Two regions with the same row stride that do not wrap around it are rectangles of the same grid, so they are
/// compared exactly (groups may own different column blocks of the same rows); otherwise their element ranges
/// `[first, last]` must not overlap (conservative: interleaved regions with different strides are refused).
fn check_disjoint_c(kernel: &str, groups: &[GemmGroup]) -> Result<(), KernelError> {
    let nonempty: Vec<(usize, &GemmGroup)> = groups.iter().enumerate().filter(|(_, g)| g.m > 0 && g.n > 0).collect();
    for (x, &(i, gi)) in nonempty.iter().enumerate() {
        for &(j, gj) in &nonempty[x + 1..] {
            if c_regions_overlap(gi, gj) {
                return Err(invalid(
                    kernel,
                    format!("groups {i} and {j} write overlapping parts of C"),
                ));
            }
        }
    }
    Ok(())
}

/// Whether the C regions of two non-empty groups (already checked to lie in C, so `n ≤ ldc`) share an element.
fn c_regions_overlap(a: &GemmGroup, b: &GemmGroup) -> bool {
    let rect = |g: &GemmGroup| {
        let (row, col) = (g.c_offset / g.ldc, g.c_offset % g.ldc);
        (col + g.n <= g.ldc).then_some((row, row + g.m, col, col + g.n))
    };
    if a.ldc == b.ldc {
        if let (Some((ar0, ar1, ac0, ac1)), Some((br0, br1, bc0, bc1))) = (rect(a), rect(b)) {
            return ar0 < br1 && br0 < ar1 && ac0 < bc1 && bc0 < ac1;
        }
    }
    let span = |g: &GemmGroup| (g.c_offset, g.c_offset + (g.m - 1) * g.ldc + g.n);
    let ((a0, a1), (b0, b1)) = (span(a), span(b));
    a0 < b1 && b0 < a1
}

/// FLOPs of a grouped product, `Σ 2·m·n·k` (for FLOP/s figures).
pub fn gemm_flops(groups: &[GemmGroup]) -> f64 {
    groups.iter().map(|g| 2.0 * g.m as f64 * g.n as f64 * g.k as f64).sum()
}

/// Validates, turns offsets into device addresses and launches one grouped kernel.
#[allow(clippy::too_many_arguments)]
fn launch<TA: DeviceRepr, TB: DeviceRepr, TC: DeviceRepr>(
    gpu: &Gpu,
    stream: &Arc<CudaStream>,
    kernel: &Kernel,
    threads: u32,
    layout: Layout,
    a: &CudaSlice<TA>,
    b: &CudaSlice<TB>,
    c: &mut CudaSlice<TC>,
    groups: &[GemmGroup],
    accumulate: bool,
) -> Result<(), KernelError> {
    let mut problems = validate(kernel.entry, groups, a.len(), b.len(), c.len(), layout)?;
    let f = gpu.function(kernel)?;
    let max_tiles = groups.iter().map(tiles).max().unwrap_or(0);
    if max_tiles == 0 {
        // Every problem has m = 0 or n = 0: nothing to write.
        return Ok(());
    }
    let (a_base, b_base, c_base) = (addr(a, stream), addr(b, stream), addr_mut(c, stream));
    for p in &mut problems {
        p.a = a_base + p.a * size_of::<TA>() as u64;
        p.b = b_base + p.b * size_of::<TB>() as u64;
        p.c = c_base + p.c * size_of::<TC>() as u64;
    }
    let params = GroupedGemm::pack(&problems, accumulate);
    let cfg = LaunchConfig {
        // validate() bounds each problem's tiles by i32::MAX; at most MAX_GROUPS (64) problems in y.
        grid_dim: (max_tiles as u32, problems.len() as u32, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut builder = stream.launch_builder(&f);
    builder.arg(&params);
    // SAFETY: the kernel takes one `GroupedGemm` by value, and `params` is its #[repr(C)] mirror, whose addresses
    // were formed above with the element sizes of TA, TB, TC. validate() checked that every element each problem
    // reads (A, B) or writes (C) lies inside `a`, `b`, `c`, whose element types are the kernel's (bf16 or f32, per
    // `kernel`: each public launcher below pairs its entry point with the buffer types it reads and writes, e.g.
    // gemm_bf16_nt_f32_af32 with an f32 A, bf16 B, f32 C), that no two problems write the same element of C, and that
    // the dimensions fit the kernel's ints; `c` is borrowed mutably, so it aliases neither input. Blocks past a
    // problem's tiles (or past `count`) exit without touching memory.
    unsafe { builder.launch(cfg) }?;
    Ok(())
}

/// `C = A·Bᵀ` (or `C += A·Bᵀ` with `accumulate`) for each group, bf16 in and out, f32 accumulation.
///
/// Per group: A `[m, k]` (row stride `lda ≥ k`) from `a_offset` in `a`, B `[n, k]` (an `nn.Linear` weight, row
/// stride `ldb ≥ k`) from `b_offset` in `b`, C `[m, n]` (`ldc ≥ n`) from `c_offset` in `c`. The product is rounded
/// to bf16 once; accumulating, `C = bf16(f32(C) + A·Bᵀ)` (the residual add of the o and down projections).
pub fn gemm_bf16_nt(
    gpu: &Gpu,
    stream: &Arc<CudaStream>,
    a: &CudaSlice<bf16>,
    b: &CudaSlice<bf16>,
    c: &mut CudaSlice<bf16>,
    groups: &[GemmGroup],
    accumulate: bool,
) -> Result<(), KernelError> {
    launch(
        gpu,
        stream,
        &GEMM_BF16_NT_BF16,
        THREADS_BF16,
        Layout::Nt,
        a,
        b,
        c,
        groups,
        accumulate,
    )
}

/// As [`gemm_bf16_nt`], with an f32 C (accumulating adds in f32): the ARMT projections, the LM head logits, and,
/// accumulating, the residual adds of the o and down projections into f32 hidden rows.
pub fn gemm_bf16_nt_f32(
    gpu: &Gpu,
    stream: &Arc<CudaStream>,
    a: &CudaSlice<bf16>,
    b: &CudaSlice<bf16>,
    c: &mut CudaSlice<f32>,
    groups: &[GemmGroup],
    accumulate: bool,
) -> Result<(), KernelError> {
    launch(
        gpu,
        stream,
        &GEMM_BF16_NT_F32,
        THREADS_BF16,
        Layout::Nt,
        a,
        b,
        c,
        groups,
        accumulate,
    )
}

/// As [`gemm_bf16_nt_f32`], with an f32 A (the f32 hidden rows): `C (+)= bf16(A)·Bᵀ`, each element of A rounded to
/// bf16 (to nearest, ties to even) as the kernel stages it, B bf16, C f32 (accumulating adds in f32). A problem's
/// result is bit for bit that of [`gemm_bf16_nt_f32`] on A rounded to bf16 beforehand (the same tiles, the same
/// loop). Per group: A `[m, k]` (`lda ≥ k`), B `[n, k]` (`ldb ≥ k`), C `[m, n]` (`ldc ≥ n`).
pub fn gemm_bf16_nt_f32_af32(
    gpu: &Gpu,
    stream: &Arc<CudaStream>,
    a: &CudaSlice<f32>,
    b: &CudaSlice<bf16>,
    c: &mut CudaSlice<f32>,
    groups: &[GemmGroup],
    accumulate: bool,
) -> Result<(), KernelError> {
    launch(
        gpu,
        stream,
        &GEMM_BF16_NT_F32_AF32,
        THREADS_BF16,
        Layout::Nt,
        a,
        b,
        c,
        groups,
        accumulate,
    )
}

/// `C (+)= A·B` for each group, all f32: A `[m, k]` (`lda ≥ k`), B `[k, n]` (`ldb ≥ n`), C `[m, n]` (`ldc ≥ n`).
/// The memory reads φ(q)·A_state and φ(k)·A_state.
pub fn gemm_f32_nn(
    gpu: &Gpu,
    stream: &Arc<CudaStream>,
    a: &CudaSlice<f32>,
    b: &CudaSlice<f32>,
    c: &mut CudaSlice<f32>,
    groups: &[GemmGroup],
    accumulate: bool,
) -> Result<(), KernelError> {
    launch(
        gpu,
        stream,
        &GEMM_F32_NN,
        THREADS_F32,
        Layout::Nn,
        a,
        b,
        c,
        groups,
        accumulate,
    )
}

/// `C (+)= Aᵀ·B` for each group, all f32: A stored `[k, m]` (`lda ≥ m`), B `[k, n]` (`ldb ≥ n`), C `[m, n]`
/// (`ldc ≥ n`). The memory update A_state `[D, d]` += Kᵀ `[M, D]`ᵀ · U `[M, d]` (with `accumulate`).
pub fn gemm_f32_tn(
    gpu: &Gpu,
    stream: &Arc<CudaStream>,
    a: &CudaSlice<f32>,
    b: &CudaSlice<f32>,
    c: &mut CudaSlice<f32>,
    groups: &[GemmGroup],
    accumulate: bool,
) -> Result<(), KernelError> {
    launch(
        gpu,
        stream,
        &GEMM_F32_TN,
        THREADS_F32,
        Layout::Tn,
        a,
        b,
        c,
        groups,
        accumulate,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nt(m: usize, n: usize, k: usize) -> GemmGroup {
        GemmGroup {
            m,
            n,
            k,
            lda: k,
            ldb: k,
            ldc: n,
            ..Default::default()
        }
    }

    fn is_invalid(r: Result<Vec<GemmProblem>, KernelError>) -> bool {
        matches!(r, Err(KernelError::InvalidArgument { .. }))
    }

    #[test]
    fn exact_fit_passes_and_keeps_offsets() {
        // Three cells stacked: rows 0..1, 1..38, 38..168 of A and C; layer g of a stacked [3, 70, 96] weight.
        let ms = [1, 37, 130];
        let (n, k) = (70, 96);
        let mut groups = Vec::new();
        let mut row = 0;
        for (g, &m) in ms.iter().enumerate() {
            groups.push(GemmGroup {
                a_offset: row * k,
                b_offset: g * n * k,
                c_offset: row * n,
                ..nt(m, n, k)
            });
            row += m;
        }
        let p = validate("t", &groups, row * k, 3 * n * k, row * n, Layout::Nt).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(
            (p[2].a, p[2].b, p[2].c),
            ((38 * k) as u64, (2 * n * k) as u64, (38 * n) as u64)
        );
        assert_eq!(
            (p[1].m, p[1].n, p[1].k, p[1].lda, p[1].ldb, p[1].ldc),
            (37, 70, 96, 96, 96, 70)
        );
        // One element short in each buffer in turn.
        assert!(is_invalid(validate(
            "t",
            &groups,
            row * k - 1,
            3 * n * k,
            row * n,
            Layout::Nt
        )));
        assert!(is_invalid(validate(
            "t",
            &groups,
            row * k,
            3 * n * k - 1,
            row * n,
            Layout::Nt
        )));
        assert!(is_invalid(validate(
            "t",
            &groups,
            row * k,
            3 * n * k,
            row * n - 1,
            Layout::Nt
        )));
    }

    #[test]
    fn group_counts_are_bounded() {
        assert!(is_invalid(validate("t", &[], 10, 10, 10, Layout::Nt)));
        let many = vec![nt(0, 1, 1); MAX_GROUPS + 1];
        match validate("t", &many, 10, 10, 10, Layout::Nt) {
            Err(KernelError::InvalidArgument { msg, .. }) => {
                assert!(msg.contains("split"), "{msg}")
            }
            other => panic!("{other:?}"),
        }
        let most = vec![nt(0, 1, 1); MAX_GROUPS];
        assert!(validate("t", &most, 10, 10, 10, Layout::Nt).is_ok());
    }

    #[test]
    fn strides_must_cover_the_row_width() {
        let g = GemmGroup {
            lda: 95,
            ..nt(4, 8, 96)
        };
        assert!(is_invalid(validate("t", &[g], 1000, 1000, 1000, Layout::Nt)));
        let g = GemmGroup { ldc: 7, ..nt(4, 8, 96) };
        assert!(is_invalid(validate("t", &[g], 1000, 1000, 1000, Layout::Nt)));
        // Nn: B is [k, n], so ldb must cover n (not k).
        let g = GemmGroup {
            lda: 16,
            ldb: 8,
            ldc: 8,
            ..nt(4, 8, 16)
        };
        assert!(validate("t", &[g], 64, 128, 32, Layout::Nn).is_ok());
        assert!(is_invalid(validate(
            "t",
            &[GemmGroup { ldb: 7, ..g }],
            64,
            128,
            32,
            Layout::Nn
        )));
        // Tn: A is stored [k, m], so lda must cover m and A spans k rows.
        let g = GemmGroup {
            lda: 4,
            ldb: 8,
            ldc: 8,
            ..nt(4, 8, 16)
        };
        assert!(validate("t", &[g], 64, 128, 32, Layout::Tn).is_ok());
        assert!(is_invalid(validate("t", &[g], 63, 128, 32, Layout::Tn)));
        assert!(is_invalid(validate(
            "t",
            &[GemmGroup { lda: 3, ..g }],
            64,
            128,
            32,
            Layout::Tn
        )));
    }

    #[test]
    fn padded_strides_need_only_reach_the_last_row_width() {
        // A [3, 5] with stride 8: the last row ends at 2·8 + 5 = 21.
        let g = GemmGroup { lda: 8, ..nt(3, 2, 5) };
        assert!(validate("t", &[g], 21, 10, 6, Layout::Nt).is_ok());
        assert!(is_invalid(validate("t", &[g], 20, 10, 6, Layout::Nt)));
        let g = GemmGroup { a_offset: 1, ..g };
        assert!(is_invalid(validate("t", &[g], 21, 10, 6, Layout::Nt)));
    }

    #[test]
    fn empty_problems_only_need_their_offsets_inside() {
        let g = GemmGroup {
            a_offset: 10,
            c_offset: 4,
            ..nt(0, 4, 8)
        };
        assert!(validate("t", &[g], 10, 32, 4, Layout::Nt).is_ok());
        assert!(is_invalid(validate("t", &[g], 9, 32, 4, Layout::Nt)));
        // k = 0: A and B have no elements; C is still written (zeros), so it must fit.
        let g = GemmGroup {
            lda: 0,
            ldb: 0,
            ..nt(2, 3, 0)
        };
        assert!(validate("t", &[g], 0, 0, 6, Layout::Nt).is_ok());
        assert!(is_invalid(validate("t", &[g], 0, 0, 5, Layout::Nt)));
    }

    #[test]
    fn overlapping_outputs_are_refused() {
        let (n, k) = (8, 4);
        let g0 = GemmGroup {
            c_offset: 0,
            ..nt(3, n, k)
        };
        let g1 = GemmGroup {
            c_offset: 2 * n,
            ..nt(3, n, k)
        };
        assert!(is_invalid(validate("t", &[g0, g1], 100, 100, 100, Layout::Nt)));
        let g1 = GemmGroup { c_offset: 3 * n, ..g1 };
        assert!(validate("t", &[g0, g1], 100, 100, 100, Layout::Nt).is_ok());
        // Side by side: columns 0..4 and 4..8 of the same rows, stride 8.
        let left = GemmGroup { ldc: 8, ..nt(3, 4, k) };
        let right = GemmGroup { c_offset: 4, ..left };
        assert!(validate("t", &[left, right], 100, 100, 100, Layout::Nt).is_ok());
        let right = GemmGroup { c_offset: 3, ..left };
        assert!(is_invalid(validate("t", &[left, right], 100, 100, 100, Layout::Nt)));
        // Different strides: compared as element ranges.
        // `left` spans elements 0..20 (last row 16..20); `other` 19..28, then 20..29.
        let other = GemmGroup {
            c_offset: 19,
            ldc: 5,
            ..nt(2, 4, k)
        };
        assert!(is_invalid(validate("t", &[left, other], 100, 100, 100, Layout::Nt)));
        let other = GemmGroup { c_offset: 20, ..other };
        assert!(validate("t", &[left, other], 100, 100, 100, Layout::Nt).is_ok());
        // An empty group overlaps nothing.
        let empty = GemmGroup {
            c_offset: 0,
            ..nt(0, n, k)
        };
        assert!(validate("t", &[g0, empty], 100, 100, 100, Layout::Nt).is_ok());
    }

    #[test]
    fn huge_dimensions_are_refused() {
        let g = GemmGroup {
            lda: usize::MAX,
            ..nt(1, 1, 1)
        };
        assert!(is_invalid(validate("t", &[g], usize::MAX, 10, 10, Layout::Nt)));
        let g = nt(1, 1, MAX_DIM + 1);
        assert!(is_invalid(validate("t", &[g], usize::MAX, usize::MAX, 10, Layout::Nt)));
    }

    #[test]
    fn entries_exist_in_their_files() {
        let bf16_cu = include_str!("../../../cuda/gemm_bf16.cu");
        let f32_cu = include_str!("../../../cuda/gemm_f32.cu");
        for k in [GEMM_BF16_NT_BF16, GEMM_BF16_NT_F32, GEMM_BF16_NT_F32_AF32] {
            assert!(bf16_cu.contains(&format!(" {}(", k.entry)), "{}", k.entry);
            assert_eq!(k.file, "gemm_bf16");
        }
        for k in [GEMM_F32_NN, GEMM_F32_TN] {
            assert!(f32_cu.contains(&format!(" {}(", k.entry)), "{}", k.entry);
            assert_eq!(k.file, "gemm_f32");
        }
    }

    #[test]
    fn flops_sum_over_groups() {
        assert_eq!(gemm_flops(&[nt(2, 3, 4), nt(1, 1, 5)]), 2.0 * 24.0 + 10.0);
    }
}
