//! Launchers of `cuda/rows.cu`: the row moves of a step whose decode rows of several requests share one GEMM group.
//!
//! A merged product writes its rows one after another in the packed scratch; [`add_rows_f32`] adds o and down products
//! into each request's f32 hidden rows with the single f32 add the GEMMs' fused residual add makes (so the bits are
//! the same). [`copy_rows_bf16`] moves bf16 rows within a buffer (the engine's q/k/v rows now reach the KV caches
//! through RoPE, which moves them; the merged-rows check still uses it to compare a merged product's rows).

use cudarc::driver::{CudaSlice, CudaStream, LaunchConfig};
use half::bf16;

use crate::launch::{addr_mut, invalid, launch_x_to_y, validate_x_to_y, Rows};
use crate::params::{Span, Spans};
use crate::{cubins, Gpu, Kernel, KernelError};

pub(crate) const COPY_ROWS_BF16: Kernel = Kernel::new(cubins::ROWS, "copy_rows_bf16");
pub(crate) const ADD_ROWS_F32: Kernel = Kernel::new(cubins::ROWS, "add_rows_f32");
/// The same adds with several blocks per row, for launches of few rows (a decode step).
const ADD_ROWS_F32_FEW: Kernel = Kernel::new(cubins::ROWS, "add_rows_f32_few");

/// `ROWS_THREADS` of rows.cu.
const THREADS: u32 = 256;

/// Copies rows `in_row..in_row + rows` of `buf` (`d` columns, row stride `ld`) to rows `out_row..` of the same
/// buffer, for each span. Refused ([`KernelError::InvalidArgument`]) when a span does not fit, two spans write the
/// same rows, or a span writes rows that a span reads (the copy would race).
pub fn copy_rows_bf16(
    gpu: &Gpu,
    stream: &CudaStream,
    buf: &mut CudaSlice<bf16>,
    ld: usize,
    spans: &[Span],
    d: usize,
) -> Result<(), KernelError> {
    let cfg = validate_copy(COPY_ROWS_BF16.entry, Rows::of(buf, ld), spans, d)?;
    if cfg.grid_dim.0 == 0 {
        return Ok(());
    }
    let f = gpu.function(&COPY_ROWS_BF16)?;
    let params = Spans::pack(spans);
    let ptr = addr_mut(buf, stream);
    let (ld, d) = (ld as i32, d as i32);
    let mut launch = crate::launch::Launch::new(stream, &f);
    launch.arg(&params).arg(&ptr).arg(&ld).arg(&d);
    // SAFETY: the arguments match `copy_rows_bf16(Spans, bf16* buf, int ld, int d)` in order and size (half::bf16
    // is the 2-byte __nv_bfloat16). `validate_copy` checked that every span's rows lie inside `buf` (borrowed
    // mutably for the launch), that no two spans write the same rows and that no written row is read by any span.
    unsafe { launch.launch(cfg) }?;
    Ok(())
}

/// `y[out_row + r] += x[in_row + r]` (f32, `d` columns) for each span's rows. Refused when a span does not fit or two
/// spans write the same rows.
#[allow(clippy::too_many_arguments)]
pub fn add_rows_f32(
    gpu: &Gpu,
    stream: &CudaStream,
    x: &CudaSlice<f32>,
    x_ld: usize,
    y: &mut CudaSlice<f32>,
    y_ld: usize,
    spans: &[Span],
    d: usize,
) -> Result<(), KernelError> {
    // SAFETY: add_rows_f32(Spans, const float* x, int x_ld, float* y, int y_ld, int d, int chunks) reads row
    // in_row + r of x and adds into row out_row + r of y, columns 0..d, per span row; blocks past a span's rows touch
    // nothing.
    unsafe {
        let kernels = (&ADD_ROWS_F32, &ADD_ROWS_F32_FEW);
        launch_x_to_y(gpu, stream, kernels, THREADS, (x, x_ld), (y, y_ld), spans, d)
    }
}

/// [`validate_x_to_y`]'s checks with x and y the same buffer, and no span reading rows that a span writes.
fn validate_copy(k: &str, buf: Rows, spans: &[Span], d: usize) -> Result<LaunchConfig, KernelError> {
    let cfg = validate_x_to_y(k, buf, buf, spans, d, THREADS)?;
    let reads_written = spans.iter().any(|w| {
        spans
            .iter()
            .any(|r| w.rows > 0 && r.rows > 0 && w.out_row < r.in_row + r.rows && r.in_row < w.out_row + w.rows)
    });
    if reads_written {
        return Err(invalid(k, "a span writes rows that a span reads".into()));
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::tests::{rejected, span};

    #[test]
    fn the_block_size_and_entries_are_the_kernels() {
        let cu = include_str!("../../../cuda/rows.cu");
        assert!(cu.contains(&format!("#define ROWS_THREADS {THREADS}\n")));
        assert!(cu.contains(COPY_ROWS_BF16.entry) && cu.contains(ADD_ROWS_F32.entry));
        assert!(cu.contains(&format!(" {}(", ADD_ROWS_F32_FEW.entry)));
    }

    #[test]
    fn copy_refuses_overlaps_and_rows_outside() {
        // 20 rows of stride 8, d = 8
        let buf = Rows { len: 160, ld: 8 };
        let v = |spans: &[Span]| validate_copy("k", buf, spans, 8);
        let cfg = v(&[span(0, 10, 2, 0), span(2, 14, 1, 0)]).unwrap();
        assert_eq!(cfg.grid_dim, (2, 2, 1));
        assert!(rejected(v(&[span(0, 19, 2, 0)])), "destination past the end");
        assert!(rejected(v(&[span(19, 0, 2, 0)])), "source past the end");
        assert!(
            rejected(v(&[span(0, 10, 2, 0), span(4, 11, 2, 0)])),
            "two spans write row 11"
        );
        assert!(rejected(v(&[span(0, 1, 2, 0)])), "a span writes its own source rows");
        assert!(
            rejected(v(&[span(0, 10, 2, 0), span(10, 15, 1, 0)])),
            "a span reads rows another writes"
        );
        assert!(rejected(v(&[])), "no spans");
        assert_eq!(v(&[span(0, 0, 0, 0)]).unwrap().grid_dim.0, 0, "nothing to launch");
    }

    #[test]
    fn add_checks_rows_and_overlaps() {
        let (x, y) = (Rows { len: 80, ld: 8 }, Rows { len: 89, ld: 9 });
        let v = |x: Rows, y: Rows, spans: &[Span]| validate_x_to_y("k", x, y, spans, 8, THREADS);
        let ok = [span(0, 5, 5, 0), span(5, 0, 5, 0)];
        assert_eq!(v(x, y, &ok).unwrap().grid_dim, (5, 2, 1));
        assert!(rejected(v(Rows { len: 79, ..x }, y, &ok)), "x short");
        assert!(rejected(v(x, Rows { ld: 7, ..y }, &ok)), "y stride below d");
        assert!(
            rejected(v(x, y, &[span(0, 0, 3, 0), span(4, 2, 3, 0)])),
            "overlapping outputs"
        );
    }
}
