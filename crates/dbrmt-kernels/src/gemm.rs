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

use cudarc::driver::{CudaSlice, CudaStream, DeviceRepr, LaunchConfig};
use half::bf16;

use crate::launch::{addr, addr_mut, check_groups, check_rows, invalid, Rows};
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

/// The element type of a GEMM operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    Bf16,
    F32,
}

impl Dtype {
    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            Dtype::Bf16 => 2,
            Dtype::F32 => 4,
        }
    }
}

/// Every grouped GEMM kernel, the one registry of them (launchers, checks and tests use it). Entry points are named
/// `gemm_<layout>_<A>_<B>_<C>` after how A and B are read ([`Layout`]) and the three element types, and each has a
/// launcher of the same name; bf16 B (the weights) in `cuda/gemm_bf16.cu`, f32 in `cuda/gemm_f32.cu`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GemmKernel {
    /// `gemm_nt_bf16_bf16_bf16`: C bf16 (+)= A·Bᵀ, A and B bf16.
    NtBf16Bf16Bf16,
    /// `gemm_nt_bf16_bf16_f32`: C f32 (+)= A·Bᵀ, A and B bf16.
    NtBf16Bf16F32,
    /// `gemm_nt_f32_bf16_f32`: C f32 (+)= bf16(A)·Bᵀ, A f32 (rounded to bf16 by the kernel), B bf16.
    NtF32Bf16F32,
    /// `gemm_nn_f32_f32_f32`: C (+)= A·B, all f32.
    NnF32F32F32,
    /// `gemm_tn_f32_f32_f32`: C (+)= Aᵀ·B, all f32.
    TnF32F32F32,
}

impl GemmKernel {
    /// All five.
    pub const ALL: [GemmKernel; 5] = [
        GemmKernel::NtBf16Bf16Bf16,
        GemmKernel::NtBf16Bf16F32,
        GemmKernel::NtF32Bf16F32,
        GemmKernel::NnF32F32F32,
        GemmKernel::TnF32F32F32,
    ];

    /// The entry point and its cubin.
    pub const fn kernel(self) -> Kernel {
        match self {
            GemmKernel::NtBf16Bf16Bf16 => Kernel::new(cubins::GEMM_BF16, "gemm_nt_bf16_bf16_bf16"),
            GemmKernel::NtBf16Bf16F32 => Kernel::new(cubins::GEMM_BF16, "gemm_nt_bf16_bf16_f32"),
            GemmKernel::NtF32Bf16F32 => Kernel::new(cubins::GEMM_BF16, "gemm_nt_f32_bf16_f32"),
            GemmKernel::NnF32F32F32 => Kernel::new(cubins::GEMM_F32, "gemm_nn_f32_f32_f32"),
            GemmKernel::TnF32F32F32 => Kernel::new(cubins::GEMM_F32, "gemm_tn_f32_f32_f32"),
        }
    }

    /// The entry point's name (and its launcher's).
    pub const fn entry(self) -> &'static str {
        self.kernel().entry
    }

    /// How it reads A and B.
    pub const fn layout(self) -> Layout {
        match self {
            GemmKernel::NtBf16Bf16Bf16 | GemmKernel::NtBf16Bf16F32 | GemmKernel::NtF32Bf16F32 => Layout::Nt,
            GemmKernel::NnF32F32F32 => Layout::Nn,
            GemmKernel::TnF32F32F32 => Layout::Tn,
        }
    }

    /// The element types of A, B and C.
    pub const fn dtypes(self) -> [Dtype; 3] {
        use Dtype::{Bf16, F32};
        match self {
            GemmKernel::NtBf16Bf16Bf16 => [Bf16, Bf16, Bf16],
            GemmKernel::NtBf16Bf16F32 => [Bf16, Bf16, F32],
            GemmKernel::NtF32Bf16F32 => [F32, Bf16, F32],
            GemmKernel::NnF32F32F32 | GemmKernel::TnF32F32F32 => [F32, F32, F32],
        }
    }

    /// Threads per block: `gemm_bf16.cu` (4 warps) or `gemm_f32.cu` (16 × 16).
    const fn threads(self) -> u32 {
        match self.dtypes()[1] {
            Dtype::Bf16 => THREADS_BF16,
            Dtype::F32 => THREADS_F32,
        }
    }
}

/// Output tile of every kernel of both files (rows × columns of C per block); blockIdx.x walks a problem's tiles.
pub const TILE_M: usize = 64;
const TILE_N: usize = 64;
/// Threads per block: `gemm_bf16.cu` (4 warps) and `gemm_f32.cu` (16 × 16).
const THREADS_BF16: u32 = 128;
const THREADS_F32: u32 = 256;
/// Largest m, n or k accepted: far above any model dimension, and low enough that the kernels' `int` tile loops
/// (`k0 += 32`, `m0 + 64`) cannot overflow.
const MAX_DIM: usize = 1 << 30;

/// How the kernel reads A and B (C is always row-major `[m, n]`): the `<layout>` of its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
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
        Rows { len: len - offset, ld },
        0,
        rows,
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
pub(crate) fn check_disjoint_c(kernel: &str, groups: &[GemmGroup]) -> Result<(), KernelError> {
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

/// Validates, turns offsets into device addresses and launches one grouped kernel, whose A, B and C element types
/// are `TA`, `TB`, `TC` (each public launcher below pairs its kernel with the buffer types it reads and writes).
fn launch<TA: DeviceRepr, TB: DeviceRepr, TC: DeviceRepr>(
    gpu: &Gpu,
    stream: &CudaStream,
    gemm: GemmKernel,
    (a, b): (&CudaSlice<TA>, &CudaSlice<TB>),
    c: &mut CudaSlice<TC>,
    groups: &[GemmGroup],
    accumulate: bool,
) -> Result<(), KernelError> {
    let sizes = gemm.dtypes().map(Dtype::size);
    assert_eq!(
        [size_of::<TA>(), size_of::<TB>(), size_of::<TC>()],
        sizes,
        "{gemm:?}: buffer types"
    );
    let kernel = gemm.kernel();
    let mut problems = validate(kernel.entry, groups, a.len(), b.len(), c.len(), gemm.layout())?;
    let f = gpu.function(&kernel)?;
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
        block_dim: (gemm.threads(), 1, 1),
        shared_mem_bytes: 0,
    };
    let mut builder = crate::launch::Launch::new(stream, &f);
    builder.arg(&params);
    // SAFETY: the kernel takes one `GroupedGemm` by value, and `params` is its #[repr(C)] mirror, whose addresses
    // were formed above with the element sizes of TA, TB, TC, which are those of the kernel's A, B, C (asserted
    // above; each public launcher pairs its entry point with the buffer types it reads and writes, e.g.
    // gemm_nt_f32_bf16_f32 with an f32 A, bf16 B, f32 C). validate() checked that every element each problem reads
    // (A, B) or writes (C) lies inside `a`, `b`, `c`, that no two problems write the same element of C, and that the
    // dimensions fit the kernel's ints; `c` is borrowed mutably, so it aliases neither input. Blocks past a problem's
    // tiles (or past `count`) exit without touching memory.
    unsafe { builder.launch(cfg) }?;
    Ok(())
}

/// One public launcher per [`GemmKernel`], named after its entry point, with the buffer types of its A, B and C.
macro_rules! gemm_launcher {
    ($(#[$doc:meta])* $name:ident, $kernel:ident, $ta:ty, $tb:ty, $tc:ty) => {
        $(#[$doc])*
        pub fn $name(
            gpu: &Gpu,
            stream: &CudaStream,
            a: &CudaSlice<$ta>,
            b: &CudaSlice<$tb>,
            c: &mut CudaSlice<$tc>,
            groups: &[GemmGroup],
            accumulate: bool,
        ) -> Result<(), KernelError> {
            launch(gpu, stream, GemmKernel::$kernel, (a, b), c, groups, accumulate)
        }
    };
}

gemm_launcher!(
    /// `C = A·Bᵀ` (or `C += A·Bᵀ` with `accumulate`) for each group, bf16 in and out, f32 accumulation.
    ///
    /// Per group: A `[m, k]` (row stride `lda ≥ k`) from `a_offset` in `a`, B `[n, k]` (an `nn.Linear` weight, row
    /// stride `ldb ≥ k`) from `b_offset` in `b`, C `[m, n]` (`ldc ≥ n`) from `c_offset` in `c`. The product is
    /// rounded to bf16 once; accumulating, `C = bf16(f32(C) + A·Bᵀ)`.
    gemm_nt_bf16_bf16_bf16,
    NtBf16Bf16Bf16,
    bf16,
    bf16,
    bf16
);

gemm_launcher!(
    /// As [`gemm_nt_bf16_bf16_bf16`], with an f32 C (accumulating adds in f32): the ARMT projections, the LM head
    /// logits, and, accumulating, the residual adds of the o and down projections into f32 hidden rows.
    gemm_nt_bf16_bf16_f32,
    NtBf16Bf16F32,
    bf16,
    bf16,
    f32
);

gemm_launcher!(
    /// As [`gemm_nt_bf16_bf16_f32`], with an f32 A (the f32 hidden rows): `C (+)= bf16(A)·Bᵀ`, each element of A
    /// rounded to bf16 (to nearest, ties to even) as the kernel stages it, B bf16, C f32 (accumulating adds in f32).
    /// A problem's result is bit for bit that of [`gemm_nt_bf16_bf16_f32`] on A rounded to bf16 beforehand (the same
    /// tiles, the same loop). Per group: A `[m, k]` (`lda ≥ k`), B `[n, k]` (`ldb ≥ k`), C `[m, n]` (`ldc ≥ n`).
    gemm_nt_f32_bf16_f32,
    NtF32Bf16F32,
    f32,
    bf16,
    f32
);

gemm_launcher!(
    /// `C (+)= A·B` for each group, all f32: A `[m, k]` (`lda ≥ k`), B `[k, n]` (`ldb ≥ n`), C `[m, n]`
    /// (`ldc ≥ n`). The memory reads φ(q)·A_state and φ(k)·A_state.
    gemm_nn_f32_f32_f32,
    NnF32F32F32,
    f32,
    f32,
    f32
);

gemm_launcher!(
    /// `C (+)= Aᵀ·B` for each group, all f32: A stored `[k, m]` (`lda ≥ m`), B `[k, n]` (`ldb ≥ n`), C `[m, n]`
    /// (`ldc ≥ n`). The memory update A_state `[D, d]` += Kᵀ `[M, D]`ᵀ · U `[M, d]` (with `accumulate`).
    gemm_tn_f32_f32_f32,
    TnF32F32F32,
    f32,
    f32,
    f32
);

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

    /// Each entry point is defined in its file, named `gemm_<layout>_<A>_<B>_<C>` after the registry's layout and
    /// types, in `gemm_bf16.cu` when B is bf16 and `gemm_f32.cu` when it is f32; tiles and threads are the files'.
    #[test]
    fn entries_follow_the_naming_rule_and_exist_in_their_files() {
        let bf16_cu = include_str!("../../../cuda/gemm_bf16.cu");
        let f32_cu = include_str!("../../../cuda/gemm_f32.cu");
        let dtype = |t: Dtype| if t == Dtype::Bf16 { "bf16" } else { "f32" };
        for g in GemmKernel::ALL {
            let layout = format!("{:?}", g.layout()).to_lowercase();
            let [a, b, c] = g.dtypes().map(dtype);
            assert_eq!(g.entry(), format!("gemm_{layout}_{a}_{b}_{c}"));
            let (file, cu) = if b == "bf16" {
                ("gemm_bf16", bf16_cu)
            } else {
                ("gemm_f32", f32_cu)
            };
            assert_eq!(g.kernel().file(), file);
            assert!(cu.contains(&format!(" {}(", g.entry())), "{}", g.entry());
        }
        for cu in [bf16_cu, f32_cu] {
            assert!(cu.contains(&format!("constexpr int BM = {TILE_M};")));
            assert!(cu.contains(&format!("constexpr int BN = {TILE_N};")));
        }
        assert!(bf16_cu.contains(&format!("constexpr int THREADS = {THREADS_BF16};")));
        assert_eq!(THREADS_F32, 16 * 16);
        assert!(f32_cu.contains("constexpr int THREADS = TX * TY;"));
        assert!(f32_cu.contains("constexpr int TX = 16;") && f32_cu.contains("constexpr int TY = 16;"));
    }

    #[test]
    fn flops_sum_over_groups() {
        assert_eq!(gemm_flops(&[nt(2, 3, 4), nt(1, 1, 5)]), 2.0 * 24.0 + 10.0);
    }
}
