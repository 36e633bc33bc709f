//! Launcher of `cuda/rope.cu`: rotary position embedding on the fused QKV rows of the cells of one step.
//!
//! The q heads (columns `0..H·hd`) and k heads (`H·hd..(H + KV)·hd`) of each row are rotated in HF's `rotate_half`
//! layout at position = the span's `pos` + the row's index inside it (positions restart at 0 every segment; `pos` is
//! 0 for whole segments, the cached rows for new rows of an open segment). Whole segments rotate in place; an open
//! segment's new rows are read from the step's scratch and written, v heads copied beside them, into its KV cache —
//! at a position the device may hold (a dynamic span), so that a captured decode step replays at any position.
//! The cos/sin tables are f32 `[positions, hd/2]`, built on the host by
//! [`RopeTable`](crate::reference::rope::RopeTable) and uploaded once. The CPU reference is
//! [`crate::reference::rope::apply_rope`].

use cudarc::driver::{CudaSlice, CudaStream, LaunchConfig};
use half::bf16;

use crate::launch::{
    addr, addr_mut, check_groups, check_positions, check_rows, few_rows, invalid, positions_addr, row_grid, Rows,
};
use crate::params::{Heads, Span, Spans};
use crate::{cubins, Gpu, Kernel, KernelError};

const ROPE_BF16: Kernel = Kernel::new(cubins::ROPE, "rope_bf16");
/// The same rotation with several blocks per row ([`chunks_for`] > 1: launches of few rows, a decode step).
const ROPE_BF16_FEW: Kernel = Kernel::new(cubins::ROPE, "rope_bf16_few");
/// `rope_bf16_few` with an L2 prefetch of weight rows beside it ([`rope_and_prefetch`]).
const ROPE_BF16_FEW_L2: Kernel = Kernel::new(cubins::ROPE, "rope_bf16_few_l2");

/// `ROPE_THREADS` of rope.cu.
const THREADS: u32 = 128;

/// Rotates the q and k heads of each span's rows of `qkv` (row stride `ld`) with the tables `cos`/`sin`
/// (`[positions, head_dim / 2]` each), on `stream`: row `in_row + r` at position `pos + r`, written to row
/// `out_row + pos + r` (`out_row` is the row of the segment's position 0) — in place when `in_row == out_row + pos`,
/// else with its v heads copied beside the rotated q and k. A dynamic span's `pos` is its state's entry of
/// `positions`, read when the kernel runs; its `pos` field is then the largest value that entry may hold, and every
/// row it may write is checked.
///
/// `pos + rows ≤ positions`; the rows a span reads must not overlap the rows any span may write (but its own, in
/// place), nor two spans' written rows; `head_dim` must be even and `heads` a multiple of `kv_heads`. Anything that
/// does not fit is a [`KernelError::InvalidArgument`], found before the launch.
#[allow(clippy::too_many_arguments)]
pub fn rope(
    gpu: &Gpu,
    stream: &CudaStream,
    qkv: &mut CudaSlice<bf16>,
    ld: usize,
    cos: &CudaSlice<f32>,
    sin: &CudaSlice<f32>,
    spans: &[Span],
    positions: Option<&CudaSlice<i32>>,
    heads: Heads,
) -> Result<(), KernelError> {
    rope_and_prefetch(gpu, stream, (qkv, ld), (cos, sin), spans, positions, heads, None)
}

/// [`rope`] that, for a launch of few rows (a decode step: the `_few` entry), also asks the TMA unit to bring
/// `prefetch`'s rows into L2 (`rope_bf16_few_l2`: an extra row of [`PREFETCH_BLOCKS`] blocks, one bulk prefetch a
/// row), unless `DBRMT_L2_PREFETCH=off` (read at the first launch). The same bits as [`rope`], with or without the
/// prefetch.
#[allow(clippy::too_many_arguments)]
pub fn rope_and_prefetch(
    gpu: &Gpu,
    stream: &CudaStream,
    (qkv, ld): (&mut CudaSlice<bf16>, usize),
    (cos, sin): (&CudaSlice<f32>, &CudaSlice<f32>),
    spans: &[Span],
    positions: Option<&CudaSlice<i32>>,
    heads: Heads,
    prefetch: Option<&L2Prefetch<'_>>,
) -> Result<(), KernelError> {
    let tables = (cos.len(), sin.len());
    let (mut cfg, chunks) = validate(Rows::of(qkv, ld), tables, spans, positions.map(|p| p.len()), heads)?;
    if cfg.grid_dim.0 == 0 {
        return Ok(());
    }
    let chunks = chunks as i32; // at most the pairs of a row over 128: validate checked the widths fit an i32
    let pf = match prefetch.filter(|_| chunks > 1 && L2_PREFETCH.enabled()) {
        Some(p) => {
            let mut params = prefetch_params(p.buf.len(), (p.first_row, p.rows, p.row_len, p.prefix))?;
            params.base += addr(p.buf, stream);
            // the prefetching row of blocks after the spans' rows
            cfg.grid_dim = (cfg.grid_dim.0.max(PREFETCH_BLOCKS), cfg.grid_dim.1 + 1, 1);
            Some(params)
        }
        None => None,
    };
    let f = gpu.function(match (chunks > 1, pf.is_some()) {
        (true, true) => &ROPE_BF16_FEW_L2,
        (true, false) => &ROPE_BF16_FEW,
        _ => &ROPE_BF16,
    })?;
    let params = Spans::pack_with(spans, positions_addr(positions, stream));
    let (cos_ptr, sin_ptr, qkv_ptr) = (addr(cos, stream), addr(sin, stream), addr_mut(qkv, stream));
    // All fit in i32: `validate` checked them.
    let (ld, rot_heads, half, v_cols) = (
        ld as i32,
        (heads.heads + heads.kv_heads) as i32,
        (heads.head_dim / 2) as i32,
        heads.kv_width() as i32,
    );
    let mut launch = crate::launch::Launch::new(stream, &f);
    launch
        .arg(&params)
        .arg(&qkv_ptr)
        .arg(&ld)
        .arg(&cos_ptr)
        .arg(&sin_ptr)
        .arg(&rot_heads)
        .arg(&half)
        .arg(&v_cols)
        .arg(&chunks);
    if let Some(pf) = &pf {
        launch.arg(pf);
    }
    // SAFETY: the arguments match `rope_bf16[_few](Spans, bf16* qkv, int ld, const float* cos, const float* sin,
    // int rot_heads, int half, int v_cols, int chunks)` in order and size; the grid is `chunks` blocks per row of the
    // longest span (blocks past a span's rows return; `chunks` is 1 for rope_bf16). `validate` checked every span:
    // the rows it reads and every row it may write (for a dynamic span, up to its bound; the kernel traps past it),
    // their columns (v's too where it copies) inside qkv (borrowed mutably by this call); table rows below
    // `positions` (cos and sin hold positions · half elements each); no row written by two spans or read by one and
    // written by another; and each dynamic span's state inside the positions buffer, whose address `params` carries.
    // With the prefetch (`rope_bf16_few_l2`, taken exactly when `pf` is Some): an L2Prefetch after the arguments
    // above, its rows inside their buffer (prefetch_params), the grid one row of blocks taller (blockIdx.y ==
    // spans.count: the prefetching blocks, which read and write nothing) and at least PREFETCH_BLOCKS wide (rotating
    // blocks past a span's rows return).
    unsafe { launch.launch(cfg) }?;
    Ok(())
}

/// `DBRMT_L2_PREFETCH`: the L2 prefetch of [`rope_and_prefetch`] (on unless the environment says off at the first
/// launch).
static L2_PREFETCH: crate::switches::RuntimeSwitch = crate::switches::RuntimeSwitch::new(crate::switches::L2_PREFETCH);

/// Blocks of the prefetching row of `rope_bf16_few_l2` (one row a thread: 16,384 rows at 128 threads a block).
pub const PREFETCH_BLOCKS: u32 = 128;

/// Rows of a bf16 buffer to bring into L2: rows `first_row .. first_row + rows` of `row_len` elements each, the
/// first `prefix` elements of each (a multiple of 8: 16-byte pieces).
#[derive(Debug, Clone, Copy)]
pub struct L2Prefetch<'a> {
    pub buf: &'a CudaSlice<bf16>,
    pub first_row: usize,
    pub rows: usize,
    pub row_len: usize,
    pub prefix: usize,
}

/// `L2Prefetch` of rope.cu.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct L2PrefetchParams {
    base: u64,
    stride: i64,
    rows: i32,
    bytes: i32,
}

// SAFETY: a #[repr(C)] plain-old-data mirror of rope.cu's L2Prefetch (its static_assert, the size test below); its
// address is formed by prefetch_params after its checks and only used for L2 prefetches (no data moves).
unsafe impl cudarc::driver::DeviceRepr for L2PrefetchParams {}

/// The checks of a prefetch on lengths only: the rows inside the buffer, whole 16-byte pieces, 32-bit counts. The
/// parameters with the offset of the first row in bytes (the base address added by the caller).
fn prefetch_params(
    buf_len: usize,
    (first_row, rows, row_len, prefix): (usize, usize, usize, usize),
) -> Result<L2PrefetchParams, KernelError> {
    const K: &str = "rope_bf16_few_l2";
    let end = first_row.checked_add(rows).and_then(|r| r.checked_mul(row_len));
    if end.is_none_or(|e| e > buf_len) || prefix == 0 || prefix > row_len {
        let why = format!("rows {first_row}..+{rows} of {row_len} (prefix {prefix}) past a buffer of {buf_len}");
        return Err(invalid(K, why));
    }
    if !row_len.is_multiple_of(8) || !prefix.is_multiple_of(8) || rows > i32::MAX as usize {
        let why = format!("rows of {row_len} and a prefix of {prefix} elements must be 16-byte pieces");
        return Err(invalid(K, why));
    }
    Ok(L2PrefetchParams {
        base: (first_row * row_len * 2) as u64,
        stride: (row_len * 2) as i64,
        rows: rows as i32,
        bytes: (prefix * 2) as i32,
    })
}

/// Rows a span reads, and the rows it may write (a dynamic span: any position up to its bound), as `start..end`.
fn rows_touched(s: &Span) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
    let first = if s.dynamic { 0 } else { s.pos };
    (
        s.in_row..s.in_row + s.rows,
        s.out_row + first..s.out_row + s.pos + s.rows,
    )
}

/// Whether the span rotates its rows in place (then it writes exactly the rows it reads).
fn in_place(s: &Span) -> bool {
    !s.dynamic && s.in_row == s.out_row + s.pos
}

/// Blocks per row: enough for one pair (and one v column) a thread for [`few_rows`] (a decode step: one block looping
/// over a row's pairs is a chain of dependent loads), else 1 — counted for one pair a thread, so where the kernel
/// takes two (even `ld` and hd/2) half of them find no work. The kernel's arithmetic per pair does not depend on it.
fn chunks_for(spans: &[Span], heads: Heads) -> usize {
    if !few_rows(spans) {
        return 1;
    }
    let pairs = (heads.heads + heads.kv_heads) * heads.head_dim / 2;
    pairs.max(heads.kv_width()).div_ceil(THREADS as usize).max(1)
}

/// The launcher's checks, on buffer lengths only (so they are tested without a GPU): `tables` = the lengths of cos and
/// sin, `positions` the length of the positions buffer (if any). Returns the launch's grid and its blocks per row.
fn validate(
    qkv: Rows,
    tables: (usize, usize),
    spans: &[Span],
    positions: Option<usize>,
    heads: Heads,
) -> Result<(LaunchConfig, usize), KernelError> {
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
    let table_rows = cos / half;
    let rotated = (h + kv_heads)
        .checked_mul(head_dim)
        .filter(|&w| w <= i32::MAX as usize)
        .ok_or_else(|| invalid(k, "heads × head_dim beyond 32 bits".into()))?;
    let whole = rotated + heads.kv_width();
    for s in spans {
        if s.pos.saturating_add(s.rows) > table_rows || s.out_row.saturating_add(s.pos + s.rows) > i32::MAX as usize {
            return Err(invalid(
                k,
                format!(
                    "a span of {} rows from position {}, but the tables hold {table_rows} positions",
                    s.rows, s.pos
                ),
            ));
        }
        // a span that moves its rows copies v too
        let width = if in_place(s) { rotated } else { whole };
        let (read, write) = rows_touched(s);
        check_rows(k, "qkv", qkv, read.start, read.len(), 0, width)?;
        check_rows(k, "qkv", qkv, write.start, write.len(), 0, width)?;
    }
    check_positions(k, spans, positions)?;
    let live: Vec<&Span> = spans.iter().filter(|s| s.rows > 0).collect();
    let meets = |a: &std::ops::Range<usize>, b: &std::ops::Range<usize>| a.start < b.end && b.start < a.end;
    for (i, a) in live.iter().enumerate() {
        let (read_a, write_a) = rows_touched(a);
        if !in_place(a) && meets(&read_a, &write_a) {
            return Err(invalid(k, "a span writes rows it reads, not in place".into()));
        }
        for b in &live[i + 1..] {
            let (read_b, write_b) = rows_touched(b);
            if meets(&write_a, &write_b) || meets(&read_a, &write_b) || meets(&read_b, &write_a) {
                return Err(invalid(k, "two spans overlap where one writes".into()));
            }
        }
    }
    let chunks = chunks_for(spans, heads);
    let mut cfg = row_grid(spans, THREADS);
    cfg.grid_dim.0 *= chunks as u32;
    Ok((cfg, chunks))
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
        assert!(cu.contains(&format!(" {}(", ROPE_BF16_FEW.entry)));
        assert!(cu.contains(&format!(" {}(", ROPE_BF16_FEW_L2.entry)));
        assert!(cu.contains("sizeof(L2Prefetch) == 24"));
        assert_eq!(std::mem::size_of::<L2PrefetchParams>(), 24);
    }

    #[test]
    fn a_prefetch_stays_inside_its_buffer_in_whole_16_byte_pieces() {
        // the 1B model's gate/up rows of layer 3: 16,384 rows of 2,048, the first 768 of each (1,536 bytes)
        let (rows, len) = (16384, 2048);
        let p = prefetch_params(16 * rows * len, (3 * rows, rows, len, 768)).unwrap();
        assert_eq!(
            p,
            L2PrefetchParams {
                base: (3 * rows * len * 2) as u64,
                stride: 4096,
                rows: rows as i32,
                bytes: 1536
            }
        );
        assert!(
            prefetch_params(16 * rows * len, (15 * rows, rows, len, len)).is_ok(),
            "the last layer, whole rows"
        );
        assert!(
            rejected(prefetch_params(16 * rows * len, (15 * rows + 1, rows, len, 768))),
            "past the buffer"
        );
        assert!(
            rejected(prefetch_params(rows * len, (0, rows, len, len + 8))),
            "a prefix past the row"
        );
        assert!(
            rejected(prefetch_params(rows * len, (0, rows, len, 0))),
            "nothing to prefetch"
        );
        assert!(
            rejected(prefetch_params(rows * 100, (0, rows, 100, 12))),
            "pieces of 16 bytes"
        );
        assert!(rejected(prefetch_params(usize::MAX, (usize::MAX, 2, 8, 8))), "overflow");
    }

    #[test]
    fn decode_rows_take_one_pair_a_thread() {
        let b1 = Heads {
            heads: 32,
            kv_heads: 8,
            head_dim: 64,
        };
        // 40 rotated heads × 32 pairs = 1,280 pairs: 10 blocks of 128 per row
        assert_eq!(chunks_for(&[span(0, 0, 1, 0)], b1), 10);
        assert_eq!(chunks_for(&[span(0, 0, 64, 0), span(64, 64, 1, 0)], b1), 10);
        assert_eq!(
            chunks_for(&[span(0, 0, 65, 0)], b1),
            1,
            "a segment's rows: one block a row"
        );
        let smol = Heads {
            heads: 9,
            kv_heads: 3,
            head_dim: 64,
        };
        assert_eq!(chunks_for(&[span(0, 0, 1, 0)], smol), 3); // 384 pairs
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
        let v = |spans: &[Span]| validate(qkv, tables, spans, None, heads).map(|(cfg, _)| cfg);
        // in place at position 2: rows 2..4 of a segment from row 0
        let at = |pos| Span {
            pos,
            ..span(pos, 0, 2, 0)
        };
        // few rows: 48 pairs and 32 v columns of this row in one block of 128
        assert_eq!(v(&[at(2), span(5, 5, 4, 0)]).unwrap().grid_dim, (4, 2, 1));
        assert!(v(&[span(0, 4, 2, 0)]).is_ok(), "moved to other rows");
        assert!(rejected(v(&[span(0, 1, 2, 0)])), "moved onto its own rows");
        assert!(rejected(v(&[span(0, 0, 5, 0)])), "more rows than positions");
        assert!(rejected(v(&[at(3)])), "pos + rows past the tables");
        assert!(rejected(v(&[span(9, 9, 2, 0)])), "rows past the end");
        assert!(rejected(v(&[span(0, 9, 2, 0)])), "written rows past the end");
        let odd = Heads { head_dim: 31, ..heads };
        assert!(rejected(validate(qkv, tables, &[at(0)], None, odd)), "odd head_dim");
        let gqa = Heads {
            kv_heads: 2,
            heads: 3,
            ..heads
        };
        assert!(
            rejected(validate(qkv, tables, &[at(0)], None, gqa)),
            "heads not a multiple of kv_heads"
        );
        assert!(
            rejected(validate(qkv, (64, 48), &[at(0)], None, heads)),
            "cos and sin differ"
        );
        assert!(
            rejected(validate(Rows { ld: 95, ..qkv }, tables, &[at(0)], None, heads)),
            "q/k wider than the stride"
        );
        assert!(
            rejected(validate(
                Rows { ld: 127, ..qkv },
                tables,
                &[span(0, 4, 2, 0)],
                None,
                heads
            )),
            "a moved row's v wider than the stride"
        );
        assert!(rejected(v(&[span(0, 0, 2, 0), span(1, 1, 2, 0)])), "overlap");
        assert!(
            rejected(v(&[span(0, 4, 2, 0), span(4, 4, 1, 0)])),
            "one writes what the other reads"
        );
        assert!(rejected(v(&[])), "no spans");
        // dynamic: one row from row 0 into a cache from row 6, at any position up to 2 (rows 6..9 may be written)
        let dynamic = Span {
            dynamic: true,
            state: 1,
            pos: 2,
            ..span(0, 6, 1, 0)
        };
        assert!(validate(qkv, tables, &[dynamic], Some(2), heads).is_ok());
        assert!(rejected(v(&[dynamic])), "no positions buffer");
        assert!(
            rejected(validate(qkv, tables, &[dynamic], Some(1), heads)),
            "state past the positions"
        );
        let past = Span { pos: 4, ..dynamic };
        assert!(
            rejected(validate(qkv, tables, &[past], Some(2), heads)),
            "bound past the tables"
        );
        let low = Span { out_row: 8, ..dynamic };
        assert!(
            rejected(validate(qkv, tables, &[low], Some(2), heads)),
            "bound's row past the end"
        );
        let reader = span(6, 6, 1, 0);
        assert!(
            rejected(validate(qkv, tables, &[dynamic, reader], Some(2), heads)),
            "another span in the rows it may write"
        );
    }
}
