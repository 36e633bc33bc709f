//! Launcher of `cuda/to_bf16.cu`: f32 rows rounded to bf16 rows (round to nearest even).
//!
//! The engine's memory projections read the f32 hidden rows; rounding them once lets the sm_90a GEMM (bf16 A through
//! TMA) run them. The CPU reference is [`crate::reference::to_bf16::to_bf16`].

use cudarc::driver::{CudaSlice, CudaStream};
use half::bf16;

use crate::launch::launch_x_to_y;
use crate::params::Span;
use crate::{cubins, Gpu, Kernel, KernelError};

pub(crate) const TO_BF16_F32: Kernel = Kernel::new(cubins::TO_BF16, "to_bf16_f32");
/// The same rounding with several blocks per row, for launches of few rows (a decode step).
const TO_BF16_F32_FEW: Kernel = Kernel::new(cubins::TO_BF16, "to_bf16_f32_few");

/// `TO_BF16_THREADS` of to_bf16.cu.
const THREADS: u32 = 128;

/// Rounds rows `in_row..in_row + rows` of `x` (`d` columns, row stride `x_ld`) to bf16 into rows `out_row..` of `y`
/// (row stride `y_ld`) for each span, on `stream`.
///
/// Every span is checked against the buffers first (a span or stride that does not fit, or two spans writing the
/// same output rows, is a [`KernelError::InvalidArgument`]); 1 to [`MAX_GROUPS`](crate::params::MAX_GROUPS) spans per
/// launch.
#[allow(clippy::too_many_arguments)]
pub fn to_bf16(
    gpu: &Gpu,
    stream: &CudaStream,
    x: &CudaSlice<f32>,
    x_ld: usize,
    y: &mut CudaSlice<bf16>,
    y_ld: usize,
    spans: &[Span],
    d: usize,
) -> Result<(), KernelError> {
    // SAFETY: to_bf16_f32(Spans, const float* x, int x_ld, bf16* y, int y_ld, int d, int chunks) (half::bf16 is
    // the 2-byte __nv_bfloat16) reads row in_row + r of x and writes row out_row + r of y, columns 0..d, per span
    // row, and its blocks past a span's rows write nothing.
    unsafe {
        let kernels = (&TO_BF16_F32, &TO_BF16_F32_FEW);
        launch_x_to_y(gpu, stream, kernels, THREADS, (x, x_ld), (y, y_ld), spans, d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::tests::{rejected, span};
    use crate::launch::{validate_x_to_y, Rows};

    #[test]
    fn the_block_size_is_the_kernels() {
        let cu = include_str!("../../../cuda/to_bf16.cu");
        assert!(cu.contains(&format!("#define TO_BF16_THREADS {THREADS}\n")));
        assert!(cu.contains(TO_BF16_F32.entry));
        assert!(cu.contains(&format!(" {}(", TO_BF16_F32_FEW.entry)));
    }

    #[test]
    fn validate_checks_rows_and_overlaps() {
        // d = 8: x 10 rows of stride 9, y 10 rows of stride 8.
        let (x, y) = (Rows { len: 89, ld: 9 }, Rows { len: 80, ld: 8 });
        let ok = [span(0, 5, 5, 0), span(5, 0, 5, 0)];
        let v = |x: Rows, y: Rows, spans: &[Span], d: usize| validate_x_to_y("k", x, y, spans, d, THREADS);
        let cfg = v(x, y, &ok, 8).unwrap();
        assert_eq!((cfg.grid_dim, cfg.block_dim.0), ((5, 2, 1), THREADS));
        assert!(rejected(v(Rows { len: 88, ..x }, y, &ok, 8)), "x short");
        assert!(rejected(v(x, Rows { len: 79, ..y }, &ok, 8)), "y short");
        assert!(rejected(v(Rows { ld: 7, ..x }, y, &ok, 8)), "x stride below d");
        assert!(
            rejected(v(x, y, &[span(0, 0, 3, 0), span(4, 2, 3, 0)], 8)),
            "overlapping outputs"
        );
        assert!(rejected(v(x, y, &[], 8)), "no spans");
        assert!(rejected(v(x, y, &ok, 0)), "d 0");
        assert_eq!(
            v(x, y, &[span(0, 0, 0, 0)], 8).unwrap().grid_dim.0,
            0,
            "nothing to launch"
        );
    }
}
