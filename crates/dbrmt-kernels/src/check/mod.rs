//! Each kernel against its f32 CPU reference, on fresh random inputs, with poisoned outputs.
//!
//! One check per kernel and shape, returning a [`Check`]: the GPU tests (`tests/gpu_*.rs`) assert on them and
//! `dbrmt selftest` prints them as a table, so both run exactly the same comparison. Inputs are rounded to bf16
//! once and the reference sees the same rounded values, so the tolerance measures the kernel's arithmetic only.
//!
//! One file per op, named as the op's kernel file (`cuda/rms_norm.cu` ↔ `check/rms_norm.rs`), each built from the
//! one kit of [`harness`] (inputs, layouts, poisoned outputs, comparisons, the GPU tests' result loop).

use crate::{Gpu, KernelError};

pub mod argmax_rows;
pub mod armt_read;
pub mod armt_read_fused_sm90;
pub mod armt_state_split;
pub mod armt_write;
pub mod attention;
pub mod dpfp;
pub mod embed;
pub mod gemm;
pub mod gemm_rows;
pub mod gemm_sm90;
pub mod gemm_sm90_normed;
pub mod gemm_sm90_rope;
pub mod gemm_tf32x3_sm90;
pub mod harness;
pub mod rms_norm;
pub mod rope;
pub mod rows;
pub mod swiglu;
pub mod to_bf16;

/// One kernel's checks at all its shapes.
pub type Suite = fn(&Gpu, u64) -> Vec<Result<Check, KernelError>>;

/// Every kernel's checks, in the order of a step (embed, norm, projections, rope, attention, MLP, memory, the greedy
/// ids of the logits).
pub fn all(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    let suites: [Suite; 23] = [
        embed::checks,
        rms_norm::checks,
        to_bf16::checks,
        gemm::checks,
        gemm_sm90::checks,
        gemm_sm90_normed::checks,
        gemm_sm90_rope::checks,
        gemm_tf32x3_sm90::checks,
        rows::checks,
        rope::checks,
        attention::checks,
        attention::checks_sm90,
        swiglu::checks,
        dpfp::checks,
        armt_read::checks,
        armt_state_split::checks,
        armt_state_split::update_split_checks,
        armt_read_fused_sm90::checks,
        armt_read_fused_sm90::checks_pre_split,
        armt_read_fused_sm90::checks_tf32x3,
        armt_write::checks,
        armt_write::prep_in_product_checks,
        argmax_rows::checks,
    ];
    suites
        .iter()
        .enumerate()
        .flat_map(|(i, suite)| suite(gpu, seed.wrapping_add(i as u64)))
        .collect()
}

pub use harness::{
    assert_all_pass, assert_suite_passes, bitwise, compare, fresh_seed, report, Check, POISON_BF16_BITS,
};
