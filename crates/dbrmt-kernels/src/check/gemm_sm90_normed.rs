//! The normed GEMM entries (`gemm_sm90_*_normed`, v9: a decode step's RMSNorm made inside the q/k/v and gate/up
//! launches) against what they replace: `rms_norm` into a bf16 buffer, then the unnormed launch of the same groups
//! on it. The contract is the same bytes, so the comparison is bitwise; both halves of the reference have their own
//! f32 CPU checks (`check/rms_norm.rs`, `check/gemm_sm90.rs`). Fresh random rows (f32, spread over several orders of
//! magnitude per row, as hidden rows are), norm weights around 1, poisoned outputs; every element outside the groups'
//! C rows must keep its poison.

use half::bf16;

use super::harness::{
    bf16_normal, bitwise, changed_outside, download_bf16, f32_normal, fail_if, poison_bits, poisoned_bf16, upload_bf16,
    upload_f32, Block, Check, SplitMix64,
};
use crate::gemm::GemmGroup;
use crate::gemm_sm90::{
    decode_tiles_enabled, gemm_sm90_nt_bf16_bf16_bf16, gemm_sm90_nt_bf16_bf16_swiglu, gemm_sm90_nt_normed,
    normed_width, Epilogue, NormedRows,
};
use crate::params::Span;
use crate::rms_norm::rms_norm;
use crate::{Gpu, KernelError};

/// Layers of the stacked weights of a check (group `g` uses layer `layers[g]`).
const LAYERS: usize = 3;

/// A case: the epilogue, `(n, k)`, and its groups as `(x row, m, layer)`.
type Case = (Epilogue, (usize, usize), &'static [(usize, usize, usize)]);

/// One normed launch of groups `(x row, m, layer)` against `rms_norm` + the unnormed launch: `n` B rows a layer
/// (SwiGLU: interleaved gate/up rows, `n/2` outputs), `k` the norm's width.
pub fn check_normed(
    gpu: &Gpu,
    seed: u64,
    epilogue: Epilogue,
    (n, k): (usize, usize),
    problems: &[(usize, usize, usize)],
) -> Result<Check, KernelError> {
    let stream = gpu.stream();
    let mut rng = SplitMix64::new(seed);
    let x_ld = k + 8;
    let x_rows = problems.iter().map(|&(r, m, _)| r + m).max().unwrap_or(0) + 2;
    // rows of very different scales: each row's values times 10^(−2..2)
    let mut x_host = f32_normal(&mut rng, x_rows * x_ld, 1.0);
    for (r, row) in x_host.chunks_mut(x_ld).enumerate() {
        let scale = 10f32.powi((r % 5) as i32 - 2);
        row.iter_mut().for_each(|v| *v *= scale);
    }
    let w_host: Vec<f32> = bf16_normal(&mut rng, LAYERS * k, 0.25)
        .iter()
        .map(|v| 1.0 + v)
        .collect();
    let b_host = bf16_normal(&mut rng, LAYERS * n * k, 1.0 / (k as f64).sqrt());
    let (x, w, b) = (
        upload_f32(stream, &x_host)?,
        upload_bf16(stream, &w_host)?,
        upload_bf16(stream, &b_host)?,
    );
    let cols = if epilogue == Epilogue::SwiGlu { n / 2 } else { n };
    // the unnormed launch's A rows: problem i's at rows 8i.. of a normed buffer (a spare row after each)
    let groups: Vec<GemmGroup> = problems
        .iter()
        .enumerate()
        .map(|(i, &(_, m, layer))| GemmGroup {
            a_offset: 9 * i * k,
            b_offset: layer * n * k,
            c_offset: 9 * i * cols,
            m,
            n,
            k,
            lda: k,
            ldb: k,
            ldc: cols,
        })
        .collect();
    let c_len = 9 * problems.len() * cols;
    let spans: Vec<Span> = problems
        .iter()
        .enumerate()
        .map(|(i, &(row, m, layer))| Span {
            in_row: row,
            out_row: 9 * i,
            rows: m,
            layer,
            ..Span::default()
        })
        .collect();
    let eps = 1e-5;
    let unnormed = |c: &mut cudarc::driver::CudaSlice<bf16>| -> Result<(), KernelError> {
        let mut normed = upload_bf16(stream, &vec![0.5; 9 * problems.len() * k])?;
        rms_norm(gpu, stream, &x, x_ld, &w, &mut normed, k, &spans, k, eps)?;
        match epilogue {
            Epilogue::SwiGlu => gemm_sm90_nt_bf16_bf16_swiglu(gpu, stream, &normed, &b, c, &groups),
            _ => gemm_sm90_nt_bf16_bf16_bf16(gpu, stream, &normed, &b, c, &groups),
        }
    };
    let mut want = poisoned_bf16(gpu, stream, c_len)?;
    unnormed(&mut want)?;
    let rows: Vec<(usize, usize)> = problems.iter().map(|&(r, _, layer)| (r, layer)).collect();
    let a = NormedRows {
        x: &x,
        x_ld,
        w: &w,
        eps,
        rows: &rows,
    };
    let mut got = poisoned_bf16(gpu, stream, c_len)?;
    gemm_sm90_nt_normed(gpu, stream, &a, &b, &mut got, &groups, epilogue)?;
    let (got, want) = (download_bf16(stream, &got)?, download_bf16(stream, &want)?);
    let width = normed_width(&groups, epilogue, gpu.sm_count(), decode_tiles_enabled());
    let name = match epilogue {
        Epilogue::SwiGlu => "gemm_sm90_nt_bf16_bf16_swiglu_bn128_decode_normed",
        _ => "gemm_sm90_nt_bf16_bf16_bf16_normed",
    };
    let ms: Vec<usize> = problems.iter().map(|p| p.1).collect();
    let shape = format!("n={n} k={k} rows {ms:?} (BN {width:?}) vs rms_norm + the unnormed launch");
    let blocks: Vec<Block> = groups
        .iter()
        .map(|g| Block::rows(cols, g.c_offset / cols, g.m, 0, cols))
        .collect();
    let pick = |c: &[f32]| -> Vec<f32> { blocks.iter().flat_map(|b| b.gather(c)).collect() };
    Ok(fail_if(
        bitwise(name, shape, &pick(&got), &pick(&want)),
        changed_outside(&got, &blocks, |_| poison_bits::<bf16>()),
        "elements written outside the groups' rows",
    ))
}

/// The models' decode shapes: the 1B's q/k/v and gate/up (one row; two requests at different layers, 1 and 8 rows),
/// SmolLM2's (k = 576, 9 k-blocks), an 8B-like q/k/v at the widest k (4,096), and a norm past the 16-byte pieces.
pub fn checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    let (bf16, swiglu) = (Epilogue::Bf16, Epilogue::SwiGlu);
    let cases: [Case; 9] = [
        (bf16, (3072, 2048), &[(5, 1, 1)]),
        (bf16, (3072, 2048), &[(0, 1, 2), (7, 8, 0)]),
        (swiglu, (16384, 2048), &[(3, 1, 2)]),
        (swiglu, (16384, 2048), &[(1, 3, 0)]),
        (bf16, (960, 576), &[(4, 1, 0), (2, 2, 1)]),
        (swiglu, (3072, 576), &[(0, 1, 1)]),
        (bf16, (6144, 4096), &[(6, 1, 2)]),
        (bf16, (2048, 2048), &[(9, 5, 1)]),
        (bf16, (512, 200), &[(2, 1, 0)]),
    ];
    cases
        .iter()
        .enumerate()
        .map(|(i, &(e, shape, problems))| check_normed(gpu, seed.wrapping_add(i as u64), e, shape, problems))
        .collect()
}
