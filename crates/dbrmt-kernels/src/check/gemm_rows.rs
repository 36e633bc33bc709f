//! Why decode rows of several requests may share one GEMM group: a product's output row depends only on its own A
//! row, B and the fixed order over k — never on the other rows of its tile. Two checks, shared by the v2 GEMM
//! (`check/gemm_sm90.rs`) and v1 (`check/gemm.rs`), both bitwise:
//!
//! * **positions**: one row computed alone (a group of one row) against the same row at every position of a merged
//!   group of `tile + 2` rows (every row of the first tile and the next tile's first rows), the other rows random;
//!   with the f32 accumulate epilogue, the row's C before the product is the same in both;
//! * **engine path**: 64 rows, one per request, as the engine ran them before (64 groups of one row each, writing the
//!   q/k/v rows to their cache rows, or adding the o/down product to their hidden rows in the fused epilogue) against
//!   how a merged step runs them (one group of 64 rows into the packed scratch, then `copy_rows_bf16` to the cache
//!   rows, or `add_rows_f32` into the hidden rows).

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream};
use half::bf16;

use super::harness::{bf16_normal, bitwise, f32_normal, upload_bf16, upload_f32, Check, SplitMix64};
use crate::gemm::GemmGroup;
use crate::params::{Span, MAX_GROUPS};
use crate::rows::{add_rows_f32, copy_rows_bf16};
use crate::{Gpu, KernelError};

/// A launch with a bf16 C (`C = A·Bᵀ`, or SwiGLU), A and B bf16.
pub type LaunchBf16<'a> = dyn Fn(
        &Gpu,
        &Arc<CudaStream>,
        &CudaSlice<bf16>,
        &CudaSlice<bf16>,
        &mut CudaSlice<bf16>,
        &[GemmGroup],
    ) -> Result<(), KernelError>
    + 'a;

/// A launch with an f32 C (`C (+)= A·Bᵀ`; the flag is `accumulate`), A and B bf16.
pub type LaunchF32<'a> = dyn Fn(
        &Gpu,
        &Arc<CudaStream>,
        &CudaSlice<bf16>,
        &CudaSlice<bf16>,
        &mut CudaSlice<f32>,
        &[GemmGroup],
        bool,
    ) -> Result<(), KernelError>
    + 'a;

/// The kernel under test, by the type of its C.
pub enum Product<'a> {
    Bf16(&'a LaunchBf16<'a>),
    F32 {
        launch: &'a LaunchF32<'a>,
        accumulate: bool,
    },
}

impl std::fmt::Debug for Product<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Product::Bf16(_) => write!(f, "Product::Bf16"),
            Product::F32 { accumulate, .. } => write!(f, "Product::F32 {{ accumulate: {accumulate} }}"),
        }
    }
}

/// A product's shape: `n` B rows per layer, `k`, the output's columns (`n`, or `n/2` for SwiGLU) and the kernel's
/// tile height.
#[derive(Debug, Clone, Copy)]
pub struct RowShape {
    pub n: usize,
    pub k: usize,
    pub out_cols: usize,
    pub tile_m: usize,
}

/// Requests of the engine-path checks (one launch's groups).
const REQUESTS: usize = MAX_GROUPS;

fn group(a_row: usize, m: usize, c_row: usize, s: RowShape, layer: usize, ldc: usize) -> GemmGroup {
    GemmGroup {
        a_offset: a_row * s.k,
        b_offset: layer * s.n * s.k,
        c_offset: c_row * ldc,
        m,
        n: s.n,
        k: s.k,
        lda: s.k,
        ldb: s.k,
        ldc,
    }
}

/// Runs `groups` on A, B and C (initially `c0`); returns C as f32 (bf16 widened exactly).
fn run(
    gpu: &Gpu,
    p: &Product,
    (a, b): (&CudaSlice<bf16>, &CudaSlice<bf16>),
    c0: &[f32],
    groups: &[GemmGroup],
) -> Result<Vec<f32>, KernelError> {
    let stream = gpu.stream();
    match p {
        Product::Bf16(launch) => {
            let mut c = upload_bf16(stream, c0)?;
            launch(gpu, stream, a, b, &mut c, groups)?;
            Ok(stream.clone_dtoh(&c)?.into_iter().map(|v| v.to_f32()).collect())
        }
        Product::F32 { launch, accumulate } => {
            let mut c = upload_f32(stream, c0)?;
            launch(gpu, stream, a, b, &mut c, groups, *accumulate)?;
            Ok(stream.clone_dtoh(&c)?)
        }
    }
}

/// The positions check: a target row alone, and at position `g` of merged group `g` for every `g` below
/// `tile_m + 2` (each group `tile_m + 2` rows, the others cycled from 7 random rows), in launches of at most
/// [`MAX_GROUPS`] groups; every copy of the row must have the bits of the row alone.
pub fn check_positions(
    gpu: &Gpu,
    seed: u64,
    kernel: &'static str,
    p: &Product,
    s: RowShape,
) -> Result<Check, KernelError> {
    let stream = gpu.stream();
    let mut rng = SplitMix64::new(seed);
    let m = s.tile_m + 2;
    let (rows, ldc) = (m * m + 1, s.out_cols);
    let pool: Vec<Vec<f32>> = (0..8).map(|_| bf16_normal(&mut rng, s.k, 1.0)).collect();
    let target = &pool[7];
    let mut a = Vec::with_capacity(rows * s.k);
    for g in 0..m {
        for j in 0..m {
            a.extend_from_slice(if j == g { target } else { &pool[(g + j) % 7] });
        }
    }
    a.extend_from_slice(target);
    let b = bf16_normal(&mut rng, 2 * s.n * s.k, 1.0 / (s.k as f64).sqrt());
    // C before the product: random rows (what accumulating adds to), the target's the same everywhere
    let c_pool: Vec<Vec<f32>> = (0..4).map(|_| f32_normal(&mut rng, ldc, 1.0)).collect();
    let c_target = &c_pool[3];
    let mut c0: Vec<f32> = (0..rows).flat_map(|r| c_pool[r % 3].iter().copied()).collect();
    let target_rows: Vec<usize> = (0..m).map(|g| g * m + g).chain([m * m]).collect();
    for &r in &target_rows {
        c0[r * ldc..(r + 1) * ldc].copy_from_slice(c_target);
    }
    let (ad, bd) = (upload_bf16(stream, &a)?, upload_bf16(stream, &b)?);
    let row_of = |c: &[f32], r: usize| c[r * ldc..r * ldc + s.out_cols].to_vec();
    let alone = run(gpu, p, (&ad, &bd), &c0, &[group(m * m, 1, m * m, s, 1, ldc)])?;
    let alone = row_of(&alone, m * m);
    let (mut want, mut got) = (Vec::new(), Vec::new());
    let groups: Vec<GemmGroup> = (0..m).map(|g| group(g * m, m, g * m, s, 1, ldc)).collect();
    for (launch, chunk) in groups.chunks(MAX_GROUPS).enumerate() {
        let c = run(gpu, p, (&ad, &bd), &c0, chunk)?;
        for g in launch * MAX_GROUPS..launch * MAX_GROUPS + chunk.len() {
            got.extend(row_of(&c, g * m + g));
            want.extend_from_slice(&alone);
        }
    }
    let shape = format!("n={} k={} row alone vs at rows 0..{m} of a merged group", s.n, s.k);
    Ok(bitwise(kernel, shape, &want, &got))
}

/// The engine-path check of a q/k/v-like product (bf16 C): 64 requests' rows written to their own rows `R + 2i + 1`
/// (cache rows) by 64 one-row groups, against one group of 64 rows into rows `0..R` (the scratch) and
/// `copy_rows_bf16` to the same rows; the destination rows must hold the same bits.
pub fn check_engine_copy(
    gpu: &Gpu,
    seed: u64,
    kernel: &'static str,
    launch: &LaunchBf16,
    s: RowShape,
) -> Result<Check, KernelError> {
    let stream = gpu.stream();
    let mut rng = SplitMix64::new(seed);
    let r = REQUESTS;
    let a = bf16_normal(&mut rng, r * s.k, 1.0);
    let b = bf16_normal(&mut rng, s.n * s.k, 1.0 / (s.k as f64).sqrt());
    let (ad, bd) = (upload_bf16(stream, &a)?, upload_bf16(stream, &b)?);
    let (rows, ldc) = (3 * r + 1, s.n);
    let dest = |i: usize| r + 2 * i + 1;
    let mut before = stream.alloc_zeros::<bf16>(rows * ldc)?;
    let one_each: Vec<GemmGroup> = (0..r).map(|i| group(i, 1, dest(i), s, 0, ldc)).collect();
    launch(gpu, stream, &ad, &bd, &mut before, &one_each)?;
    let mut merged = stream.alloc_zeros::<bf16>(rows * ldc)?;
    launch(gpu, stream, &ad, &bd, &mut merged, &[group(0, r, 0, s, 0, ldc)])?;
    let spans: Vec<Span> = (0..r)
        .map(|i| Span {
            in_row: i,
            out_row: dest(i),
            rows: 1,
            ..Span::default()
        })
        .collect();
    copy_rows_bf16(gpu, stream, &mut merged, ldc, &spans, s.n)?;
    let tail =
        |c: &CudaSlice<bf16>| -> Result<Vec<bf16>, KernelError> { Ok(stream.clone_dtoh(c)?[r * ldc..].to_vec()) };
    let shape = format!("n={} k={} {r} one-row groups vs one merged group + copy_rows", s.n, s.k);
    Ok(bitwise(kernel, shape, &tail(&before)?, &tail(&merged)?))
}

/// The engine-path check of an o/down-like product (f32 C with the residual add): 64 requests' rows added to their
/// hidden rows `2i + 1` by 64 one-row groups in the fused epilogue, against one group of 64 rows into a scratch
/// (no accumulate) and `add_rows_f32` into the same hidden rows; the whole hidden buffer must hold the same bits.
pub fn check_engine_add(
    gpu: &Gpu,
    seed: u64,
    kernel: &'static str,
    launch: &LaunchF32,
    s: RowShape,
) -> Result<Check, KernelError> {
    let stream = gpu.stream();
    let mut rng = SplitMix64::new(seed);
    let r = REQUESTS;
    let a = bf16_normal(&mut rng, r * s.k, 1.0);
    let b = bf16_normal(&mut rng, s.n * s.k, 1.0 / (s.k as f64).sqrt());
    let h0 = f32_normal(&mut rng, (2 * r + 1) * s.n, 1.0);
    let (ad, bd) = (upload_bf16(stream, &a)?, upload_bf16(stream, &b)?);
    let ldc = s.n;
    let mut fused = upload_f32(stream, &h0)?;
    let one_each: Vec<GemmGroup> = (0..r).map(|i| group(i, 1, 2 * i + 1, s, 0, ldc)).collect();
    launch(gpu, stream, &ad, &bd, &mut fused, &one_each, true)?;
    let mut scratch = stream.alloc_zeros::<f32>(r * ldc)?;
    launch(gpu, stream, &ad, &bd, &mut scratch, &[group(0, r, 0, s, 0, ldc)], false)?;
    let mut hidden = upload_f32(stream, &h0)?;
    let spans: Vec<Span> = (0..r)
        .map(|i| Span {
            in_row: i,
            out_row: 2 * i + 1,
            rows: 1,
            ..Span::default()
        })
        .collect();
    add_rows_f32(gpu, stream, &scratch, ldc, &mut hidden, ldc, &spans, s.n)?;
    let shape = format!(
        "n={} k={} {r} one-row groups accumulating vs one merged group + add_rows",
        s.n, s.k
    );
    Ok(bitwise(
        kernel,
        shape,
        &stream.clone_dtoh(&fused)?,
        &stream.clone_dtoh(&hidden)?,
    ))
}
