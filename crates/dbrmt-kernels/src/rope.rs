//! Launcher of `cuda/rope.cu`: rotary position embedding, in place on the fused QKV rows of the cells of one step.
//!
//! The q heads (columns `0..H·hd`) and k heads (`H·hd..(H + KV)·hd`) of each row are rotated in HF's `rotate_half`
//! layout at position = the span's start + the row's index inside it (positions restart at 0 every segment; the start
//! is 0 for whole segments, the cached rows for new rows of an open segment); v is untouched.
//! The cos/sin tables are f32 `[positions, hd/2]`, built on the host by
//! [`RopeTable`](crate::reference::rope::RopeTable) and uploaded once. The CPU reference is
//! [`crate::reference::rope::apply_rope`].

use cudarc::driver::{CudaSlice, CudaStream, LaunchConfig, PushKernelArg};
use half::bf16;

use crate::launch::{addr, addr_mut, check_disjoint_outputs, check_groups, check_rows, invalid};
use crate::params::{Span, Spans};
use crate::{cubins, Gpu, Kernel, KernelError};

const ROPE_BF16: Kernel = Kernel {
    file: "rope",
    cubin: cubins::ROPE,
    entry: "rope_bf16",
};

/// `ROPE_THREADS` of rope.cu.
const THREADS: u32 = 256;

/// Rotates, in place, the q and k heads of rows `in_row..in_row + rows` of `qkv` (row stride `ld`) for each span,
/// row `in_row + r` at position `starts[i] + r` for span `i` (`starts` as long as `spans`), with the tables
/// `cos`/`sin` (`[positions, head_dim / 2]` each), on `stream`.
///
/// Each span must have `out_row == in_row` (the kernel works in place) and `start + rows ≤ positions`; spans must not
/// overlap; `head_dim` must be even and `heads` a multiple of `kv_heads`. Anything that does not fit is a
/// [`KernelError::InvalidArgument`], found before the launch.
#[allow(clippy::too_many_arguments)]
pub fn rope(
    gpu: &Gpu,
    stream: &CudaStream,
    qkv: &mut CudaSlice<bf16>,
    ld: usize,
    cos: &CudaSlice<f32>,
    sin: &CudaSlice<f32>,
    spans: &[Span],
    starts: &[usize],
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
) -> Result<(), KernelError> {
    let name = ROPE_BF16.entry;
    check_groups(name, spans.len())?;
    if starts.len() != spans.len() {
        return Err(invalid(
            name,
            format!("{} starts for {} spans", starts.len(), spans.len()),
        ));
    }
    if head_dim == 0 || !head_dim.is_multiple_of(2) || kv_heads == 0 || heads == 0 || !heads.is_multiple_of(kv_heads) {
        return Err(invalid(
            name,
            format!("heads {heads}, kv_heads {kv_heads}, head_dim {head_dim}"),
        ));
    }
    let half = head_dim / 2;
    if cos.len() != sin.len() || !cos.len().is_multiple_of(half) {
        return Err(invalid(
            name,
            format!(
                "cos/sin tables of {} and {} elements are not [positions, {half}]",
                cos.len(),
                sin.len()
            ),
        ));
    }
    let positions = cos.len() / half;
    let width = (heads + kv_heads)
        .checked_mul(head_dim)
        .filter(|&w| w <= i32::MAX as usize)
        .ok_or_else(|| invalid(name, "heads × head_dim beyond 32 bits".into()))?;
    for (s, &start) in spans.iter().zip(starts) {
        if s.in_row != s.out_row {
            return Err(invalid(
                name,
                format!("in place: in_row {} != out_row {}", s.in_row, s.out_row),
            ));
        }
        if start.saturating_add(s.rows) > positions {
            return Err(invalid(
                name,
                format!(
                    "a span of {} rows from position {start}, but the tables hold {positions} positions",
                    s.rows
                ),
            ));
        }
        check_rows(name, "qkv", qkv.len(), s.in_row, s.rows, ld, 0, width)?;
    }
    check_disjoint_outputs(name, spans)?;
    let max_rows = spans.iter().map(|s| s.rows).max().unwrap_or(0);
    if max_rows == 0 {
        return Ok(());
    }

    let f = gpu.function(&ROPE_BF16)?;
    let params = Spans::pack_at(spans, starts);
    let (cos_ptr, sin_ptr, qkv_ptr) = (addr(cos, stream), addr(sin, stream), addr_mut(qkv, stream));
    let (ld, rot_heads, half) = (ld as i32, (heads + kv_heads) as i32, half as i32);
    let cfg = LaunchConfig {
        grid_dim: (max_rows as u32, spans.len() as u32, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut launch = stream.launch_builder(&f);
    launch
        .arg(&params)
        .arg(&qkv_ptr)
        .arg(&ld)
        .arg(&cos_ptr)
        .arg(&sin_ptr)
        .arg(&rot_heads)
        .arg(&half);
    // SAFETY: the arguments match `rope_bf16(Spans, bf16* qkv, int ld, const float* cos, const float* sin,
    // int rot_heads, int half)` in order and size. Every span was checked above: its rows, columns
    // 0..(heads + kv_heads)·head_dim, lie inside qkv (borrowed mutably by this call), its rows index table rows below
    // `positions` from its start (cos and sin hold positions · half elements each), and no two spans touch the same
    // rows.
    unsafe { launch.launch(cfg) }?;
    Ok(())
}
