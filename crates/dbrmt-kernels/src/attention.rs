//! Launcher of `cuda/attention.cu`: causal grouped-query attention over the rows of each cell of one step,
//! flash-style (the score matrix never reaches global memory).
//!
//! q, k and v come from the fused QKV buffer (q heads at column 0, k heads at `H·hd`, v heads at `H·hd + KV·hd`);
//! query head `h` reads KV head `h / (H / KV)`; row `i` of a span attends to rows `0..=i` of the same span. A span
//! may start past its segment's row 0 (the new rows of an open segment whose earlier rows are cached in the same
//! buffer): its queries then attend to the cached rows too, with the same bits as inside a whole span. The CPU
//! reference is [`crate::reference::attention::causal_gqa_attention_cached`].

use cudarc::driver::{CudaSlice, CudaStream, LaunchConfig};
use half::bf16;

use crate::launch::{
    addr, addr_mut, check_disjoint_outputs, check_groups, check_positions, check_rows, invalid, positions_addr,
    row_grid, Rows,
};
use crate::params::{Heads, Span, Spans};
use crate::{cubins, Gpu, Kernel, KernelError};

const fn entry(entry: &'static str) -> Kernel {
    Kernel::new(cubins::ATTENTION, entry)
}
const ATTENTION_HD32: Kernel = entry("attention_causal_bf16_hd32");
const ATTENTION_HD64: Kernel = entry("attention_causal_bf16_hd64");
const ATTENTION_HD128: Kernel = entry("attention_causal_bf16_hd128");

/// The head sizes the kernel is instantiated for.
pub const HEAD_DIMS: [usize; 3] = [32, 64, 128];

/// `ATT_BQ` (queries per block) and `ATT_THREADS` of attention.cu.
const BLOCK_Q: usize = 64;
const THREADS: u32 = 256;

/// The signature both attention launchers share ([`attention_causal`],
/// [`attention_sm90_causal`](crate::attention_sm90::attention_sm90_causal)), for callers that pick one.
pub type AttentionFn = fn(
    &Gpu,
    &CudaStream,
    &CudaSlice<bf16>,
    usize,
    &mut CudaSlice<bf16>,
    usize,
    &[Span],
    Option<&CudaSlice<i32>>,
    Heads,
    f32,
) -> Result<(), KernelError>;

/// Causal GQA attention for each span: its segment's rows start at row `in_row` of `qkv` (row stride `qkv_ld`,
/// columns `0..heads.qkv_width()`); its queries are the `rows` rows from position `pos`, each attending to the rows
/// `0..=` its own; query `pos + r` goes to row `out_row + r` of `out` (row stride `out_ld`, columns
/// `0..heads.q_width()`). Scores are scaled by `scale` (normally `1/√head_dim`); runs on `stream`. `pos` is 0 for
/// whole segments. A dynamic span's `pos` is its state's entry of `positions`, read when the kernel runs (its `pos`
/// field: the largest value that entry may hold, which the buffers are checked against).
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
    positions: Option<&CudaSlice<i32>>,
    heads: Heads,
    scale: f32,
) -> Result<(), KernelError> {
    let (kernel, cfg) = validate(Rows::of(qkv, qkv_ld), Rows::of(out, out_ld), spans, heads, scale)?;
    check_positions(kernel.entry, spans, positions.map(|p| p.len()))?;
    if cfg.grid_dim.0 == 0 {
        return Ok(());
    }
    let f = gpu.function(&kernel)?;
    let params = Spans::pack_with(spans, positions_addr(positions, stream));
    let (qkv_ptr, out_ptr) = (addr(qkv, stream), addr_mut(out, stream));
    // All fit in i32: `validate` checked them.
    let (qkv_ld, out_ld, h, kv) = (qkv_ld as i32, out_ld as i32, heads.heads as i32, heads.kv_heads as i32);
    let mut launch = crate::launch::Launch::new(stream, &f);
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
    // int out_ld, int heads, int kv_heads, float scale)` in order and size. `validate` checked every span: the rows
    // (its pos's cached rows included) and columns it reads from qkv and writes in out lie inside those buffers (out
    // borrowed mutably, so the two do not alias), no two spans write the same rows, and the even strides keep the
    // kernel's 4-byte pair accesses aligned (cudarc allocations are 256-byte aligned). Blocks past a span's rows
    // return before touching memory. A dynamic span's checks used its bound (the kernel traps past it), and its state
    // indexes the positions buffer whose address `params` carries.
    unsafe { launch.launch(cfg) }?;
    Ok(())
}

/// Every span's key rows (its cached rows included) inside `qkv` and its output rows inside `out`, and no two spans
/// writing the same output rows (shared by both attention launchers).
pub(crate) fn check_spans(kernel: &str, qkv: Rows, out: Rows, spans: &[Span], heads: Heads) -> Result<(), KernelError> {
    for s in spans {
        let keys = s
            .pos
            .checked_add(s.rows)
            .filter(|&k| k <= i32::MAX as usize)
            .ok_or_else(|| invalid(kernel, format!("pos {} + rows {} beyond 32 bits", s.pos, s.rows)))?;
        check_rows(kernel, "qkv", qkv, s.in_row, keys, 0, heads.qkv_width())?;
        check_rows(kernel, "out", out, s.out_row, s.rows, 0, heads.q_width())?;
    }
    check_disjoint_outputs(kernel, spans)
}

/// The launcher's checks, on buffer lengths only (so they are tested without a GPU); returns the entry point for
/// `head_dim` and the launch's grid: (query tiles of the longest span, heads, spans).
fn validate(
    qkv: Rows,
    out: Rows,
    spans: &[Span],
    heads: Heads,
    scale: f32,
) -> Result<(Kernel, LaunchConfig), KernelError> {
    let Heads {
        heads: h,
        kv_heads,
        head_dim,
    } = heads;
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
    let k = kernel.entry;
    check_groups(k, spans.len())?;
    if kv_heads == 0 || h == 0 || !h.is_multiple_of(kv_heads) || h > u16::MAX as usize {
        return Err(invalid(
            k,
            format!("heads {h}, kv_heads {kv_heads}: heads must be a positive multiple of kv_heads, at most 65535"),
        ));
    }
    if !qkv.ld.is_multiple_of(2) || !out.ld.is_multiple_of(2) {
        return Err(invalid(
            k,
            format!("row strides must be even (qkv_ld {}, out_ld {})", qkv.ld, out.ld),
        ));
    }
    if !scale.is_finite() {
        return Err(invalid(k, format!("scale = {scale}")));
    }
    check_spans(k, qkv, out, spans, heads)?;
    let rows = row_grid(spans, THREADS);
    let cfg = LaunchConfig {
        grid_dim: (
            (rows.grid_dim.0 as usize).div_ceil(BLOCK_Q) as u32,
            h as u32,
            spans.len() as u32,
        ),
        ..rows
    };
    Ok((kernel, cfg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::tests::{rejected, span};

    #[test]
    fn tiles_threads_and_entries_match_the_kernel() {
        let cu = include_str!("../../../cuda/attention.cu");
        assert!(cu.contains(&format!("#define ATT_BQ {BLOCK_Q} ")));
        assert!(cu.contains(&format!("#define ATT_THREADS {THREADS} ")));
        assert!(cu.contains("attention_causal_bf16_hd##HD("));
        for (hd, k) in HEAD_DIMS
            .into_iter()
            .zip([ATTENTION_HD32, ATTENTION_HD64, ATTENTION_HD128])
        {
            assert_eq!(k.entry, format!("attention_causal_bf16_hd{hd}"));
            assert!(cu.contains(&format!("ATTENTION_ENTRY({hd})\n")));
        }
    }

    #[test]
    fn validate_checks_heads_strides_cached_rows_and_overlaps() {
        // 2 q heads + 1 k head + 1 v head of 32 = 128 columns, 10 rows; out 10 rows of 64.
        let (qkv, out) = (Rows { len: 1280, ld: 128 }, Rows { len: 640, ld: 64 });
        let heads = Heads {
            heads: 2,
            kv_heads: 1,
            head_dim: 32,
        };
        let v = |qkv: Rows, out: Rows, spans: &[Span], heads: Heads| validate(qkv, out, spans, heads, 0.1);
        let at = |pos| Span {
            pos,
            ..span(0, 0, 2, 0)
        };
        let (big_qkv, big_out) = (Rows { len: 128 * 70, ld: 128 }, Rows { len: 64 * 70, ld: 64 });
        let (k, cfg) = v(big_qkv, big_out, &[at(8), span(0, 2, 65, 0)], heads).unwrap();
        assert_eq!((k.entry, cfg.grid_dim), ("attention_causal_bf16_hd32", (2, 2, 2)));
        assert!(
            rejected(v(qkv, out, &[at(9)], heads)),
            "cached rows + new rows past the end of qkv"
        );
        assert!(
            rejected(v(qkv, out, &[at(0)], Heads { head_dim: 96, ..heads })),
            "head_dim 96"
        );
        assert!(
            rejected(v(
                qkv,
                out,
                &[at(0)],
                Heads {
                    heads: 3,
                    kv_heads: 2,
                    ..heads
                }
            )),
            "heads not a multiple"
        );
        assert!(
            rejected(v(qkv, out, &[at(0)], Heads { kv_heads: 2, ..heads })),
            "q/k/v wider than the stride"
        );
        assert!(
            rejected(v(Rows { ld: 127, len: 1270 }, out, &[at(0)], heads)),
            "odd stride"
        );
        assert!(
            rejected(v(qkv, out, &[span(0, 9, 2, 0)], heads)),
            "output rows past the end"
        );
        assert!(
            rejected(v(qkv, out, &[span(0, 0, 3, 0), span(3, 2, 3, 0)], heads)),
            "overlap"
        );
        assert!(rejected(v(qkv, out, &[], heads)), "no spans");
        assert!(rejected(validate(qkv, out, &[at(0)], heads, f32::NAN)), "scale");
    }
}
