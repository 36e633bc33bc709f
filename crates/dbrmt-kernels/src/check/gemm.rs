//! Checks of the grouped matrix products (`cuda/gemm_bf16.cu`, `cuda/gemm_f32.cu`) against `reference::gemm`.
//!
//! `gemm_nt_f32_bf16_f32` reads an f32 A and rounds it to bf16 as it stages it: its inputs are unrounded f32 values,
//! its reference sees them rounded to bf16, and [`check_gemm_rounds_a`] requires its bits to be those of
//! `gemm_nt_bf16_bf16_f32` on A rounded to bf16 on the host.
//!
//! Every case lays its groups out the way the engine does (cells' rows stacked in shared activation buffers, with
//! a gap row between cells; weights or memory states stacked per layer, group g using layer g), optionally with row
//! strides wider than the rows (`pad`). Every element of A and B that no group may read is NaN, so a read past an
//! operand's edge poisons the result, and every element of C that no group may write holds the poison pattern and
//! must still hold it afterwards (a stray write fails the check).

use cudarc::driver::CudaStream;
use half::bf16;

use super::harness::{
    self, bf16_normal, bitwise, changed_outside, compare, download_bf16, download_f32, f32_normal, fail_if, mask,
    poison_bits, poisoned_bf16, poisoned_f32, round_bf16, upload_bf16, upload_f32, Block, Check, SplitMix64,
    BF16_OUT_TOL, F32_OUT_TOL, POISON_BF16_BITS,
};
use crate::gemm::{
    gemm_nn_f32_f32_f32, gemm_nt_bf16_bf16_bf16, gemm_nt_bf16_bf16_f32, gemm_nt_f32_bf16_f32, gemm_tn_f32_f32_f32,
    Dtype, GemmGroup, GemmKernel, Layout,
};
use crate::poison::POISON_F32_BITS;
use crate::reference::gemm::{linear, linear_add, matmul, matmul_tn_add};
use crate::{Gpu, KernelError};

/// What a check needs to know of a kernel beyond the registry: its tolerance and its C's poison.
trait Judged {
    /// Whether A is stored in bf16.
    fn bf16_a(self) -> bool;
    /// Whether B is stored in bf16.
    fn bf16_b(self) -> bool;
    /// Whether the kernel rounds its (f32) A to bf16 before multiplying (an f32 A with a bf16 B).
    fn rounds_a(self) -> bool;
    fn bf16_output(self) -> bool;
    /// The tolerance of its output type.
    fn tol(self) -> f64;
    /// The bits an element of C that no group may write keeps (read back as f32): the poison of its output type.
    fn poison(self) -> u32;
}

impl Judged for GemmKernel {
    fn bf16_a(self) -> bool {
        self.dtypes()[0] == Dtype::Bf16
    }

    fn bf16_b(self) -> bool {
        self.dtypes()[1] == Dtype::Bf16
    }

    fn rounds_a(self) -> bool {
        !self.bf16_a() && self.bf16_b()
    }

    fn bf16_output(self) -> bool {
        self.dtypes()[2] == Dtype::Bf16
    }

    /// [`BF16_OUT_TOL`] (one rounding of the f32 result), or [`F32_OUT_TOL`] (from bf16 inputs, whose products are
    /// exact in f32, or from f32 inputs, only the order of the f32 summation differs from the reference, a relative
    /// error of a few 1e-7 · √k; measured on an H100: 2.1e-6 for bf16 inputs at k = 2048, 2.8e-7 for f32 at k = 384).
    fn tol(self) -> f64 {
        if self.bf16_output() {
            BF16_OUT_TOL
        } else {
            F32_OUT_TOL
        }
    }

    fn poison(self) -> u32 {
        if self.bf16_output() {
            poison_bits::<bf16>()
        } else {
            poison_bits::<f32>()
        }
    }
}

/// One checked launch: one group per entry of `ms` (its m), all with the same `n` and `k`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GemmCase {
    /// The entry point.
    pub kernel: GemmKernel,
    /// m of each group (0 allowed).
    pub ms: Vec<usize>,
    /// Columns of C, the same in every group.
    pub n: usize,
    /// The summed dimension, the same in every group.
    pub k: usize,
    /// Extra elements at the end of every stored row of A, B and C (row strides wider than the rows).
    pub pad: usize,
    /// `C += product` instead of `C = product`.
    pub accumulate: bool,
}

impl GemmCase {
    fn shape(&self) -> String {
        format!(
            "ms={:?} n={} k={} pad={}{}",
            self.ms,
            self.n,
            self.k,
            self.pad,
            if self.accumulate { " acc" } else { "" }
        )
    }
}

/// The groups of a case and the lengths of the three buffers they index.
struct Layout3 {
    groups: Vec<GemmGroup>,
    a_len: usize,
    b_len: usize,
    c_len: usize,
}

/// Lays the groups out as the engine does: A and C rows of the cells stacked with one spare row between cells
/// (A stored `[k, m]` per cell for `Tn`), B one block per group (a stacked per-layer weight or state).
fn lay_out(case: &GemmCase) -> Layout3 {
    let (n, k, pad) = (case.n, case.k, case.pad);
    let layout = case.kernel.layout();
    let mut groups = Vec::with_capacity(case.ms.len());
    let (mut a_len, mut b_len, mut c_row) = (0, 0, 0);
    let ldc = n + pad;
    for &m in &case.ms {
        let g = match layout {
            Layout::Nt | Layout::Nn => {
                let lda = k + pad;
                let ldb = if layout == Layout::Nt { k + pad } else { n + pad };
                let b_rows = if layout == Layout::Nt { n } else { k };
                // A rows share the C row numbering: cell rows c_row.. in both buffers.
                let g = GemmGroup {
                    a_offset: c_row * lda,
                    b_offset: b_len,
                    c_offset: c_row * ldc,
                    m,
                    n,
                    k,
                    lda,
                    ldb,
                    ldc,
                };
                b_len += b_rows * ldb;
                g
            }
            Layout::Tn => {
                let (lda, ldb) = (m + pad, n + pad);
                let g = GemmGroup {
                    a_offset: a_len,
                    b_offset: b_len,
                    c_offset: c_row * ldc,
                    m,
                    n,
                    k,
                    lda,
                    ldb,
                    ldc,
                };
                a_len += (k + 1) * lda;
                b_len += k * ldb;
                g
            }
        };
        groups.push(g);
        c_row += m + 1;
    }
    if layout != Layout::Tn {
        a_len = c_row * (k + pad);
    }
    // Never empty, so that every buffer can be allocated.
    Layout3 {
        groups,
        a_len: a_len.max(1),
        b_len: b_len.max(1),
        c_len: (c_row * ldc).max(1),
    }
}

/// Host inputs of a case: A, B (NaN where no group reads), the initial C (poison where no group writes, and
/// everywhere when not accumulating) and the mask of C elements the groups write.
struct Inputs {
    a: Vec<f32>,
    b: Vec<f32>,
    c0: Vec<f32>,
    c_mask: Vec<bool>,
}

fn inputs(case: &GemmCase, l: &Layout3, rng: &mut SplitMix64) -> Inputs {
    let layout = case.kernel.layout();
    let mut draw = |len: usize, std: f64, bf16: bool| {
        if bf16 {
            bf16_normal(rng, len, std)
        } else {
            f32_normal(rng, len, std)
        }
    };
    let mut a = draw(l.a_len, 1.0, case.kernel.bf16_a());
    // Scaled so that every product has entries of order 1, like the residual they may be added to.
    let mut b = draw(l.b_len, 1.0 / (case.k.max(1) as f64).sqrt(), case.kernel.bf16_b());
    let (a_mask, b_mask, c_mask) = (
        mask(
            l.a_len,
            &l.groups.iter().map(|g| a_block(layout, g)).collect::<Vec<_>>(),
        ),
        mask(
            l.b_len,
            &l.groups.iter().map(|g| b_block(layout, g)).collect::<Vec<_>>(),
        ),
        mask(l.c_len, &c_blocks(&l.groups)),
    );
    for (x, _) in a.iter_mut().zip(&a_mask).filter(|(_, &m)| !m) {
        *x = f32::NAN;
    }
    for (x, _) in b.iter_mut().zip(&b_mask).filter(|(_, &m)| !m) {
        *x = f32::NAN;
    }
    let poison = f32::from_bits(POISON_F32_BITS);
    let c0: Vec<f32> = if case.accumulate {
        let fresh = if case.kernel.bf16_output() {
            bf16_normal(rng, l.c_len, 1.0)
        } else {
            f32_normal(rng, l.c_len, 1.0)
        };
        fresh
            .into_iter()
            .zip(&c_mask)
            .map(|(v, &m)| if m { v } else { poison })
            .collect()
    } else {
        vec![poison; l.c_len]
    };
    Inputs { a, b, c0, c_mask }
}

/// Group `g`'s A as stored (`[m, k]`, or `[k, m]` for `Tn`).
fn a_block(layout: Layout, g: &GemmGroup) -> Block {
    let (rows, width) = if layout == Layout::Tn { (g.k, g.m) } else { (g.m, g.k) };
    Block {
        offset: g.a_offset,
        rows,
        width,
        ld: g.lda,
    }
}

/// Group `g`'s B as stored (`[n, k]` for `Nt`, else `[k, n]`).
fn b_block(layout: Layout, g: &GemmGroup) -> Block {
    let (rows, width) = if layout == Layout::Nt { (g.n, g.k) } else { (g.k, g.n) };
    Block {
        offset: g.b_offset,
        rows,
        width,
        ld: g.ldb,
    }
}

/// Group `g`'s C, `[m, n]`.
fn c_block(g: &GemmGroup) -> Block {
    Block {
        offset: g.c_offset,
        rows: g.m,
        width: g.n,
        ld: g.ldc,
    }
}

fn c_blocks(groups: &[GemmGroup]) -> Vec<Block> {
    groups.iter().map(c_block).collect()
}

/// The f32 reference of the whole C buffer: each group's product (plus its initial C when accumulating) where it
/// writes, the initial contents elsewhere.
fn reference(case: &GemmCase, l: &Layout3, x: &Inputs) -> Vec<f32> {
    let mut out = x.c0.clone();
    for g in &l.groups {
        let (m, n, k) = (g.m, g.n, g.k);
        if m == 0 || n == 0 {
            continue;
        }
        let mut y = if case.accumulate {
            c_block(g).gather(&x.c0)
        } else {
            vec![0.0; m * n]
        };
        if k > 0 {
            match case.kernel.layout() {
                Layout::Nt => {
                    let mut a = a_block(Layout::Nt, g).gather(&x.a);
                    if case.kernel.rounds_a() {
                        a.iter_mut().for_each(|v| *v = round_bf16(*v));
                    }
                    let w = b_block(Layout::Nt, g).gather(&x.b);
                    if case.accumulate {
                        linear_add(&a, &w, m, k, n, &mut y);
                    } else {
                        linear(&a, &w, m, k, n, &mut y);
                    }
                }
                Layout::Nn => {
                    let a = a_block(Layout::Nn, g).gather(&x.a);
                    let b = b_block(Layout::Nn, g).gather(&x.b);
                    let mut p = vec![0.0; m * n];
                    matmul(&a, &b, m, k, n, &mut p);
                    // The kernel adds the finished product to C, as here.
                    y.iter_mut().zip(&p).for_each(|(y, p)| *y += p);
                }
                Layout::Tn => {
                    let a = a_block(Layout::Tn, g).gather(&x.a);
                    let b = b_block(Layout::Tn, g).gather(&x.b);
                    matmul_tn_add(&a, &b, m, k, n, &mut y);
                }
            }
        }
        c_block(g).scatter(&mut out, &y);
    }
    out
}

/// bf16 copies of host values, keeping the bf16 poison pattern where the f32 poison pattern is.
fn to_bf16_keep_poison(x: &[f32]) -> Vec<bf16> {
    x.iter()
        .map(|&v| {
            if v.to_bits() == POISON_F32_BITS {
                bf16::from_bits(POISON_BF16_BITS)
            } else {
                bf16::from_f32(v)
            }
        })
        .collect()
}

/// Uploads the inputs, poisons (or fills) C, runs the launch over `groups` and downloads the whole of C.
fn run_gpu(
    gpu: &Gpu,
    stream: &std::sync::Arc<CudaStream>,
    case: &GemmCase,
    groups: &[GemmGroup],
    x: &Inputs,
) -> Result<Vec<f32>, KernelError> {
    let acc = case.accumulate;
    if case.kernel.rounds_a() {
        let (a, b) = (upload_f32(stream, &x.a)?, upload_bf16(stream, &x.b)?);
        let mut c = if acc {
            upload_f32(stream, &x.c0)?
        } else {
            poisoned_f32(gpu, stream, x.c0.len())?
        };
        gemm_nt_f32_bf16_f32(gpu, stream, &a, &b, &mut c, groups, acc)?;
        download_f32(stream, &c)
    } else if case.kernel.bf16_a() {
        let (a, b) = (upload_bf16(stream, &x.a)?, upload_bf16(stream, &x.b)?);
        if case.kernel.bf16_output() {
            let mut c = if acc {
                stream.clone_htod(&to_bf16_keep_poison(&x.c0))?
            } else {
                poisoned_bf16(gpu, stream, x.c0.len())?
            };
            gemm_nt_bf16_bf16_bf16(gpu, stream, &a, &b, &mut c, groups, acc)?;
            download_bf16(stream, &c)
        } else {
            let mut c = if acc {
                upload_f32(stream, &x.c0)?
            } else {
                poisoned_f32(gpu, stream, x.c0.len())?
            };
            gemm_nt_bf16_bf16_f32(gpu, stream, &a, &b, &mut c, groups, acc)?;
            download_f32(stream, &c)
        }
    } else {
        let (a, b) = (upload_f32(stream, &x.a)?, upload_f32(stream, &x.b)?);
        let mut c = if acc {
            upload_f32(stream, &x.c0)?
        } else {
            poisoned_f32(gpu, stream, x.c0.len())?
        };
        if case.kernel == GemmKernel::NnF32F32F32 {
            gemm_nn_f32_f32_f32(gpu, stream, &a, &b, &mut c, groups, acc)?;
        } else {
            gemm_tn_f32_f32_f32(gpu, stream, &a, &b, &mut c, groups, acc)?;
        }
        download_f32(stream, &c)
    }
}

/// Compares the written part of C (the groups' `blocks`) with the reference and fails the check if any element
/// outside it lost the `poison` of C's type (a stray write).
fn judge(
    kernel: &'static str,
    shape: String,
    gpu: &[f32],
    reference: &[f32],
    blocks: &[Block],
    tol: f64,
    poison: u32,
) -> Check {
    let inside = mask(gpu.len(), blocks);
    let pick = |v: &[f32]| -> Vec<f32> { v.iter().zip(&inside).filter(|(_, &m)| m).map(|(&x, _)| x).collect() };
    let check = compare(kernel, shape, &pick(gpu), &pick(reference), tol);
    fail_if(check, changed_outside(gpu, blocks, |_| poison), "stray writes")
}

/// Runs one case on fresh random inputs drawn from `seed` and compares it with the f32 reference, with the
/// tolerance of the kernel's output type ([`Judged::tol`]).
pub fn check_gemm(gpu: &Gpu, seed: u64, case: &GemmCase) -> Result<Check, KernelError> {
    let stream = gpu.stream();
    let l = lay_out(case);
    let x = inputs(case, &l, &mut SplitMix64::new(seed));
    let want = reference(case, &l, &x);
    let got = run_gpu(gpu, stream, case, &l.groups, &x)?;
    Ok(judge(
        case.kernel.entry(),
        case.shape(),
        &got,
        &want,
        &c_blocks(&l.groups),
        case.kernel.tol(),
        case.kernel.poison(),
    ))
}

/// Determinism across groupings: one problem (m = 37) computed alone must give exactly the bytes it gets as the
/// third of five groups of different sizes. Tolerance 0: any differing bit (even the sign of a zero) fails.
pub fn check_gemm_grouping(gpu: &Gpu, seed: u64, kernel: GemmKernel, accumulate: bool) -> Result<Check, KernelError> {
    const TARGET: usize = 2;
    let stream = gpu.stream();
    let case = GemmCase {
        kernel,
        ms: vec![130, 1, 37, 200, 64],
        n: 136,
        k: 200,
        pad: 0,
        accumulate,
    };
    let l = lay_out(&case);
    let x = inputs(&case, &l, &mut SplitMix64::new(seed));
    let all = run_gpu(gpu, stream, &case, &l.groups, &x)?;
    let alone = run_gpu(gpu, stream, &case, &l.groups[TARGET..=TARGET], &x)?;
    let c = c_block(&l.groups[TARGET]);
    let (all, alone) = (c.gather(&all), c.gather(&alone));
    let shape = format!(
        "m=37 alone vs group {TARGET} of {:?}, n={} k={}{}",
        case.ms,
        case.n,
        case.k,
        if accumulate { " acc" } else { "" }
    );
    Ok(bitwise(kernel.entry(), shape, &alone, &all))
}

/// `gemm_nt_f32_bf16_f32` against `gemm_nt_bf16_bf16_f32` on A rounded to bf16 on the host (to nearest, ties to even),
/// the same groups, C and B: identical bits, since the kernel rounds A the same way as it stages it and runs the same
/// tile loop. Every eighth element of A is made an exact tie between two bf16 values (so rounding half up, or
/// truncating, shows). Tolerance 0: any differing bit fails.
pub fn check_gemm_rounds_a(gpu: &Gpu, seed: u64, case: &GemmCase) -> Result<Check, KernelError> {
    assert_eq!(
        case.kernel,
        GemmKernel::NtF32Bf16F32,
        "the rounding check is for the af32 kernel"
    );
    let stream = gpu.stream();
    let l = lay_out(case);
    let mut x = inputs(case, &l, &mut SplitMix64::new(seed));
    for v in x.a.iter_mut().step_by(8).filter(|v| v.is_finite()) {
        *v = f32::from_bits((v.to_bits() & 0xFFFF_0000) | 0x8000);
    }
    let got = run_gpu(gpu, stream, case, &l.groups, &x)?;
    let rounded = Inputs {
        a: x.a.iter().map(|&v| round_bf16(v)).collect(),
        b: x.b.clone(),
        c0: x.c0.clone(),
        c_mask: x.c_mask.clone(),
    };
    let bf16_case = GemmCase {
        kernel: GemmKernel::NtBf16Bf16F32,
        ..case.clone()
    };
    let want = run_gpu(gpu, stream, &bf16_case, &l.groups, &rounded)?;
    let shape = format!("{} vs gemm_nt_bf16_bf16_f32(bf16(A)), ties", case.shape());
    let blocks = c_blocks(&l.groups);
    let check = judge(
        case.kernel.entry(),
        shape,
        &got,
        &want,
        &blocks,
        0.0,
        case.kernel.poison(),
    );
    let written = |v: &[f32]| -> Vec<f32> { blocks.iter().flat_map(|b| b.gather(v)).collect() };
    Ok(fail_if(
        check,
        harness::differing_bits(&written(&got), &written(&want)),
        "elements differ in bits",
    ))
}

/// Every gemm check: each entry point at shapes that are not multiples of the tiles, several groups of different
/// row counts (a short last segment among them), padded row strides, accumulate on and off, k = 0 and empty
/// groups, the model's real shapes, and the bitwise grouping check.
pub fn checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    let mut cases = Vec::new();
    for kernel in GemmKernel::ALL {
        let case = |ms: &[usize], n, k, pad, accumulate| GemmCase {
            kernel,
            ms: ms.to_vec(),
            n,
            k,
            pad,
            accumulate,
        };
        cases.push(case(&[1, 37, 130], 70, 96, 0, false));
        cases.push(case(&[1, 37, 130], 200, 300, 3, true));
        cases.push(case(&[130, 37, 1], 200, 96, 1, false));
        // Whole tiles, 16-byte rows (the vector loads), then a short last segment.
        cases.push(case(&[128, 64, 17], 128, 64, 0, true));
        // Degenerate: one row and column; k = 0 (C = 0, or unchanged when accumulating); an empty group.
        cases.push(case(&[1], 1, 1, 0, false));
        cases.push(case(&[3, 0, 2], 5, 0, 2, false));
        cases.push(case(&[3, 0, 2], 5, 0, 0, true));
        cases.push(case(&[5, 0, 9], 33, 17, 0, true));
    }
    let case = |kernel, ms: &[usize], n, k, accumulate| GemmCase {
        kernel,
        ms: ms.to_vec(),
        n,
        k,
        pad: 0,
        accumulate,
    };
    // The decoder's projections: T + M = 1152 rows, d = 2048 (a down projection with residual: k = 2048).
    cases.push(case(GemmKernel::NtBf16Bf16Bf16, &[1152, 1152], 2048, 2048, false));
    cases.push(case(GemmKernel::NtBf16Bf16Bf16, &[1152, 500], 2048, 2048, true));
    // ARMT projections [K|V|β] (64 + 2048 + 1 columns) of M = 128 memory rows; an LM head (SmolLM2's vocab, odd).
    cases.push(case(GemmKernel::NtBf16Bf16F32, &[128, 128, 128], 2113, 2048, false));
    cases.push(case(GemmKernel::NtBf16Bf16F32, &[1, 3], 49157, 576, false));
    // With f32 hidden rows: the o projection's residual add into them (f32 C, accumulating), and the products that
    // read them (A f32): the ARMT projections of the memory rows and the read's W_q (d_mem = 64) over T + M rows.
    cases.push(case(GemmKernel::NtBf16Bf16F32, &[1152, 500], 2048, 2048, true));
    cases.push(case(GemmKernel::NtF32Bf16F32, &[128, 128, 128], 2113, 2048, false));
    cases.push(case(GemmKernel::NtF32Bf16F32, &[1152, 300], 64, 2048, false));
    // The memory read φ(q)·A (D = 384) and the update A += Kᵀ·U (M = 128).
    cases.push(case(GemmKernel::NnF32F32F32, &[1152, 144], 2048, 384, false));
    cases.push(case(GemmKernel::TnF32F32F32, &[384, 384, 384], 2048, 128, true));

    let mut results: Vec<Result<Check, KernelError>> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| check_gemm(gpu, seed.wrapping_add(i as u64), c))
        .collect();
    for (i, kernel) in GemmKernel::ALL.into_iter().enumerate() {
        for accumulate in [false, true] {
            let s = seed.wrapping_add(1000 + 2 * i as u64 + accumulate as u64);
            results.push(check_gemm_grouping(gpu, s, kernel, accumulate));
        }
    }
    // The af32 kernel's rounding: 16-byte-aligned rows (the vector loads) with a K tail, then odd strides (the
    // element loads) with empty groups, accumulating.
    for (i, (ms, n, k, pad, accumulate)) in [(vec![1, 37, 130], 200, 300, 0, false), (vec![5, 0, 9], 33, 17, 3, true)]
        .into_iter()
        .enumerate()
    {
        let case = GemmCase {
            kernel: GemmKernel::NtF32Bf16F32,
            ms,
            n,
            k,
            pad,
            accumulate,
        };
        results.push(check_gemm_rounds_a(gpu, seed.wrapping_add(2000 + i as u64), &case));
    }
    results.extend(row_checks(gpu, seed.wrapping_add(3000)));
    results
}

/// Decode rows of several requests in one group on the v1 kernels (see `check/gemm_rows.rs`): a row alone vs at
/// every position of a merged 64-row tile, for the bf16-A entries the engine merges (q/k/v, gate/up, o and down
/// with the residual add, the LM head), and the engine's two row moves. (`gemm_nt_f32_bf16_f32`, v1's memory
/// projection, reads the hidden rows in place, which are not contiguous across requests: never merged.)
pub fn row_checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    use super::gemm_rows::{check_engine_add, check_engine_copy, check_positions, Product, RowShape};
    use cudarc::driver::CudaSlice;
    use std::sync::Arc;
    type Bf16s = CudaSlice<bf16>;
    type F32s = CudaSlice<f32>;
    type Res = Result<(), KernelError>;
    fn bf16_out(gpu: &Gpu, st: &Arc<CudaStream>, a: &Bf16s, b: &Bf16s, c: &mut Bf16s, g: &[GemmGroup]) -> Res {
        gemm_nt_bf16_bf16_bf16(gpu, st, a, b, c, g, false)
    }
    fn f32_out(gpu: &Gpu, st: &Arc<CudaStream>, a: &Bf16s, b: &Bf16s, c: &mut F32s, g: &[GemmGroup], acc: bool) -> Res {
        gemm_nt_bf16_bf16_f32(gpu, st, a, b, c, g, acc)
    }
    let shape = |n: usize, k: usize| RowShape {
        n,
        k,
        out_cols: n,
        tile_m: crate::gemm::TILE_M,
    };
    let (bf16_name, f32_name) = (GemmKernel::NtBf16Bf16Bf16.entry(), GemmKernel::NtBf16Bf16F32.entry());
    let acc = Product::F32 {
        launch: &f32_out,
        accumulate: true,
    };
    let plain = Product::F32 {
        launch: &f32_out,
        accumulate: false,
    };
    vec![
        check_positions(gpu, seed, bf16_name, &Product::Bf16(&bf16_out), shape(960, 576)),
        check_positions(gpu, seed ^ 1, f32_name, &acc, shape(576, 1536)),
        check_positions(gpu, seed ^ 2, f32_name, &plain, shape(1000, 576)),
        check_engine_copy(gpu, seed ^ 3, bf16_name, &bf16_out, shape(960, 576)),
        check_engine_add(gpu, seed ^ 4, f32_name, &f32_out, shape(576, 1536)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::validate;

    /// The layouts the GPU checks use must pass the launcher's own validation, and the reference must write
    /// exactly the masked elements (CPU only).
    #[test]
    fn layouts_validate_and_reference_fills_the_mask() {
        for kernel in GemmKernel::ALL {
            for (ms, n, k, pad, accumulate) in [
                (vec![1, 37, 130], 70, 96, 3, false),
                (vec![3, 0, 2], 5, 0, 0, true),
                (vec![2, 5], 9, 4, 1, true),
            ] {
                let case = GemmCase {
                    kernel,
                    ms,
                    n,
                    k,
                    pad,
                    accumulate,
                };
                let l = lay_out(&case);
                validate("t", &l.groups, l.a_len, l.b_len, l.c_len, kernel.layout()).unwrap();
                let x = inputs(&case, &l, &mut SplitMix64::new(7));
                let r = reference(&case, &l, &x);
                for ((&v, &m), &c0) in r.iter().zip(&x.c_mask).zip(&x.c0) {
                    assert_eq!(m, v.to_bits() != POISON_F32_BITS, "{case:?}");
                    if !m {
                        assert_eq!(v.to_bits(), c0.to_bits());
                    }
                    assert!(!m || v.is_finite(), "{case:?}: NaN read into the reference");
                }
            }
        }
    }

    #[test]
    fn judge_flags_stray_writes_and_passes_exact_results() {
        let p = f32::from_bits(POISON_F32_BITS);
        // Elements 0 and 2 written: two blocks of one element.
        let one = |offset| Block {
            offset,
            rows: 1,
            width: 1,
            ld: 1,
        };
        let blocks = [one(0), one(2)];
        let judge = |gpu: &[f32]| judge("k", "s".into(), gpu, &[1.0, p, 2.0], &blocks, 1e-5, POISON_F32_BITS);
        let ok = judge(&[1.0, p, 2.0]);
        assert!(ok.passed(), "{ok}");
        let stray = judge(&[1.0, 0.5, 2.0]);
        assert!(!stray.passed() && stray.shape.contains("stray"));
        let unwritten = judge(&[p, p, 2.0]);
        assert!(!unwritten.passed() && unwritten.unwritten == 1);
    }
}
