//! The decode MLP launch (`gemm_sm90_decode_mlp`, v13: a decode step's norm, gate/up + SwiGLU, down and residual in
//! one cooperative launch) against the launches it replaces: the norm and the SwiGLU product (whose bytes the normed
//! launch has: `check/gemm_sm90_normed.rs`), then down's f32 launch accumulating into the hidden rows (and their bf16
//! mirror). The contract is the same bytes, so the comparison is bitwise over everything the launch writes (the
//! groups' activation and mirror rows, every hidden row), and every other element of the activations and the mirror
//! must keep its poison; each launch of the reference has its own f32 CPU check. The launch runs twice, on fresh
//! copies, and the blocks' barrier must be back at zero arrivals after each (its generation counts the launches).

use half::bf16;

use super::harness::{
    bf16_normal, bitwise, changed_outside, differing_bits, download_bf16, download_f32, f32_normal, fail_if,
    poison_bits, poisoned_bf16, upload_bf16, upload_f32, Block, Check, SplitMix64,
};
use crate::gemm::GemmGroup;
use crate::gemm_sm90::{
    gemm_sm90_nt_bf16_bf16_f32, gemm_sm90_nt_bf16_bf16_f32_mirrored, gemm_sm90_nt_bf16_bf16_swiglu,
};
use crate::gemm_sm90_decode_mlp::{gemm_sm90_decode_mlp, DecodeMlp};
use crate::params::Span;
use crate::rms_norm::rms_norm;
use crate::{Gpu, KernelError};

/// Layers of the stacked weights (request `r` uses its own layer).
const LAYERS: usize = 2;

/// A case: `(d, I)`, the requests as `(hidden row, rows, layer)`, and whether down mirrors the hidden rows.
type Case = ((usize, usize), &'static [(usize, usize, usize)], bool);

/// One decode MLP launch of `(d, inter)` over `requests` against the normed SwiGLU + down launches.
pub fn check_decode_mlp(
    gpu: &Gpu,
    seed: u64,
    (d, inter): (usize, usize),
    requests: &[(usize, usize, usize)],
    mirrored: bool,
) -> Result<Check, KernelError> {
    let stream = gpu.stream();
    let mut rng = SplitMix64::new(seed);
    let x_ld = d;
    let rows = requests.iter().map(|&(r, m, _)| r + m).max().unwrap_or(0) + 2;
    // hidden rows of very different scales, as the residual stream's
    let mut x_host = f32_normal(&mut rng, rows * x_ld, 1.0);
    for (r, row) in x_host.chunks_mut(x_ld).enumerate() {
        let scale = 10f32.powi((r % 5) as i32 - 2);
        row.iter_mut().for_each(|v| *v *= scale);
    }
    let w_host: Vec<f32> = bf16_normal(&mut rng, LAYERS * d, 0.25)
        .iter()
        .map(|v| 1.0 + v)
        .collect();
    let gu_host = bf16_normal(&mut rng, LAYERS * 2 * inter * d, 1.0 / (d as f64).sqrt());
    let dn_host = bf16_normal(&mut rng, LAYERS * d * inter, 1.0 / (inter as f64).sqrt());
    let (w, gate_up, down) = (
        upload_bf16(stream, &w_host)?,
        upload_bf16(stream, &gu_host)?,
        upload_bf16(stream, &dn_host)?,
    );
    let gu_groups: Vec<GemmGroup> = requests
        .iter()
        .map(|&(row, m, layer)| GemmGroup {
            a_offset: row * d,
            b_offset: layer * 2 * inter * d,
            c_offset: row * inter,
            m,
            n: 2 * inter,
            k: d,
            lda: d,
            ldb: d,
            ldc: inter,
        })
        .collect();
    let dn_groups: Vec<GemmGroup> = requests
        .iter()
        .map(|&(row, m, layer)| GemmGroup {
            a_offset: row * inter,
            b_offset: layer * d * inter,
            c_offset: row * x_ld,
            m,
            n: d,
            k: inter,
            lda: inter,
            ldb: inter,
            ldc: x_ld,
        })
        .collect();
    let norm_rows: Vec<(usize, usize)> = requests.iter().map(|&(r, _, layer)| (r, layer)).collect();
    let eps = 1e-5;

    // apart: rms_norm and the SwiGLU launch (the normed launch's bytes, at any group shape), then down
    // accumulating into the hidden rows
    let mut want_x = upload_f32(stream, &x_host)?;
    let mut want_act = poisoned_bf16(gpu, stream, rows * inter)?;
    let mut want_mirror = poisoned_bf16(gpu, stream, rows * x_ld)?;
    let mut normed = poisoned_bf16(gpu, stream, rows * d)?;
    let spans: Vec<Span> = requests
        .iter()
        .map(|&(row, m, layer)| Span {
            in_row: row,
            out_row: row,
            rows: m,
            layer,
            ..Span::default()
        })
        .collect();
    rms_norm(gpu, stream, &want_x, x_ld, &w, &mut normed, d, &spans, d, eps)?;
    gemm_sm90_nt_bf16_bf16_swiglu(gpu, stream, &normed, &gate_up, &mut want_act, &gu_groups)?;
    if mirrored {
        let out = (&mut want_x, &mut want_mirror);
        gemm_sm90_nt_bf16_bf16_f32_mirrored(gpu, stream, &want_act, &down, out, &dn_groups, true)?;
    } else {
        gemm_sm90_nt_bf16_bf16_f32(gpu, stream, &want_act, &down, &mut want_x, &dn_groups, true)?;
    }
    let want = (
        download_bf16(stream, &want_act)?,
        download_f32(stream, &want_x)?,
        download_bf16(stream, &want_mirror)?,
    );
    // what the launch writes: the groups' activation rows, every hidden row (the rest keeps its values), and the
    // groups' mirror rows when mirrored; everything else of act and the mirror keeps its poison
    let act_blocks: Vec<Block> = requests
        .iter()
        .map(|&(row, m, _)| Block::rows(inter, row, m, 0, inter))
        .collect();
    let mirror_blocks: Vec<Block> = match mirrored {
        true => requests
            .iter()
            .map(|&(row, m, _)| Block::rows(x_ld, row, m, 0, d))
            .collect(),
        false => Vec::new(),
    };
    let written = |v: &(Vec<f32>, Vec<f32>, Vec<f32>)| -> Vec<f32> {
        let act = act_blocks.iter().flat_map(|b| b.gather(&v.0));
        let mirror = mirror_blocks.iter().flat_map(|b| b.gather(&v.2));
        act.chain(v.1.iter().copied()).chain(mirror).collect()
    };
    let outside = |v: &(Vec<f32>, Vec<f32>, Vec<f32>)| -> usize {
        let poison = |_| poison_bits::<bf16>();
        changed_outside(&v.0, &act_blocks, poison) + changed_outside(&v.2, &mirror_blocks, poison)
    };

    let mut barrier = stream.alloc_zeros::<u32>(2)?;
    let mut got = Vec::new();
    let mut barrier_bad = 0usize;
    for launch in 1..=2u32 {
        let mut x = upload_f32(stream, &x_host)?;
        let mut act = poisoned_bf16(gpu, stream, rows * inter)?;
        let mut mirror = poisoned_bf16(gpu, stream, rows * x_ld)?;
        let mlp = DecodeMlp {
            hidden: &mut x,
            x_ld,
            mirror: mirrored.then_some(&mut mirror),
            norm_w: &w,
            eps,
            norm_rows: &norm_rows,
            gate_up: &gate_up,
            down: &down,
            act: &mut act,
            barrier: &mut barrier,
        };
        gemm_sm90_decode_mlp(gpu, stream, mlp, &gu_groups, &dn_groups)?;
        let out = (
            download_bf16(stream, &act)?,
            download_f32(stream, &x)?,
            download_bf16(stream, &mirror)?,
        );
        got.push((written(&out), outside(&out)));
        let words = stream.clone_dtoh(&barrier)?;
        barrier_bad += usize::from(words != [0, launch]);
    }
    let ms: Vec<usize> = requests.iter().map(|r| r.1).collect();
    let shape = format!("d={d} I={inter} rows {ms:?} mirror {mirrored}, vs the normed SwiGLU + down");
    let want = written(&want);
    let check = bitwise::<f32>("gemm_sm90_decode_mlp", shape, &want, &got[1].0);
    let first_differs = differing_bits::<f32>(&want, &got[0].0);
    let check = fail_if(
        check,
        first_differs,
        "elements of the first launch differing from the launches apart",
    );
    let check = fail_if(check, got[0].1 + got[1].1, "elements written outside the groups' rows");
    Ok(fail_if(
        check,
        barrier_bad,
        "launches after which the barrier was not (0 arrivals, that many generations)",
    ))
}

/// The models' decode MLPs: the 1B's (one request; two at different layers, 1 and 8 rows), SmolLM2's (more down
/// tiles than gate/up tiles), the 3B's (more down tiles than SMs), more gate/up tiles than SMs, and a norm and a
/// down product past whole k-blocks and tiles (d = 200: a partial last stage and a partial last column tile).
pub fn checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    let cases: [Case; 7] = [
        ((2048, 8192), &[(3, 1, 1)], true),
        ((2048, 8192), &[(0, 1, 1), (5, 8, 0)], true),
        ((576, 1536), &[(2, 1, 1)], false),
        ((576, 1536), &[(1, 1, 0), (4, 1, 1)], true),
        ((3072, 8192), &[(0, 1, 1)], true),
        ((1024, 9216), &[(6, 2, 0)], true),
        ((200, 192), &[(1, 3, 1)], false),
    ];
    cases
        .iter()
        .enumerate()
        .map(|(i, &(shape, requests, mirrored))| {
            check_decode_mlp(gpu, seed.wrapping_add(i as u64), shape, requests, mirrored)
        })
        .collect()
}
