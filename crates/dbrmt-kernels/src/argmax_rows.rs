//! Launcher of `cuda/argmax_rows.cu`: greedy token ids on the device.
//!
//! For each row of f32 logits, the index of its largest value, the first one on ties, with the NaN handling of the
//! host's scan — exactly [`crate::reference::argmax_rows::argmax`] (the sampler's greedy choice) on every input, so a
//! decode row at temperature 0 needs 4 bytes copied to the host instead of its vocabulary of logits.
//!
//! Two launches: each row is split into [`plan`]`(n, rows).chunks` chunks of contiguous columns, one block each
//! (`argmax_rows_chunks_f32`: one candidate per chunk into a scratch buffer the caller owns), then one warp per row
//! reduces its candidates (`argmax_rows_f32`). One row of Llama-3's vocabulary (128,256) is 126 blocks: the whole GPU
//! reads it, where one block per row read it at ~15 GB/s.

use cudarc::driver::{CudaSlice, CudaStream, LaunchConfig};

use crate::launch::{addr, addr_mut, check_dim, check_disjoint_outputs, check_groups, check_rows, invalid, Rows};
use crate::params::{Span, Spans};
use crate::{cubins, Gpu, Kernel, KernelError};

pub(crate) const ARGMAX_ROWS_F32: Kernel = Kernel::new(cubins::ARGMAX_ROWS, "argmax_rows_f32");
pub(crate) const ARGMAX_ROWS_CHUNKS_F32: Kernel = Kernel::new(cubins::ARGMAX_ROWS, "argmax_rows_chunks_f32");

/// `ARGMAX_CHUNK_THREADS` of argmax_rows.cu: the block of pass 1.
const CHUNK_THREADS: u32 = 256;
/// The threads of pass 2: one warp per row.
const REDUCE_THREADS: u32 = 32;
/// A chunk's width is a multiple of this (one float4 per thread of a pass-1 block), so chunks start 16-byte aligned.
pub const COLUMN_UNIT: usize = 4 * CHUNK_THREADS as usize;
/// At most this many chunks per row (so the scratch per row is bounded whatever `n`).
pub const MAX_CHUNKS: usize = 256;
/// Pass 1 aims at about this many blocks in all (~8 per SM of an H200's 132): fewer, wider chunks when there are
/// many rows.
const TARGET_BLOCKS: usize = 1024;

/// u32s of scratch [`argmax_rows_f32`] needs per output id (`out_row + rows` of the spans): two per candidate.
pub const SCRATCH_PER_ROW: usize = 2 * MAX_CHUNKS;

/// The split of a launch's rows: `chunks` chunks of `chunk_cols` columns (the last one shorter) per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub chunk_cols: usize,
    pub chunks: usize,
}

/// The split for rows of `n` columns, `rows` rows in the launch (all spans): chunk widths of [`COLUMN_UNIT`] columns
/// times the smallest factor that keeps the launch near [`TARGET_BLOCKS`] blocks and a row within [`MAX_CHUNKS`]
/// chunks. A function of `n` and `rows` only. 128,256 × 1 row: 126 chunks of 1,024; × 64 rows: 16 of 8,192;
/// 49,152 × 13: 48 of 1,024.
pub fn plan(n: usize, rows: usize) -> Plan {
    let units = n.div_ceil(COLUMN_UNIT).max(1);
    let per_chunk = (units * rows.max(1))
        .div_ceil(TARGET_BLOCKS)
        .max(units.div_ceil(MAX_CHUNKS))
        .max(1);
    let chunk_cols = per_chunk * COLUMN_UNIT;
    Plan {
        chunk_cols,
        chunks: n.div_ceil(chunk_cols).max(1),
    }
}

/// `out[out_row + r] = argmax(x[in_row + r][0..n])` for each span's rows: `x` f32 rows of stride `x_ld`, `out` one u32
/// per row, `scratch` at least [`SCRATCH_PER_ROW`] u32s per output id up to the last span's (`out_row + rows` of the
/// spans; `SCRATCH_PER_ROW · out.len()` always suffices), overwritten. Refused ([`KernelError::InvalidArgument`]) when
/// a span's rows do not fit `x`, `out` or `scratch`, two spans write the same ids, or `n` is 0; 1 to
/// [`MAX_GROUPS`](crate::params::MAX_GROUPS) spans per launch. A row's id depends on that row only.
#[allow(clippy::too_many_arguments)]
pub fn argmax_rows_f32(
    gpu: &Gpu,
    stream: &CudaStream,
    x: &CudaSlice<f32>,
    x_ld: usize,
    out: &mut CudaSlice<u32>,
    scratch: &mut CudaSlice<u32>,
    spans: &[Span],
    n: usize,
) -> Result<(), KernelError> {
    let (plan, chunk_cfg, cfg) = validate(
        ARGMAX_ROWS_F32.entry,
        Rows::of(x, x_ld),
        out.len(),
        scratch.len(),
        spans,
        n,
    )?;
    if cfg.grid_dim.0 == 0 {
        return Ok(());
    }
    let (chunk_f, f) = (gpu.function(&ARGMAX_ROWS_CHUNKS_F32)?, gpu.function(&ARGMAX_ROWS_F32)?);
    let params = Spans::pack(spans);
    let (x_ptr, out_ptr, scratch_ptr) = (addr(x, stream), addr_mut(out, stream), addr_mut(scratch, stream));
    // float4 loads when every row starts 16-byte aligned (chunks then do too: COLUMN_UNIT is a multiple of 4)
    let vec4 = i32::from(x_ld.is_multiple_of(4) && x_ptr.is_multiple_of(16));
    let (x_ld, n) = (x_ld as i32, n as i32);
    let (chunk_cols, chunks) = (plan.chunk_cols as i32, plan.chunks as i32);
    let mut launch = crate::launch::Launch::new(stream, &chunk_f);
    launch
        .arg(&params)
        .arg(&x_ptr)
        .arg(&x_ld)
        .arg(&n)
        .arg(&chunk_cols)
        .arg(&chunks)
        .arg(&vec4)
        .arg(&scratch_ptr);
    // SAFETY: the arguments match `argmax_rows_chunks_f32(Spans, const float* x, int x_ld, int n, int chunk_cols,
    // int chunks, int vec4, uint2* scratch)` in order and size. `validate` checked that every span's rows of x (n
    // columns, stride x_ld) lie inside x, and that scratch holds `chunks` uint2 (8-byte aligned: the allocation's
    // start) for every output id up to the last span's; scratch is borrowed mutably, so it aliases neither x nor out.
    // vec4 is set only when x's start and stride make every row 16-byte aligned. Blocks past a span's rows write
    // nothing.
    unsafe { launch.launch(chunk_cfg) }?;
    let mut launch = crate::launch::Launch::new(stream, &f);
    launch
        .arg(&params)
        .arg(&x_ptr)
        .arg(&x_ld)
        .arg(&scratch_ptr)
        .arg(&chunks)
        .arg(&out_ptr);
    // SAFETY: the arguments match `argmax_rows_f32(Spans, const float* x, int x_ld, const uint2* scratch, int chunks,
    // unsigned int* out)` in order and size; the bounds are those of the launch above, plus every span's ids inside
    // out (checked by `validate`), and no two spans write the same ids (nor the same candidates). The launch follows
    // the first on the same stream, so it reads the candidates that one wrote.
    unsafe { launch.launch(cfg) }?;
    Ok(())
}

/// The launcher's checks, on buffer lengths only; returns the split and the grids of pass 1 and pass 2.
fn validate(
    k: &str,
    x: Rows,
    out_len: usize,
    scratch_len: usize,
    spans: &[Span],
    n: usize,
) -> Result<(Plan, LaunchConfig, LaunchConfig), KernelError> {
    check_groups(k, spans.len())?;
    check_dim(k, "n", n)?;
    let out = Rows { len: out_len, ld: 1 };
    for s in spans {
        check_rows(k, "x", x, s.in_row, s.rows, 0, n)?;
        check_rows(k, "out", out, s.out_row, s.rows, 0, 1)?;
    }
    check_disjoint_outputs(k, spans)?;
    let rows: usize = spans.iter().map(|s| s.rows).sum();
    let plan = plan(n, rows);
    let ids = spans.iter().map(|s| s.out_row + s.rows).max().unwrap_or(0);
    if scratch_len < 2 * plan.chunks * ids {
        return Err(invalid(
            k,
            format!(
                "scratch: {scratch_len} u32s, {} candidates of ids 0..{ids} need {}",
                plan.chunks,
                2 * plan.chunks * ids
            ),
        ));
    }
    let max_rows = spans.iter().map(|s| s.rows).max().unwrap_or(0) as u32;
    let grid = |dim: (u32, u32, u32), threads: u32| LaunchConfig {
        grid_dim: dim,
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    };
    let spans_n = spans.len() as u32;
    Ok((
        plan,
        grid((max_rows, plan.chunks as u32, spans_n), CHUNK_THREADS),
        grid((max_rows, spans_n, 1), REDUCE_THREADS),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::tests::{rejected, span};

    #[test]
    fn the_block_size_and_entry_are_the_kernels() {
        let cu = include_str!("../../../cuda/argmax_rows.cu");
        assert!(cu.contains(&format!("#define ARGMAX_CHUNK_THREADS {CHUNK_THREADS}\n")));
        assert!(cu.contains(&format!("__launch_bounds__({REDUCE_THREADS})")));
        assert!(cu.contains(&format!("{}(", ARGMAX_ROWS_F32.entry)));
        assert!(cu.contains(&format!("{}(", ARGMAX_ROWS_CHUNKS_F32.entry)));
    }

    #[test]
    fn the_split_fills_the_gpu_and_stays_bounded() {
        let p = |n, rows| {
            let p = plan(n, rows);
            (p.chunk_cols, p.chunks)
        };
        assert_eq!(p(128_256, 1), (1024, 126));
        assert_eq!(p(128_256, 64), (8192, 16));
        assert_eq!(p(49_152, 13), (1024, 48));
        assert_eq!(p(49_152, 64), (3072, 16));
        assert_eq!(p(1, 1), (1024, 1));
        assert_eq!(p(5, 0), (1024, 1));
        for n in [1, 3, 1000, 1024, 1025, 49_152, 128_256, 1 << 20, 100_000_000] {
            for rows in [1, 2, 13, 64, 1000] {
                let Plan { chunk_cols, chunks } = plan(n, rows);
                assert!(
                    chunk_cols.is_multiple_of(COLUMN_UNIT) && chunks <= MAX_CHUNKS,
                    "{n} {rows}"
                );
                assert!(
                    chunks * chunk_cols >= n && (chunks - 1) * chunk_cols < n,
                    "{n} {rows}: every chunk used"
                );
            }
        }
    }

    #[test]
    fn validate_checks_rows_ids_and_overlaps() {
        // n = 8: x 10 rows of stride 9, 6 ids, one chunk per row: 2 u32s of scratch per id
        let x = Rows { len: 89, ld: 9 };
        let v = |x: Rows, out: usize, spans: &[Span], n: usize| validate("k", x, out, 12, spans, n);
        let ok = [span(0, 5, 1, 0), span(3, 0, 5, 0)];
        let (plan, c1, c2) = v(x, 6, &ok, 8).unwrap();
        assert_eq!(plan.chunks, 1);
        assert_eq!((c1.grid_dim, c1.block_dim.0), ((5, 1, 2), CHUNK_THREADS));
        assert_eq!((c2.grid_dim, c2.block_dim.0), ((5, 2, 1), REDUCE_THREADS));
        assert!(rejected(validate("k", x, 6, 11, &ok, 8)), "scratch short");
        assert!(
            validate("k", x, 6, 10, &[span(3, 0, 5, 0)], 8).is_ok(),
            "scratch for ids 0..5"
        );
        assert!(rejected(v(x, 5, &ok, 8)), "id 5 past the output");
        assert!(rejected(v(Rows { len: 88, ..x }, 6, &[span(9, 0, 1, 0)], 8)), "x short");
        assert!(rejected(v(x, 6, &ok, 10)), "n past the stride");
        assert!(rejected(v(x, 6, &ok, 0)), "n 0");
        assert!(
            rejected(v(x, 6, &[span(0, 0, 2, 0), span(2, 1, 1, 0)], 8)),
            "two spans write id 1"
        );
        assert!(rejected(v(x, 6, &[], 8)), "no spans");
        assert_eq!(
            v(x, 6, &[span(0, 0, 0, 0)], 8).unwrap().2.grid_dim.0,
            0,
            "nothing to launch"
        );
        // 128,256 columns, one row: 126 candidates
        let wide = Rows {
            len: 128_256,
            ld: 128_256,
        };
        assert!(validate("k", wide, 1, 2 * 126, &[span(0, 0, 1, 0)], 128_256).is_ok());
        assert!(rejected(validate("k", wide, 1, 2 * 125, &[span(0, 0, 1, 0)], 128_256)));
        assert!(validate("k", wide, 1, SCRATCH_PER_ROW, &[span(0, 0, 1, 0)], 128_256).is_ok());
    }
}
