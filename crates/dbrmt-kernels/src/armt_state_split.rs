//! Launcher of `cuda/armt_state_split.cu`: the memory state `A` split for the fused read's tensor cores, once per
//! state change. [`crate::armt_read_fused_sm90`]'s tf32 + bf16 split takes `A[state]` (`[D, d]` f32) as per k-block
//! tiles of tf32 hi and bf16 pairs `{bf16(hi), bf16(x − hi)}` in K-major rows; made here for the states a write
//! changed, a read loads them ([`ReadState::Split`](crate::armt_read_fused_sm90::ReadState)) and converts nothing.
//! The CPU reference is [`crate::reference::armt_state_split::split_state`].
//!
//! Layout (u32, `[S·d, 2·D]`): row `state·d + n`, column `64·kb + j` is the hi of `A[state][32·kb + j][n]` for
//! `j < 32` and the bf16 pair of `A[state][32·kb + j − 32][n]` for `32 ≤ j < 64`.

use cudarc::driver::{CudaSlice, CudaStream, LaunchConfig};

use crate::launch::{addr, addr_mut, check_dim, check_index, invalid};
use crate::params::{Span, Spans, MAX_GROUPS};
use crate::{cubins, Gpu, Kernel, KernelError};

pub(crate) const ARMT_STATE_SPLIT_TF32BF16: Kernel = Kernel::new(cubins::ARMT_STATE_SPLIT, "armt_state_split_tf32bf16");

/// `STATE_SPLIT_ROWS` of the kernel: blocks of 32 × 8 threads.
const ROWS: u32 = 8;

/// u32 elements of the split form of `states` states of `D × d` (twice the f32 state's).
pub fn split_len(states: usize, d_key: usize, d: usize) -> usize {
    2 * states * d_key * d
}

/// The launch of one chunk of at most [`MAX_GROUPS`] states, after the checks (on lengths only).
fn validate(
    a_len: usize,
    out_len: usize,
    states: &[usize],
    d_key: usize,
    d: usize,
) -> Result<LaunchConfig, KernelError> {
    let k = ARMT_STATE_SPLIT_TF32BF16.entry;
    if states.is_empty() || states.len() > MAX_GROUPS {
        return Err(invalid(
            k,
            format!("{} states (1 to {MAX_GROUPS} per launch)", states.len()),
        ));
    }
    check_dim(k, "d", d)?;
    check_dim(k, "D", d_key)?;
    if !d_key.is_multiple_of(32) {
        return Err(invalid(
            k,
            format!("D = {d_key}: must be a multiple of 32 (k-blocks of 32)"),
        ));
    }
    let per = d_key * d;
    let count = a_len / per;
    if out_len < split_len(count, d_key, d) {
        return Err(invalid(
            k,
            format!(
                "the split buffer holds {out_len} u32, {count} states need {}",
                split_len(count, d_key, d)
            ),
        ));
    }
    for (i, &s) in states.iter().enumerate() {
        check_index(k, "state", s, count)?;
        if states[..i].contains(&s) {
            return Err(invalid(k, format!("state {s} twice in one launch")));
        }
    }
    Ok(LaunchConfig {
        grid_dim: (d.div_ceil(32) as u32, (d_key / 32) as u32, states.len() as u32),
        block_dim: (32, ROWS, 1),
        shared_mem_bytes: 0,
    })
}

/// Writes the split form of `A[state]` into `out` for every state of `states` (any number, distinct; one launch per
/// [`MAX_GROUPS`]). `a` is the stacked f32 states `[S·D, d]`, `out` their split form ([`split_len`] u32).
///
/// Fails with [`KernelError::InvalidArgument`] (before anything is launched) unless `D` is a multiple of 32, `d ≥ 1`,
/// every state is one of `a`'s, none repeats, and `out` holds the split of every state of `a`. Asynchronous on
/// `stream`.
pub fn armt_state_split(
    gpu: &Gpu,
    stream: &CudaStream,
    a: &CudaSlice<f32>,
    out: &mut CudaSlice<u32>,
    states: &[usize],
    d_key: usize,
    d: usize,
) -> Result<(), KernelError> {
    let chunks: Vec<&[usize]> = states.chunks(MAX_GROUPS).collect();
    // every chunk is checked before the first launch
    let cfgs = chunks
        .iter()
        .map(|c| validate(a.len(), out.len(), c, d_key, d))
        .collect::<Result<Vec<_>, _>>()?;
    let f = gpu.function(&ARMT_STATE_SPLIT_TF32BF16)?;
    let (a_ptr, out_ptr) = (addr(a, stream), addr_mut(out, stream));
    let (d_key, d) = (d_key as i32, d as i32); // checked: both fit an i32
    for (chunk, cfg) in chunks.iter().zip(cfgs) {
        let spans: Vec<Span> = chunk
            .iter()
            .map(|&state| Span {
                state,
                ..Span::default()
            })
            .collect();
        let params = Spans::pack(&spans);
        let mut launch = crate::launch::Launch::new(stream, &f);
        launch.arg(&params).arg(&a_ptr).arg(&out_ptr).arg(&d_key).arg(&d);
        // SAFETY: the arguments match `armt_state_split_tf32bf16(Spans, const float* a, uint32_t* out, int d_key,
        // int d)` in order and type (Spans mirrors params.h). validate() checked that every state is one of `a`'s
        // (the block of a state reads rows state·D .. state·D + D of `a`, columns < d) and that `out` holds
        // split_len(states of a) u32 (it writes rows state·d .. state·d + d of 2D each); states are distinct, so
        // no element has two writers; `out` is borrowed mutably and aliases nothing.
        unsafe { launch.launch(cfg) }?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::tests::rejected;

    #[test]
    fn the_block_is_the_kernels() {
        let cu = include_str!("../../../cuda/armt_state_split.cu");
        assert!(cu.contains(&format!("#define STATE_SPLIT_ROWS {ROWS} ")));
        assert!(cu.contains(ARMT_STATE_SPLIT_TF32BF16.entry));
    }

    #[test]
    fn validate_checks_states_and_lengths() {
        let (dk, d) = (384, 2048);
        let (a, out) = (4 * dk * d, split_len(4, dk, d));
        let cfg = validate(a, out, &[3, 0], dk, d).unwrap();
        assert_eq!((cfg.grid_dim, cfg.block_dim), ((64, 12, 2), (32, ROWS, 1)));
        // d off the 32-column blocks: one more block
        assert_eq!(
            validate(4 * dk * 100, split_len(4, dk, 100), &[0], dk, 100)
                .unwrap()
                .grid_dim
                .0,
            4
        );
        assert!(rejected(validate(a, out, &[4], dk, d)), "state 4 of 4");
        assert!(rejected(validate(a, out - 1, &[0], dk, d)), "split buffer short");
        assert!(rejected(validate(a, out, &[1, 1], dk, d)), "a state twice");
        assert!(rejected(validate(a, out, &[], dk, d)), "no states");
        assert!(rejected(validate(a, out, &[0; 65], dk, d)), "65 states");
        assert!(rejected(validate(4 * 48 * d, split_len(4, 48, d), &[0], 48, d)), "D 48");
        assert!(rejected(validate(a, out, &[0], dk, 0)), "d 0");
    }
}
