//! The row kernels of the decoder layer (RMSNorm, the f32 → bf16 rounding, RoPE, causal GQA attention, SwiGLU, segment embedding) and the
//! greedy ids of the logits (argmax) on a GPU,
//! against their f32 CPU references, and their launchers' argument checks.
//!
//! Every check draws fresh random inputs from the printed seed; replay a failure with `DBRMT_SEED=<seed>`.

use dbrmt_kernels::check::assert_suite_passes;
use dbrmt_kernels::params::Span;
use dbrmt_kernels::{check, Gpu, KernelError};
use half::bf16;

#[test]
#[ignore = "needs a CUDA GPU"]
fn rms_norm_matches_reference() {
    assert_suite_passes(check::rms_norm::checks);
}

/// The f32 → bf16 rounding of the rows the memory projections read: bit for bit.
#[test]
#[ignore = "needs a CUDA GPU"]
fn to_bf16_matches_reference() {
    assert_suite_passes(check::to_bf16::checks);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn rope_matches_reference() {
    assert_suite_passes(check::rope::checks);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn attention_matches_reference() {
    assert_suite_passes(check::attention::checks);
}

/// The tensor-core attention (`cuda/attention_sm90.cu`): the same cases, bitwise alone vs grouped and decode rows
/// equal to the same rows inside their whole span.
#[test]
#[ignore = "needs a CUDA GPU"]
fn attention_sm90_matches_reference() {
    assert_suite_passes(check::attention::checks_sm90);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn swiglu_matches_reference() {
    assert_suite_passes(check::swiglu::checks);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn embed_matches_reference() {
    assert_suite_passes(check::embed::checks);
}

/// Greedy ids of logit rows: every id equal to the host's argmax (ties, NaNs, infinities, signed zeros planted).
#[test]
#[ignore = "needs a CUDA GPU"]
fn argmax_rows_matches_the_host() {
    assert_suite_passes(check::argmax_rows::checks);
}

fn span(in_row: usize, out_row: usize, rows: usize, layer: usize) -> Span {
    Span {
        in_row,
        out_row,
        rows,
        layer,
        state: layer,
        ..Span::default()
    }
}

fn assert_invalid(what: &str, r: Result<(), KernelError>) {
    match r {
        Err(KernelError::InvalidArgument { kernel, msg }) => println!("{what}: {kernel}: {msg}"),
        other => panic!("{what}: expected InvalidArgument, got {other:?}"),
    }
}

/// Each launcher validates its real buffers before any launch (every refusal is unit-tested on the CPU, in the
/// launcher's `validate`; here one per launcher shows the launch goes through it), and a refused launch leaves the
/// context usable: a device fault would poison it, and the launches after these would fail.
#[test]
#[ignore = "needs a CUDA GPU"]
fn launchers_refuse_what_does_not_fit() {
    use dbrmt_kernels::{
        attention::attention_causal, embed::embed_segment, params::Heads, rms_norm::rms_norm, rope::rope,
        swiglu::swiglu,
    };

    let gpu = Gpu::new(0).expect("open GPU 0");
    let stream = gpu.stream();
    let buf = |n: usize| stream.alloc_zeros::<bf16>(n).unwrap();
    let (d, rows) = (64, 10);
    let x = buf(rows * d);
    let w = buf(2 * d);
    let mut y = buf(rows * d);
    assert_invalid(
        "norm: rows past the end",
        rms_norm(&gpu, stream, &x, d, &w, &mut y, d, &[span(5, 0, 6, 0)], d, 1e-5),
    );

    // RoPE and attention: 2 q heads + 1 k head + 1 v head of 32 = 128 columns; tables for 4 positions.
    let heads = Heads {
        heads: 2,
        kv_heads: 1,
        head_dim: 32,
    };
    let mut qkv = buf(rows * 128);
    let table = stream.alloc_zeros::<f32>(4 * 16).unwrap();
    let from = |pos| Span {
        pos,
        ..span(0, 0, 2, 0)
    };
    // RoPE in place: rows pos.. of a segment from row 0
    let rotate = |pos| Span {
        pos,
        ..span(pos, 0, 2, 0)
    };
    assert_invalid(
        "rope: pos + rows past the tables",
        rope(&gpu, stream, &mut qkv, 128, &table, &table, &[rotate(3)], None, heads),
    );
    let dynamic = Span {
        dynamic: true,
        ..rotate(2)
    };
    assert_invalid(
        "rope: a dynamic span without positions",
        rope(&gpu, stream, &mut qkv, 128, &table, &table, &[dynamic], None, heads),
    );
    let mut out = buf(rows * 64);
    assert_invalid(
        "attention: cached rows + new rows past the end of qkv",
        attention_causal(
            &gpu,
            stream,
            &qkv,
            128,
            &mut out,
            64,
            &[from(rows - 1)],
            None,
            heads,
            0.1,
        ),
    );
    assert_invalid(
        "swiglu: gate/up wider than the stride",
        swiglu(&gpu, stream, &x, d, &mut y, d, &[span(0, 0, 2, 0)], 40),
    );
    let ids = stream.alloc_zeros::<u32>(8).unwrap();
    let (embed, memory) = (buf(100 * d), buf(3 * d));
    let mut hidden = buf(rows * d);
    assert_invalid(
        "embed: memory rows past the end",
        embed_segment(
            &gpu,
            stream,
            &ids,
            &embed,
            &memory,
            &mut hidden,
            &[span(0, 2, 6, 0)],
            d,
            100,
        ),
    );

    // After all that, valid launches still work (nothing faulted the context).
    rms_norm(&gpu, stream, &x, d, &w, &mut y, d, &[span(0, 0, rows, 1)], d, 1e-5).expect("a valid launch");
    rope(&gpu, stream, &mut qkv, 128, &table, &table, &[rotate(2)], None, heads).expect("a valid launch");
    attention_causal(
        &gpu,
        stream,
        &qkv,
        128,
        &mut out,
        64,
        &[from(rows - 2)],
        None,
        heads,
        0.1,
    )
    .expect("a valid launch");
    stream.synchronize().expect("no fault");
}

/// The row moves of merged decode rows (`cuda/rows.cu`): a copy keeps the bits, the add is the host's f32 add.
#[test]
#[ignore = "needs a CUDA GPU"]
fn row_moves_match_the_host() {
    assert_suite_passes(check::rows::checks);
}
