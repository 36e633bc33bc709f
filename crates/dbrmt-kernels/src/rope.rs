//! Launcher of `cuda/rope.cu`: rotary position embedding, in place on the fused QKV rows of the cells of one step.
//!
//! The q heads (columns `0..H·hd`) and k heads (`H·hd..(H + KV)·hd`) of each row are rotated in HF's `rotate_half`
//! layout at position = the span's `pos` + the row's index inside it (positions restart at 0 every segment; `pos` is
//! 0 for whole segments, the cached rows for new rows of an open segment); v is untouched.
//! The cos/sin tables are f32 `[positions, hd/2]`, built on the host by
//! [`RopeTable`](crate::reference::rope::RopeTable) and uploaded once. The CPU reference is
//! [`crate::reference::rope::apply_rope`].

use cudarc::driver::{CudaSlice, CudaStream, LaunchConfig};
use half::bf16;

use crate::launch::{addr, addr_mut, check_disjoint_outputs, check_groups, check_rows, invalid, row_grid, Rows};
use crate::params::{Heads, Span, Spans};
use crate::{cubins, Gpu, Kernel, KernelError};

const ROPE_BF16: Kernel = Kernel::new(cubins::ROPE, "rope_bf16");

/// `ROPE_THREADS` of rope.cu.
const THREADS: u32 = 128;

/// Rotates, in place, the q and k heads of rows `in_row..in_row + rows` of `qkv` (row stride `ld`) for each span,
/// row `in_row + r` at position `pos + r`, with the tables `cos`/`sin` (`[positions, head_dim / 2]` each), on `stream`.
///
/// Each span must have `out_row == in_row` (the kernel works in place) and `pos + rows ≤ positions`; spans must not
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
    heads: Heads,
) -> Result<(), KernelError> {
    let cfg = validate(Rows::of(qkv, ld), (cos.len(), sin.len()), spans, heads)?;
    if cfg.grid_dim.0 == 0 {
        return Ok(());
    }
    let f = gpu.function(&ROPE_BF16)?;
    let params = Spans::pack(spans);
    let (cos_ptr, sin_ptr, qkv_ptr) = (addr(cos, stream), addr(sin, stream), addr_mut(qkv, stream));
    // All fit in i32: `validate` checked them.
    let (ld, rot_heads, half) = (
        ld as i32,
        (heads.heads + heads.kv_heads) as i32,
        (heads.head_dim / 2) as i32,
    );
    let mut launch = crate::launch::Launch::new(stream, &f);
    launch
        .arg(&params)
        .arg(&qkv_ptr)
        .arg(&ld)
        .arg(&cos_ptr)
        .arg(&sin_ptr)
        .arg(&rot_heads)
        .arg(&half);
    // SAFETY: the arguments match `rope_bf16(Spans, bf16* qkv, int ld, const float* cos, const float* sin,
    // int rot_heads, int half)` in order and size. `validate` checked every span: its rows, columns
    // 0..(heads + kv_heads)·head_dim, lie inside qkv (borrowed mutably by this call), its rows index table rows below
    // `positions` from its pos (cos and sin hold positions · half elements each), and no two spans touch the same
    // rows.
    unsafe { launch.launch(cfg) }?;
    Ok(())
}

/// The launcher's checks, on buffer lengths only (so they are tested without a GPU): `tables` = the lengths of cos and
/// sin. Returns the launch's grid.
fn validate(qkv: Rows, tables: (usize, usize), spans: &[Span], heads: Heads) -> Result<LaunchConfig, KernelError> {
    let k = ROPE_BF16.entry;
    check_groups(k, spans.len())?;
    let Heads {
        heads: h,
        kv_heads,
        head_dim,
    } = heads;
    if head_dim == 0 || !head_dim.is_multiple_of(2) || kv_heads == 0 || h == 0 || !h.is_multiple_of(kv_heads) {
        return Err(invalid(
            k,
            format!("heads {h}, kv_heads {kv_heads}, head_dim {head_dim}"),
        ));
    }
    let half = head_dim / 2;
    let (cos, sin) = tables;
    if cos != sin || !cos.is_multiple_of(half) {
        return Err(invalid(
            k,
            format!("cos/sin tables of {cos} and {sin} elements are not [positions, {half}]"),
        ));
    }
    let positions = cos / half;
    let width = (h + kv_heads)
        .checked_mul(head_dim)
        .filter(|&w| w <= i32::MAX as usize)
        .ok_or_else(|| invalid(k, "heads × head_dim beyond 32 bits".into()))?;
    for s in spans {
        if s.in_row != s.out_row {
            return Err(invalid(
                k,
                format!("in place: in_row {} != out_row {}", s.in_row, s.out_row),
            ));
        }
        if s.pos.saturating_add(s.rows) > positions {
            return Err(invalid(
                k,
                format!(
                    "a span of {} rows from position {}, but the tables hold {positions} positions",
                    s.rows, s.pos
                ),
            ));
        }
        check_rows(k, "qkv", qkv, s.in_row, s.rows, 0, width)?;
    }
    check_disjoint_outputs(k, spans)?;
    Ok(row_grid(spans, THREADS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::tests::{rejected, span};

    #[test]
    fn threads_and_entry_match_the_kernel() {
        let cu = include_str!("../../../cuda/rope.cu");
        assert!(cu.contains(&format!("#define ROPE_THREADS {THREADS}\n")));
        assert!(cu.contains(&format!(" {}(", ROPE_BF16.entry)));
    }

    #[test]
    fn validate_checks_place_positions_heads_and_rows() {
        // 2 q heads + 1 k head + 1 v head of 32 = 128 columns, 10 rows; tables for 4 positions.
        let (qkv, tables) = (Rows { len: 1280, ld: 128 }, (64, 64));
        let heads = Heads {
            heads: 2,
            kv_heads: 1,
            head_dim: 32,
        };
        let at = |pos| Span {
            pos,
            ..span(0, 0, 2, 0)
        };
        assert_eq!(
            validate(qkv, tables, &[at(2), span(5, 5, 4, 0)], heads)
                .unwrap()
                .grid_dim,
            (4, 2, 1)
        );
        assert!(
            rejected(validate(qkv, tables, &[span(0, 1, 2, 0)], heads)),
            "not in place"
        );
        assert!(
            rejected(validate(qkv, tables, &[span(0, 0, 5, 0)], heads)),
            "more rows than positions"
        );
        assert!(
            rejected(validate(qkv, tables, &[at(3)], heads)),
            "pos + rows past the tables"
        );
        assert!(
            rejected(validate(qkv, tables, &[span(9, 9, 2, 0)], heads)),
            "rows past the end"
        );
        let odd = Heads { head_dim: 31, ..heads };
        assert!(rejected(validate(qkv, tables, &[at(0)], odd)), "odd head_dim");
        let gqa = Heads {
            kv_heads: 2,
            heads: 3,
            ..heads
        };
        assert!(
            rejected(validate(qkv, tables, &[at(0)], gqa)),
            "heads not a multiple of kv_heads"
        );
        assert!(rejected(validate(qkv, (64, 48), &[at(0)], heads)), "cos and sin differ");
        assert!(
            rejected(validate(Rows { ld: 95, ..qkv }, tables, &[at(0)], heads)),
            "q/k wider than the stride"
        );
        assert!(
            rejected(validate(qkv, tables, &[span(0, 0, 2, 0), span(1, 1, 2, 0)], heads)),
            "overlap"
        );
        assert!(rejected(validate(qkv, tables, &[], heads)), "no spans");
    }
}
