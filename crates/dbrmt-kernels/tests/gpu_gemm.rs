//! The grouped matrix products on a GPU: every check of `check::gemm` (each entry point against the f32 CPU
//! reference, and the bitwise grouping check), and the launchers' refusals with real buffers.

use dbrmt_kernels::check::gemm::{check_gemm_grouping, checks};
use dbrmt_kernels::check::{assert_suite_passes, fresh_seed};
use dbrmt_kernels::gemm::{
    gemm_nn_f32_f32_f32, gemm_nt_bf16_bf16_bf16, gemm_nt_bf16_bf16_f32, gemm_nt_f32_bf16_f32, gemm_tn_f32_f32_f32,
    GemmGroup, GemmKernel,
};
use dbrmt_kernels::params::MAX_GROUPS;
use dbrmt_kernels::{Gpu, KernelError};
use half::bf16;

fn seed() -> u64 {
    let seed = fresh_seed();
    eprintln!("seed {seed} (replay with DBRMT_SEED={seed})");
    seed
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn gemm_kernels_match_the_reference() {
    assert_suite_passes(checks);
}

/// Also inside `checks`; on its own so that a grouping failure is named by the test that fails.
#[test]
#[ignore = "needs a CUDA GPU"]
fn a_problem_gives_the_same_bits_alone_and_grouped() {
    let gpu = Gpu::new(0).expect("open GPU 0");
    let seed = seed();
    for kernel in GemmKernel::ALL {
        for accumulate in [false, true] {
            let check = check_gemm_grouping(&gpu, seed, kernel, accumulate).expect("grouping check ran");
            eprintln!("{check}");
            assert!(check.passed() && check.rel_err == 0.0, "{check}");
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn bad_groups_are_refused_before_launch() {
    let gpu = Gpu::new(0).expect("open GPU 0");
    let stream = gpu.stream();
    let (m, n, k) = (4, 8, 16);
    let a = stream.alloc_zeros::<bf16>(m * k).unwrap();
    let b = stream.alloc_zeros::<bf16>(n * k).unwrap();
    let mut c = stream.alloc_zeros::<bf16>(m * n).unwrap();
    let mut c32 = stream.alloc_zeros::<f32>(m * n).unwrap();
    let good = GemmGroup {
        m,
        n,
        k,
        lda: k,
        ldb: k,
        ldc: n,
        ..Default::default()
    };
    gemm_nt_bf16_bf16_bf16(&gpu, stream, &a, &b, &mut c, &[good], false).expect("a fitting group runs");

    let invalid = |r: Result<(), KernelError>| matches!(r, Err(KernelError::InvalidArgument { .. }));
    // One row too many for A (and C).
    let tall = GemmGroup { m: m + 1, ..good };
    assert!(invalid(gemm_nt_bf16_bf16_bf16(
        &gpu,
        stream,
        &a,
        &b,
        &mut c,
        &[tall],
        false
    )));
    assert!(invalid(gemm_nt_bf16_bf16_f32(
        &gpu,
        stream,
        &a,
        &b,
        &mut c32,
        &[tall],
        false
    )));
    // The same with an f32 A (f32 hidden rows): it fits as a bf16 A does, and one row too many is refused.
    let a32 = stream.alloc_zeros::<f32>(m * k).unwrap();
    gemm_nt_f32_bf16_f32(&gpu, stream, &a32, &b, &mut c32, &[good], true).expect("a fitting f32-A group runs");
    assert!(invalid(gemm_nt_f32_bf16_f32(
        &gpu,
        stream,
        &a32,
        &b,
        &mut c32,
        &[tall],
        false
    )));
    // B shifted by one element.
    let shifted = GemmGroup { b_offset: 1, ..good };
    assert!(invalid(gemm_nt_bf16_bf16_bf16(
        &gpu,
        stream,
        &a,
        &b,
        &mut c,
        &[shifted],
        false
    )));
    // No groups; more than one launch takes; two groups writing the same C.
    assert!(invalid(gemm_nt_bf16_bf16_bf16(
        &gpu,
        stream,
        &a,
        &b,
        &mut c,
        &[],
        false
    )));
    let empty = GemmGroup { m: 0, ..good };
    let many = vec![empty; MAX_GROUPS + 1];
    assert!(invalid(gemm_nt_bf16_bf16_bf16(
        &gpu, stream, &a, &b, &mut c, &many, false
    )));
    assert!(invalid(gemm_nt_bf16_bf16_bf16(
        &gpu,
        stream,
        &a,
        &b,
        &mut c,
        &[good, good],
        true
    )));
    // Only empty problems: nothing to do, not an error.
    gemm_nt_bf16_bf16_bf16(&gpu, stream, &a, &b, &mut c, &many[..MAX_GROUPS], false).expect("empty groups are a no-op");

    // f32 layouts: B is [k, n] (ldb ≥ n) and, for tn, A is stored [k, m] (lda ≥ m).
    let af = stream.alloc_zeros::<f32>(m * k).unwrap();
    let bf = stream.alloc_zeros::<f32>(k * n).unwrap();
    let nn = GemmGroup {
        m,
        n,
        k,
        lda: k,
        ldb: n,
        ldc: n,
        ..Default::default()
    };
    gemm_nn_f32_f32_f32(&gpu, stream, &af, &bf, &mut c32, &[nn], false).expect("nn fits");
    assert!(invalid(gemm_nn_f32_f32_f32(
        &gpu,
        stream,
        &af,
        &bf,
        &mut c32,
        &[GemmGroup { ldb: n - 1, ..nn }],
        false
    )));
    let tn = GemmGroup { lda: m, ..nn };
    gemm_tn_f32_f32_f32(&gpu, stream, &af, &bf, &mut c32, &[tn], true).expect("tn fits");
    assert!(invalid(gemm_tn_f32_f32_f32(
        &gpu,
        stream,
        &af,
        &bf,
        &mut c32,
        &[GemmGroup { k: k + 1, ..tn }],
        true
    )));
    stream.synchronize().unwrap();
}

/// The v2 GEMM (`cuda/gemm_sm90.cu`): every epilogue against the reference, off-tile shapes, stray writes, and a
/// cell alone vs grouped (bitwise).
#[test]
#[ignore = "needs a CUDA GPU"]
fn gemm_sm90_matches_the_reference_and_is_bitwise_alone_vs_grouped() {
    assert_suite_passes(dbrmt_kernels::check::gemm_sm90::checks);
}

/// The decode tiles (v5; also inside the suite above, here so that a failure names them): one problem set at every
/// tile width gives the same bytes, and decode rows launched alone (the narrow widths) have the bits of the same rows
/// inside a 1152-row segment (a wide width). A failure here invalidates the decode tiles: `DBRMT_DECODE_TILES=off`.
#[test]
#[ignore = "needs a CUDA GPU"]
fn gemm_sm90_bytes_do_not_depend_on_the_tile_width() {
    assert_suite_passes(dbrmt_kernels::check::gemm_sm90::width_checks);
    assert_suite_passes(dbrmt_kernels::check::gemm_sm90::decode_checks);
}

/// The normed entries (v9: a decode step's RMSNorm inside the q/k/v and gate/up launches): the bytes of `rms_norm`
/// + the unnormed launch, nothing written outside the groups. A failure here: `DBRMT_DECODE_NORM=off`.
#[test]
#[ignore = "needs a CUDA GPU"]
fn gemm_sm90_normed_matches_rms_norm_then_the_gemm() {
    assert_suite_passes(dbrmt_kernels::check::gemm_sm90_normed::checks);
}

/// The q/k/v product with a prefill's RoPE in its epilogue (v12): the bytes of the product + `rope` in place at every
/// head-aligned width, nothing written outside the groups. A failure here: `DBRMT_QKV_ROPE=off`.
#[test]
#[ignore = "needs a CUDA GPU"]
fn gemm_sm90_rope_matches_the_gemm_then_rope() {
    assert_suite_passes(dbrmt_kernels::check::gemm_sm90_rope::checks);
}

/// The bf16 mirror of f32 output (v7; also inside the suite above): C unchanged, the mirror bf16(C) bitwise, nothing
/// written outside the groups, at every width.
#[test]
#[ignore = "needs a CUDA GPU"]
fn gemm_sm90_mirror_is_bf16_of_c() {
    assert_suite_passes(dbrmt_kernels::check::gemm_sm90::mirror_checks);
}

/// Whether a product's bits depend on which operand is the wgmma's A (a probe for a swapped decode kernel; not in the
/// suite: it checks the hardware, not a kernel of ours).
#[test]
#[ignore = "needs a CUDA GPU"]
fn gemm_sm90_swapped_operands_probe() {
    assert_suite_passes(dbrmt_kernels::check::gemm_sm90::swap_probes);
}

/// The memory path's tensor-core products (`cuda/gemm_tf32x3_sm90.cu`, 3×TF32): within the f32 tolerance, bitwise
/// alone vs grouped.
#[test]
#[ignore = "needs a CUDA GPU"]
fn gemm_tf32x3_matches_the_f32_reference() {
    assert_suite_passes(dbrmt_kernels::check::gemm_tf32x3_sm90::checks);
}

/// Decode rows of several requests in one group (also inside the suites; here so a failure names it): a row's bits
/// alone vs at every position of a merged tile, and the engine's merged path (one group + copy_rows / add_rows)
/// against one group per request — v1 and v2.
#[test]
#[ignore = "needs a CUDA GPU"]
fn merged_rows_are_bitwise_the_rows_alone() {
    assert_suite_passes(dbrmt_kernels::check::gemm::row_checks);
    assert_suite_passes(dbrmt_kernels::check::gemm_sm90::row_checks);
}
