//! The q/k/v product with RoPE in its epilogue (`gemm_sm90_*_rope_hd*`, v12: a prefill's whole segments rotated in
//! place by the product) against what it replaces: the product at the rule's width, then `rope` in place over the
//! rotated groups' rows. The contract is the same bytes, so the comparison is bitwise, at every head-aligned width
//! of the head dimension; each half of the reference has its own checks (`check/gemm_sm90.rs`, `check/rope.rs`
//! against the CPU). Fresh random rows and weights, groups of different layers and row counts (one off every tile
//! edge, one not rotated), C poisoned: every element outside the groups' rows must keep its poison.

use half::bf16;

use super::harness::{
    bf16_normal, bitwise, changed_outside, download_bf16, fail_if, poison_bits, poisoned_bf16, upload_bf16, upload_f32,
    Block, Check, SplitMix64,
};
use crate::gemm::GemmGroup;
use crate::gemm_sm90::gemm_sm90_nt_bf16_bf16_bf16;
use crate::gemm_sm90_rope::{launch_rope_at_width, RopeTables, ROPE_WIDTHS};
use crate::params::{Heads, Span};
use crate::reference::rope::RopeTable;
use crate::rope::rope;
use crate::{Gpu, KernelError};

/// Layers of the stacked weights of a check.
const LAYERS: usize = 3;

/// One launch per head-aligned width of groups `(rows, layer, rotated)` against the product + `rope`: heads
/// `(H, KV, hd)`, `k` the inner dimension, `theta` the table's base.
pub fn check_qkv_rope(
    gpu: &Gpu,
    seed: u64,
    (heads, kv_heads, head_dim): (usize, usize, usize),
    k: usize,
    problems: &[(usize, usize, bool)],
    theta: f64,
) -> Vec<Result<Check, KernelError>> {
    let heads = Heads {
        heads,
        kv_heads,
        head_dim,
    };
    ROPE_WIDTHS
        .iter()
        .filter(|&&(_, hd)| hd == head_dim)
        .map(|&(bn, _)| at_width(gpu, seed, heads, k, problems, theta, bn))
        .collect()
}

fn at_width(
    gpu: &Gpu,
    seed: u64,
    heads: Heads,
    k: usize,
    problems: &[(usize, usize, bool)],
    theta: f64,
    bn: usize,
) -> Result<Check, KernelError> {
    let stream = gpu.stream();
    let mut rng = SplitMix64::new(seed);
    let n = heads.qkv_width();
    // each group's rows after the previous one's and a spare row
    let mut first = Vec::new();
    let mut rows = 0;
    for &(m, _, _) in problems {
        first.push(rows);
        rows += m + 1;
    }
    let a_host = bf16_normal(&mut rng, rows * k, 1.0);
    let b_host = bf16_normal(&mut rng, LAYERS * n * k, 1.0 / (k as f64).sqrt());
    let (a, b) = (upload_bf16(stream, &a_host)?, upload_bf16(stream, &b_host)?);
    let positions = problems.iter().map(|p| p.0).max().unwrap_or(1);
    let table = RopeTable::new(heads.head_dim, theta, None, positions);
    let (cos, sin) = (upload_f32(stream, &table.cos)?, upload_f32(stream, &table.sin)?);
    let groups: Vec<GemmGroup> = problems
        .iter()
        .zip(&first)
        .map(|(&(m, layer, _), &row)| GemmGroup {
            a_offset: row * k,
            b_offset: layer * n * k,
            c_offset: row * n,
            m,
            n,
            k,
            lda: k,
            ldb: k,
            ldc: n,
        })
        .collect();
    let rotate: Vec<bool> = problems.iter().map(|p| p.2).collect();
    let spans: Vec<Span> = problems
        .iter()
        .zip(&first)
        .filter(|(p, _)| p.2)
        .map(|(&(m, layer, _), &row)| Span {
            in_row: row,
            out_row: row,
            rows: m,
            layer,
            ..Span::default()
        })
        .collect();
    let mut want = poisoned_bf16(gpu, stream, rows * n)?;
    gemm_sm90_nt_bf16_bf16_bf16(gpu, stream, &a, &b, &mut want, &groups)?;
    rope(gpu, stream, &mut want, n, &cos, &sin, &spans, None, heads)?;
    let tables = RopeTables {
        cos: &cos,
        sin: &sin,
        heads,
    };
    let mut got = poisoned_bf16(gpu, stream, rows * n)?;
    launch_rope_at_width(gpu, stream, (&a, &b), &mut got, &groups, &tables, &rotate, bn)?;
    let (got, want) = (download_bf16(stream, &got)?, download_bf16(stream, &want)?);
    let blocks: Vec<Block> = problems
        .iter()
        .zip(&first)
        .map(|(p, &row)| Block::rows(n, row, p.0, 0, n))
        .collect();
    let pick = |c: &[f32]| -> Vec<f32> { blocks.iter().flat_map(|b| b.gather(c)).collect() };
    let shape = format!(
        "heads {}/{} × {}, k={k}, groups (rows, layer, rotated) {problems:?}, BN {bn} vs the product + rope",
        heads.heads, heads.kv_heads, heads.head_dim
    );
    Ok(fail_if(
        bitwise("gemm_sm90_nt_bf16_bf16_bf16_rope", shape, &pick(&got), &pick(&want)),
        changed_outside(&got, &blocks, |_| poison_bits::<bf16>()),
        "elements written outside the groups' rows",
    ))
}

/// The models' prefill shapes: the 1B's q/k/v (two whole segments of 1,152 rows and a 300-row one not rotated),
/// LLaMA-160M's (12/12 heads, k = 768: a segment of 640 rows and a short one of 65), and a head dimension of 128
/// (Llama-3.2-3B's heads: 1,152 rows and 129 not rotated).
pub fn checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    let mut out = check_qkv_rope(
        gpu,
        seed,
        (32, 8, 64),
        2048,
        &[(1152, 1, true), (300, 0, false), (1152, 2, true)],
        500000.0,
    );
    out.extend(check_qkv_rope(
        gpu,
        seed ^ 1,
        (12, 12, 64),
        768,
        &[(640, 2, true), (65, 0, true)],
        10000.0,
    ));
    out.extend(check_qkv_rope(
        gpu,
        seed ^ 2,
        (24, 8, 128),
        3072,
        &[(1152, 0, true), (129, 1, false)],
        500000.0,
    ));
    out
}
