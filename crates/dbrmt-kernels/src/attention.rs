//! Launcher of `cuda/attention.cu`: causal grouped-query attention over the rows of each cell of one step,
//! flash-style (the score matrix never reaches global memory).
//!
//! q, k and v come from the fused QKV buffer (q heads at column 0, k heads at `H·hd`, v heads at `H·hd + KV·hd`);
//! query head `h` reads KV head `h / (H / KV)`; row `i` of a span attends to rows `0..=i` of the same span. A span
//! may start past its segment's row 0 (the new rows of an open segment whose earlier rows are cached in the same
//! buffer): its queries then attend to the cached rows too, with the same bits as inside a whole span. The CPU
//! reference is [`crate::reference::attention::causal_gqa_attention_cached`].

use cudarc::driver::{CudaSlice, CudaStream, LaunchConfig, PushKernelArg};
use half::bf16;

use crate::launch::{addr, addr_mut, check_disjoint_outputs, check_groups, check_rows, invalid};
use crate::params::{Span, Spans};
use crate::{cubins, Gpu, Kernel, KernelError};

const fn entry(entry: &'static str) -> Kernel {
    Kernel {
        file: "attention",
        cubin: cubins::ATTENTION,
        entry,
    }
}
const ATTENTION_HD32: Kernel = entry("attention_causal_bf16_hd32");
const ATTENTION_HD64: Kernel = entry("attention_causal_bf16_hd64");
const ATTENTION_HD128: Kernel = entry("attention_causal_bf16_hd128");

/// The head sizes the kernel is instantiated for.
pub const HEAD_DIMS: [usize; 3] = [32, 64, 128];

/// `ATT_BQ` (queries per block) and `ATT_THREADS` of attention.cu.
const BLOCK_Q: usize = 64;
const THREADS: u32 = 256;

/// Causal GQA attention for each span: its segment's rows start at row `in_row` of `qkv` (row stride `qkv_ld`,
/// columns `0..(heads + 2·kv_heads)·head_dim`); its queries are the `rows` rows from position `starts[i]`, each
/// attending to the rows `0..=` its own; query `starts[i] + r` goes to row `out_row + r` of `out` (row stride
/// `out_ld`, columns `0..heads·head_dim`). Scores are scaled by `scale` (normally `1/√head_dim`); runs on `stream`.
/// `starts` is as long as `spans` (all 0 for whole segments).
///
/// `head_dim` must be one of [`HEAD_DIMS`], `heads` a multiple of `kv_heads`, both strides even (the kernel moves
/// bf16 pairs); every span must fit its buffers and no two spans may write the same output rows. Anything else is a
/// [`KernelError::InvalidArgument`], found before the launch. A span's result does not depend on the other spans of
/// the launch (bitwise).
#[allow(clippy::too_many_arguments)]
pub fn attention_causal(
    gpu: &Gpu,
    stream: &CudaStream,
    qkv: &CudaSlice<bf16>,
    qkv_ld: usize,
    out: &mut CudaSlice<bf16>,
    out_ld: usize,
    spans: &[Span],
    starts: &[usize],
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    scale: f32,
) -> Result<(), KernelError> {
    let kernel = match head_dim {
        32 => ATTENTION_HD32,
        64 => ATTENTION_HD64,
        128 => ATTENTION_HD128,
        _ => {
            return Err(invalid(
                "attention_causal_bf16",
                format!("head_dim {head_dim} (supported: {HEAD_DIMS:?})"),
            ))
        }
    };
    let name = kernel.entry;
    check_groups(name, spans.len())?;
    if starts.len() != spans.len() {
        return Err(invalid(
            name,
            format!("{} starts for {} spans", starts.len(), spans.len()),
        ));
    }
    if kv_heads == 0 || heads == 0 || !heads.is_multiple_of(kv_heads) || heads > u16::MAX as usize {
        return Err(invalid(
            name,
            format!("heads {heads}, kv_heads {kv_heads}: heads must be a positive multiple of kv_heads, at most 65535"),
        ));
    }
    if !qkv_ld.is_multiple_of(2) || !out_ld.is_multiple_of(2) {
        return Err(invalid(
            name,
            format!("row strides must be even (qkv_ld {qkv_ld}, out_ld {out_ld})"),
        ));
    }
    if !scale.is_finite() {
        return Err(invalid(name, format!("scale = {scale}")));
    }
    let (q_width, qkv_width) = (heads * head_dim, (heads + 2 * kv_heads) * head_dim);
    for (s, &start) in spans.iter().zip(starts) {
        let keys = start
            .checked_add(s.rows)
            .filter(|&k| k <= i32::MAX as usize)
            .ok_or_else(|| invalid(name, format!("start {start} + rows {} beyond 32 bits", s.rows)))?;
        check_rows(name, "qkv", qkv.len(), s.in_row, keys, qkv_ld, 0, qkv_width)?;
        check_rows(name, "out", out.len(), s.out_row, s.rows, out_ld, 0, q_width)?;
    }
    check_disjoint_outputs(name, spans)?;
    let max_rows = spans.iter().map(|s| s.rows).max().unwrap_or(0);
    if max_rows == 0 {
        return Ok(());
    }

    let f = gpu.function(&kernel)?;
    let params = Spans::pack_at(spans, starts);
    let (qkv_ptr, out_ptr) = (addr(qkv, stream), addr_mut(out, stream));
    let (qkv_ld, out_ld, h, kv) = (qkv_ld as i32, out_ld as i32, heads as i32, kv_heads as i32);
    let cfg = LaunchConfig {
        grid_dim: (max_rows.div_ceil(BLOCK_Q) as u32, heads as u32, spans.len() as u32),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut launch = stream.launch_builder(&f);
    launch
        .arg(&params)
        .arg(&qkv_ptr)
        .arg(&qkv_ld)
        .arg(&out_ptr)
        .arg(&out_ld)
        .arg(&h)
        .arg(&kv)
        .arg(&scale);
    // SAFETY: the arguments match `attention_causal_bf16_hd<head_dim>(Spans, const bf16* qkv, int qkv_ld, bf16* out,
    // int out_ld, int heads, int kv_heads, float scale)` in order and size. Every span was checked above: the rows
    // (its start's cached rows included) and columns it reads from qkv and writes in out lie inside those buffers (out borrowed mutably, so the two do
    // not alias), no two spans write the same rows, and the even strides keep the kernel's 4-byte pair accesses
    // aligned (cudarc allocations are 256-byte aligned). Blocks past a span's rows return before touching memory.
    unsafe { launch.launch(cfg) }?;
    Ok(())
}
