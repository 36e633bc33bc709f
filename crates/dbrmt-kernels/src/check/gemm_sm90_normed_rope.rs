//! The normed q/k/v entries with RoPE (`gemm_sm90_*_normed_rope`, v11: a decode step's RMSNorm, q/k/v product and
//! RoPE in one launch, its rows written into the KV cache) against what they replace: the normed launch into scratch
//! rows, then `rope` moving them into the cache rows at the positions the device holds. The contract is the same
//! bytes, so the comparison is bitwise; each half of the reference has its own checks (`check/gemm_sm90_normed.rs`,
//! `check/rope.rs` against the CPU). Fresh random rows, norm weights and weights; the whole q/k/v buffer poisoned, and
//! every element but the rows the fused launch writes must keep its poison (the scratch rows included: it never
//! writes them). Dynamic positions below their bound, static ones, several problems of different layers, and the L2
//! prefetch beside it.

use half::bf16;

use super::harness::{
    bf16_normal, bitwise, changed_outside, download_bf16, f32_normal, fail_if, poison_bits, poisoned_bf16, upload_bf16,
    upload_f32, Block, Check, SplitMix64,
};
use crate::gemm::GemmGroup;
use crate::gemm_sm90::{decode_tiles_enabled, gemm_sm90_nt_normed, Epilogue, NormedRows};
use crate::gemm_sm90_rope::{gemm_sm90_nt_normed_rope, normed_rope_width, RopeRows};
use crate::params::{Heads, Span};
use crate::reference::rope::RopeTable;
use crate::rope::{rope, L2Prefetch};
use crate::{Gpu, KernelError};

/// Layers of the stacked weights of a check.
const LAYERS: usize = 3;

/// A problem: its x row, rows, layer, the rows its cache holds, and whether that position is read on the device
/// (then the launch is told a bound 3 rows further).
type Problem = (usize, usize, usize, usize, bool);

/// One fused launch of `problems` against the normed launch + `rope`: heads `(H, KV, hd)`, `k` the norm's width;
/// `prefetch`: also an L2 prefetch of that many random weight rows of `k` (bits unchanged).
pub fn check_normed_rope(
    gpu: &Gpu,
    seed: u64,
    (heads, kv_heads, head_dim): (usize, usize, usize),
    k: usize,
    problems: &[Problem],
    prefetch: Option<usize>,
) -> Result<Check, KernelError> {
    let stream = gpu.stream();
    let mut rng = SplitMix64::new(seed);
    let heads = Heads {
        heads,
        kv_heads,
        head_dim,
    };
    let n = heads.qkv_width();
    let (x_ld, ld) = (k + 8, n + 8);
    let x_rows = problems.iter().map(|p| p.0 + p.1).max().unwrap_or(0) + 2;
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
    // rows: 9 scratch rows a problem, then each problem's segment (its cached rows, the bound, its rows, a spare)
    let scratch = 9 * problems.len();
    let seg = problems.iter().map(|p| p.3 + 3 + p.1 + 1).max().unwrap_or(1);
    let rows_total = scratch + seg * problems.len();
    let table = RopeTable::new(head_dim, 500000.0, None, seg);
    let (cos, sin) = (upload_f32(stream, &table.cos)?, upload_f32(stream, &table.sin)?);
    let mut positions_host = vec![-1i32; problems.len() + 1];
    let mut groups = Vec::new();
    let mut spans = Vec::new();
    for (i, &(_, m, layer, cached, dynamic)) in problems.iter().enumerate() {
        groups.push(GemmGroup {
            a_offset: 0,
            b_offset: layer * n * k,
            c_offset: 9 * i * ld,
            m,
            n,
            k,
            lda: k,
            ldb: k,
            ldc: ld,
        });
        spans.push(Span {
            in_row: 9 * i,
            out_row: scratch + seg * i,
            rows: m,
            layer,
            state: i + 1,
            pos: if dynamic { cached + 3 } else { cached },
            dynamic,
            ..Span::default()
        });
        positions_host[i + 1] = cached as i32;
    }
    let positions = stream.clone_htod(&positions_host)?;
    let norm_rows: Vec<(usize, usize)> = problems.iter().map(|p| (p.0, p.2)).collect();
    let a = NormedRows {
        x: &x,
        x_ld,
        w: &w,
        eps: 1e-5,
        rows: &norm_rows,
    };
    let mut want = poisoned_bf16(gpu, stream, rows_total * ld)?;
    gemm_sm90_nt_normed(gpu, stream, &a, &b, &mut want, &groups, Epilogue::Bf16)?;
    rope(gpu, stream, &mut want, ld, &cos, &sin, &spans, Some(&positions), heads)?;

    let weights = match prefetch {
        Some(rows) => Some(upload_bf16(stream, &bf16_normal(&mut rng, rows * k, 1.0))?),
        None => None,
    };
    let pf = weights.as_ref().zip(prefetch).map(|(buf, rows)| L2Prefetch {
        buf,
        first_row: 0,
        rows,
        row_len: k,
        prefix: k,
    });
    let rp = RopeRows {
        cos: &cos,
        sin: &sin,
        spans: &spans,
        positions: Some(&positions),
        heads,
        prefetch: pf.as_ref(),
    };
    let mut got = poisoned_bf16(gpu, stream, rows_total * ld)?;
    gemm_sm90_nt_normed_rope(gpu, stream, &a, &b, &mut got, &groups, &rp)?;
    let (got, want) = (download_bf16(stream, &got)?, download_bf16(stream, &want)?);

    let written: Vec<Block> = problems
        .iter()
        .enumerate()
        .map(|(i, &(_, m, _, cached, _))| Block::rows(ld, scratch + seg * i + cached, m, 0, n))
        .collect();
    let pick = |c: &[f32]| -> Vec<f32> { written.iter().flat_map(|b| b.gather(c)).collect() };
    let width = normed_rope_width(&groups, heads, gpu.sm_count(), decode_tiles_enabled());
    let ms: Vec<usize> = problems.iter().map(|p| p.1).collect();
    let shape = format!(
        "heads {}/{} × {head_dim}, k={k}, rows {ms:?} (BN {width:?}){} vs the normed launch + rope",
        heads.heads,
        heads.kv_heads,
        if prefetch.is_some() {
            ", an L2 prefetch beside it"
        } else {
            ""
        }
    );
    Ok(fail_if(
        bitwise(
            "gemm_sm90_nt_bf16_bf16_bf16_normed_rope",
            shape,
            &pick(&got),
            &pick(&want),
        ),
        changed_outside(&got, &written, |_| poison_bits::<bf16>()),
        "elements written outside the rows RoPE moves into the cache",
    ))
}

/// The models' decode shapes at every width the rule gives them: the 1B's q/k/v (BN 32; one row at a device-held
/// position, and two problems of 1 and 8 rows, one static), SmolLM2's (k = 576, 9 k-blocks; with the L2 prefetch of
/// its gate/up rows), an 8B-like head dim 128 at the widest k (BN 64), and head dim 32 (BN 16 and 32).
pub fn checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    CASES
        .iter()
        .enumerate()
        .map(|(i, &(h, k, problems, pf))| check_normed_rope(gpu, seed.wrapping_add(i as u64), h, k, problems, pf))
        .collect()
}

/// A case of [`checks`]: heads `(H, KV, hd)`, `k`, the problems, the prefetch.
type Case = ((usize, usize, usize), usize, &'static [Problem], Option<usize>);

const CASES: [Case; 7] = [
    ((32, 8, 64), 2048, &[(5, 1, 1, 1000, true)], None),
    ((32, 8, 64), 2048, &[(0, 1, 2, 17, true), (7, 8, 0, 0, false)], None),
    ((9, 3, 64), 576, &[(4, 1, 0, 63, true), (2, 2, 1, 5, false)], None),
    ((9, 3, 64), 576, &[(1, 1, 2, 1151, true)], Some(3072)),
    ((32, 8, 128), 4096, &[(6, 1, 2, 300, true)], None),
    ((8, 4, 32), 512, &[(3, 1, 1, 40, true), (0, 3, 0, 2, true)], None),
    ((4, 2, 32), 256, &[(2, 3, 2, 9, true)], Some(100)),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// On an H200's 132 SMs the cases take every `_normed_rope` entry.
    #[test]
    fn the_cases_take_every_rope_width() {
        let mut widths: Vec<usize> = CASES
            .iter()
            .map(|&((heads, kv_heads, head_dim), k, problems, _)| {
                let heads = Heads {
                    heads,
                    kv_heads,
                    head_dim,
                };
                let g = |&(_, m, _, _, _): &Problem| GemmGroup {
                    a_offset: 0,
                    b_offset: 0,
                    c_offset: 0,
                    m,
                    n: heads.qkv_width(),
                    k,
                    lda: k,
                    ldb: k,
                    ldc: heads.qkv_width(),
                };
                let groups: Vec<GemmGroup> = problems.iter().map(g).collect();
                normed_rope_width(&groups, heads, 132, true).expect("a case the fused launch takes")
            })
            .collect();
        widths.sort_unstable();
        widths.dedup();
        assert_eq!(widths, [16, 32, 64]);
    }
}
