//! Checks of the memory path's tensor-core products (`cuda/gemm_tf32x3_sm90.cu`, 3×TF32) against
//! `reference::gemm`'s f32 products, at the engine's layouts: the read `φ·A` (cells of 1, 7, 129, 428 and 1152 rows
//! of φ, each with its own state), the write's `kφ·A` (M rows per cell) and the update `A += kφᵀ·u` (NN and TN),
//! with NaN spare rows between cells (a tile that read across a cell's edge into a result would poison it),
//! poisoned outputs that must stay poisoned outside the groups, the f32 tolerance, and a cell alone against the same
//! cell inside the launch, bitwise.

use super::harness::{
    bitwise, changed_outside, compare, download_f32, f32_normal, fail_if, poison_bits, poisoned_f32, upload_f32, Block,
    Check, SplitMix64, F32_OUT_TOL,
};
use crate::gemm::{GemmGroup, Layout};
use crate::gemm_tf32x3_sm90::{gemm_sm90_nn_f32_f32_f32_tf32x3, gemm_sm90_tn_f32_f32_f32_tf32x3};
use crate::reference::gemm::{matmul, matmul_tn_add};
use crate::{Gpu, KernelError};

/// One case: groups of `ms` (NN: rows of A and C; TN: C rows = A's stored columns), `k`, `n`.
struct Case {
    layout: Layout,
    ms: Vec<usize>,
    k: usize,
    n: usize,
    accumulate: bool,
}

impl Case {
    fn name(&self) -> &'static str {
        match self.layout {
            Layout::Tn => "gemm_sm90_tn_f32_f32_f32_tf32x3",
            _ => "gemm_sm90_nn_f32_f32_f32_tf32x3",
        }
    }

    fn shape(&self) -> String {
        format!(
            "ms={:?} k={} n={}{}",
            self.ms,
            self.k,
            self.n,
            if self.accumulate { " acc" } else { "" }
        )
    }

    /// Groups and buffer lengths. NN: A rows of cell g from `row`, one NaN spare row between cells, B = state g
    /// `[k, n]`; TN: A = cell g's stored `[k, m]` block (k rows + a spare), B = its `[k, n]` rows (+ a spare); C rows
    /// of cell g from `c_row`, a spare row between.
    fn lay_out(&self) -> (Vec<GemmGroup>, usize, usize, usize) {
        let (k, n) = (self.k, self.n);
        let (mut a_row, mut b_row, mut c_row) = (0, 0, 0);
        let mut groups = Vec::new();
        let lda = match self.layout {
            Layout::Tn => self.ms.iter().copied().max().unwrap_or(4).next_multiple_of(4),
            _ => k,
        };
        for &m in &self.ms {
            let g = GemmGroup {
                a_offset: a_row * lda,
                b_offset: b_row * n,
                c_offset: c_row * n,
                m,
                n,
                k,
                lda,
                ldb: n,
                ldc: n,
            };
            groups.push(g);
            a_row += if self.layout == Layout::Tn { k + 1 } else { m + 1 };
            b_row += k + 1;
            c_row += m + 1;
        }
        (groups, a_row * lda, b_row * n, c_row * n)
    }
}

/// Host values: A and B random where read (NaN elsewhere), C's start (random inside the groups when accumulating,
/// poison everywhere else).
fn inputs(case: &Case, groups: &[GemmGroup], lens: (usize, usize, usize), seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut rng = SplitMix64::new(seed);
    let (mut a, mut b) = (vec![f32::NAN; lens.0], vec![f32::NAN; lens.1]);
    let mut c0 = vec![f32::from_bits(poison_bits::<f32>()); lens.2];
    for g in groups {
        let (rows, cols) = if case.layout == Layout::Tn {
            (g.k, g.m)
        } else {
            (g.m, g.k)
        };
        for r in 0..rows {
            let at = g.a_offset + r * g.lda;
            // φ-like: non-negative features (DPFP outputs are products of ReLUs)
            a[at..at + cols].copy_from_slice(
                &f32_normal(&mut rng, cols, 1.0)
                    .iter()
                    .map(|x| x.abs())
                    .collect::<Vec<_>>(),
            );
        }
        b[g.b_offset..g.b_offset + g.k * g.n].copy_from_slice(&f32_normal(&mut rng, g.k * g.n, 0.05));
        if case.accumulate {
            for r in 0..g.m {
                let at = g.c_offset + r * g.ldc;
                c0[at..at + g.n].copy_from_slice(&f32_normal(&mut rng, g.n, 1.0));
            }
        }
    }
    (a, b, c0)
}

fn run(
    gpu: &Gpu,
    case: &Case,
    groups: &[GemmGroup],
    host: &(Vec<f32>, Vec<f32>, Vec<f32>),
) -> Result<Vec<f32>, KernelError> {
    let stream = gpu.stream();
    let (a, b) = (upload_f32(stream, &host.0)?, upload_f32(stream, &host.1)?);
    let mut c = if case.accumulate {
        upload_f32(stream, &host.2)?
    } else {
        poisoned_f32(gpu, stream, host.2.len())?
    };
    match case.layout {
        Layout::Tn => gemm_sm90_tn_f32_f32_f32_tf32x3(gpu, stream, &a, &b, &mut c, groups, case.accumulate)?,
        _ => gemm_sm90_nn_f32_f32_f32_tf32x3(gpu, stream, &a, &b, &mut c, groups, case.accumulate)?,
    }
    download_f32(stream, &c)
}

fn check(gpu: &Gpu, case: &Case, seed: u64) -> Result<Vec<Check>, KernelError> {
    let (groups, a_len, b_len, c_len) = case.lay_out();
    let host = inputs(case, &groups, (a_len, b_len, c_len), seed);
    let out = run(gpu, case, &groups, &host)?;
    let blocks: Vec<Block> = groups
        .iter()
        .map(|g| Block::rows(g.ldc, g.c_offset / g.ldc, g.m, 0, g.n))
        .collect();
    let mut want = Vec::new();
    for g in &groups {
        let (m, k, n) = (g.m, g.k, g.n);
        let b = &host.1[g.b_offset..g.b_offset + k * n];
        let mut c: Vec<f32> = Block::rows(g.ldc, g.c_offset / g.ldc, m, 0, n).gather(&host.2);
        if !case.accumulate {
            c.iter_mut().for_each(|x| *x = 0.0);
        }
        match case.layout {
            Layout::Tn => {
                let a: Vec<f32> = (0..k)
                    .flat_map(|r| {
                        host.0[g.a_offset + r * g.lda..g.a_offset + r * g.lda + m]
                            .iter()
                            .copied()
                    })
                    .collect();
                matmul_tn_add(&a, b, m, k, n, &mut c);
            }
            _ => {
                let a: Vec<f32> = (0..m)
                    .flat_map(|r| {
                        host.0[g.a_offset + r * g.lda..g.a_offset + r * g.lda + k]
                            .iter()
                            .copied()
                    })
                    .collect();
                let mut p = vec![0.0; m * n];
                matmul(&a, b, m, k, n, &mut p);
                c.iter_mut().zip(&p).for_each(|(x, y)| *x += y);
            }
        }
        want.extend(c);
    }
    let got: Vec<f32> = blocks.iter().flat_map(|b| b.gather(&out)).collect();
    let strays = changed_outside(&out, &blocks, |i| host.2[i].to_bits());
    let mut checks = vec![fail_if(
        compare(case.name(), case.shape(), &got, &want, F32_OUT_TOL),
        strays,
        "elements written outside the groups",
    )];
    let target = (0..groups.len()).max_by_key(|&g| groups[g].m).unwrap_or(0);
    let alone = run(gpu, case, &groups[target..=target], &host)?;
    let b = blocks[target];
    checks.push(bitwise(
        case.name(),
        format!("{} cell {target} alone vs grouped", case.shape()),
        &b.gather(&alone),
        &b.gather(&out),
    ));
    Ok(checks)
}

/// The read, the write's two products and a small shape (the tiny test models: D = 96, d = 128).
pub fn checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    let cases = [
        Case {
            layout: Layout::Nn,
            ms: vec![1, 7, 129, 428, 1152],
            k: 384,
            n: 2048,
            accumulate: false,
        },
        Case {
            layout: Layout::Nn,
            ms: vec![128; 4],
            k: 384,
            n: 2048,
            accumulate: false,
        },
        Case {
            layout: Layout::Tn,
            ms: vec![384; 3],
            k: 128,
            n: 2048,
            accumulate: true,
        },
        Case {
            layout: Layout::Nn,
            ms: vec![40, 17, 130],
            k: 96,
            n: 128,
            accumulate: false,
        },
    ];
    cases
        .iter()
        .enumerate()
        .flat_map(|(i, case)| match check(gpu, case, seed.wrapping_add(i as u64)) {
            Ok(v) => v.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e)],
        })
        .collect()
}
