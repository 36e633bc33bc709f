//! The row kernels of the decoder layer (RMSNorm, RoPE, causal GQA attention, SwiGLU, segment embedding) on a GPU,
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

fn span(in_row: usize, out_row: usize, rows: usize, layer: usize) -> Span {
    Span {
        in_row,
        out_row,
        rows,
        layer,
        flag: false,
        state: layer,
    }
}

fn assert_invalid(what: &str, r: Result<(), KernelError>) {
    match r {
        Err(KernelError::InvalidArgument { kernel, msg }) => println!("{what}: {kernel}: {msg}"),
        other => panic!("{what}: expected InvalidArgument, got {other:?}"),
    }
}

/// Spans that do not fit their buffers are refused before any launch (a device fault would poison the context,
/// and the launches after these would fail).
#[test]
#[ignore = "needs a CUDA GPU"]
fn launchers_refuse_what_does_not_fit() {
    use dbrmt_kernels::{
        attention::attention_causal, embed::embed_segment, rms_norm::rms_norm, rope::rope, swiglu::swiglu,
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
    assert_invalid(
        "norm: layer past the weights",
        rms_norm(&gpu, stream, &x, d, &w, &mut y, d, &[span(0, 0, 2, 2)], d, 1e-5),
    );
    assert_invalid(
        "norm: stride below d",
        rms_norm(&gpu, stream, &x, d - 1, &w, &mut y, d, &[span(0, 0, 2, 0)], d, 1e-5),
    );
    assert_invalid(
        "norm: overlapping outputs",
        rms_norm(
            &gpu,
            stream,
            &x,
            d,
            &w,
            &mut y,
            d,
            &[span(0, 0, 3, 0), span(4, 2, 3, 1)],
            d,
            1e-5,
        ),
    );
    assert_invalid(
        "norm: no spans",
        rms_norm(&gpu, stream, &x, d, &w, &mut y, d, &[], d, 1e-5),
    );
    let many = vec![span(0, 0, 0, 0); 65];
    assert_invalid(
        "norm: 65 spans",
        rms_norm(&gpu, stream, &x, d, &w, &mut y, d, &many, d, 1e-5),
    );

    // RoPE: 2 q heads + 1 k head + 1 v head of 32 = 128 columns; tables for 4 positions.
    let mut qkv = buf(rows * 128);
    let table = stream.alloc_zeros::<f32>(4 * 16).unwrap();
    assert_invalid(
        "rope: not in place",
        rope(
            &gpu,
            stream,
            &mut qkv,
            128,
            &table,
            &table,
            &[span(0, 1, 2, 0)],
            &[0],
            2,
            1,
            32,
        ),
    );
    assert_invalid(
        "rope: more rows than positions",
        rope(
            &gpu,
            stream,
            &mut qkv,
            128,
            &table,
            &table,
            &[span(0, 0, 5, 0)],
            &[0],
            2,
            1,
            32,
        ),
    );
    assert_invalid(
        "rope: odd head_dim",
        rope(
            &gpu,
            stream,
            &mut qkv,
            128,
            &table,
            &table,
            &[span(0, 0, 2, 0)],
            &[0],
            2,
            1,
            31,
        ),
    );

    assert_invalid(
        "rope: start + rows past the tables",
        rope(
            &gpu,
            stream,
            &mut qkv,
            128,
            &table,
            &table,
            &[span(0, 0, 2, 0)],
            &[3],
            2,
            1,
            32,
        ),
    );
    assert_invalid(
        "rope: starts not one per span",
        rope(
            &gpu,
            stream,
            &mut qkv,
            128,
            &table,
            &table,
            &[span(0, 0, 2, 0)],
            &[],
            2,
            1,
            32,
        ),
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
            &[span(0, 0, 2, 0)],
            &[rows - 1],
            2,
            1,
            32,
            0.1,
        ),
    );
    assert_invalid(
        "attention: starts not one per span",
        attention_causal(
            &gpu,
            stream,
            &qkv,
            128,
            &mut out,
            64,
            &[span(0, 0, 2, 0)],
            &[0, 0],
            2,
            1,
            32,
            0.1,
        ),
    );
    assert_invalid(
        "attention: head_dim 96",
        attention_causal(
            &gpu,
            stream,
            &qkv,
            128,
            &mut out,
            64,
            &[span(0, 0, 2, 0)],
            &[0],
            2,
            1,
            96,
            0.1,
        ),
    );
    assert_invalid(
        "attention: heads not a multiple of kv_heads",
        attention_causal(
            &gpu,
            stream,
            &qkv,
            128,
            &mut out,
            64,
            &[span(0, 0, 2, 0)],
            &[0],
            3,
            2,
            32,
            0.1,
        ),
    );
    assert_invalid(
        "attention: q/k/v wider than the stride",
        attention_causal(
            &gpu,
            stream,
            &qkv,
            128,
            &mut out,
            64,
            &[span(0, 0, 2, 0)],
            &[0],
            2,
            2,
            32,
            0.1,
        ),
    );
    assert_invalid(
        "attention: odd stride",
        attention_causal(
            &gpu,
            stream,
            &qkv,
            127,
            &mut out,
            64,
            &[span(0, 0, 2, 0)],
            &[0],
            2,
            1,
            32,
            0.1,
        ),
    );
    assert_invalid(
        "attention: output rows past the end",
        attention_causal(
            &gpu,
            stream,
            &qkv,
            128,
            &mut out,
            64,
            &[span(0, 9, 2, 0)],
            &[0],
            2,
            1,
            32,
            0.1,
        ),
    );

    assert_invalid(
        "swiglu: gate/up wider than the stride",
        swiglu(&gpu, stream, &x, d, &mut y, d, &[span(0, 0, 2, 0)], 40),
    );

    let ids = stream.alloc_zeros::<u32>(8).unwrap();
    let embed = buf(100 * d);
    let memory = buf(3 * d);
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
    assert_invalid(
        "embed: ids past the end",
        embed_segment(
            &gpu,
            stream,
            &ids,
            &embed,
            &memory,
            &mut hidden,
            &[span(6, 0, 3, 0)],
            d,
            100,
        ),
    );
    assert_invalid(
        "embed: vocab beyond the table",
        embed_segment(
            &gpu,
            stream,
            &ids,
            &embed,
            &memory,
            &mut hidden,
            &[span(0, 0, 2, 0)],
            d,
            101,
        ),
    );
    assert_invalid(
        "embed: text and memory rows of two spans overlap",
        embed_segment(
            &gpu,
            stream,
            &ids,
            &embed,
            &memory,
            &mut hidden,
            &[span(0, 0, 2, 0), span(2, 4, 1, 0)],
            d,
            100,
        ),
    );

    // After all that, a valid launch still works (nothing faulted the context).
    rms_norm(&gpu, stream, &x, d, &w, &mut y, d, &[span(0, 0, rows, 1)], d, 1e-5).expect("a valid launch");
    stream.synchronize().expect("no fault");
}
