//! Launcher of `cuda/argmax_rows.cu`: greedy token ids on the device.
//!
//! For each row of f32 logits, the index of its largest value, the first one on ties, with the NaN handling of the
//! host's scan — exactly [`crate::reference::argmax_rows::argmax`] (the sampler's greedy choice) on every input, so a
//! decode row at temperature 0 needs 4 bytes copied to the host instead of its vocabulary of logits.

use cudarc::driver::{CudaSlice, CudaStream, LaunchConfig};

use crate::launch::{addr, addr_mut, check_dim, check_disjoint_outputs, check_groups, check_rows, row_grid, Rows};
use crate::params::{Span, Spans};
use crate::{cubins, Gpu, Kernel, KernelError};

pub(crate) const ARGMAX_ROWS_F32: Kernel = Kernel::new(cubins::ARGMAX_ROWS, "argmax_rows_f32");

/// `ARGMAX_THREADS` of argmax_rows.cu.
const THREADS: u32 = 512;

/// `out[out_row + r] = argmax(x[in_row + r][0..n])` for each span's rows: `x` f32 rows of stride `x_ld`, `out` one u32
/// per row. Refused ([`KernelError::InvalidArgument`]) when a span's rows do not fit `x` or `out`, two spans write the
/// same ids, or `n` is 0; 1 to [`MAX_GROUPS`](crate::params::MAX_GROUPS) spans per launch. A row's id depends on that
/// row only.
pub fn argmax_rows_f32(
    gpu: &Gpu,
    stream: &CudaStream,
    x: &CudaSlice<f32>,
    x_ld: usize,
    out: &mut CudaSlice<u32>,
    spans: &[Span],
    n: usize,
) -> Result<(), KernelError> {
    let cfg = validate(ARGMAX_ROWS_F32.entry, Rows::of(x, x_ld), out.len(), spans, n)?;
    if cfg.grid_dim.0 == 0 {
        return Ok(());
    }
    let f = gpu.function(&ARGMAX_ROWS_F32)?;
    let params = Spans::pack(spans);
    let (x_ptr, out_ptr) = (addr(x, stream), addr_mut(out, stream));
    let (x_ld, n) = (x_ld as i32, n as i32);
    let mut launch = crate::launch::Launch::new(stream, &f);
    launch.arg(&params).arg(&x_ptr).arg(&x_ld).arg(&out_ptr).arg(&n);
    // SAFETY: the arguments match `argmax_rows_f32(Spans, const float* x, int x_ld, unsigned int* out, int n)` in order
    // and size. `validate` checked that every span's rows of x (n columns, stride x_ld) and its ids in out lie inside
    // those buffers, which this call borrows (out mutably, so it does not alias x), and that no two spans write the
    // same ids. Blocks past a span's rows write nothing.
    unsafe { launch.launch(cfg) }?;
    Ok(())
}

/// The launcher's checks, on buffer lengths only; returns the launch's grid.
fn validate(k: &str, x: Rows, out_len: usize, spans: &[Span], n: usize) -> Result<LaunchConfig, KernelError> {
    check_groups(k, spans.len())?;
    check_dim(k, "n", n)?;
    let out = Rows { len: out_len, ld: 1 };
    for s in spans {
        check_rows(k, "x", x, s.in_row, s.rows, 0, n)?;
        check_rows(k, "out", out, s.out_row, s.rows, 0, 1)?;
    }
    check_disjoint_outputs(k, spans)?;
    Ok(row_grid(spans, THREADS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::tests::{rejected, span};

    #[test]
    fn the_block_size_and_entry_are_the_kernels() {
        let cu = include_str!("../../../cuda/argmax_rows.cu");
        assert!(cu.contains(&format!("#define ARGMAX_THREADS {THREADS}\n")));
        assert!(cu.contains(ARGMAX_ROWS_F32.entry));
    }

    #[test]
    fn validate_checks_rows_ids_and_overlaps() {
        // n = 8: x 10 rows of stride 9, 6 ids
        let x = Rows { len: 89, ld: 9 };
        let v = |x: Rows, out: usize, spans: &[Span], n: usize| validate("k", x, out, spans, n);
        let ok = [span(0, 5, 1, 0), span(3, 0, 5, 0)];
        let cfg = v(x, 6, &ok, 8).unwrap();
        assert_eq!((cfg.grid_dim, cfg.block_dim.0), ((5, 2, 1), THREADS));
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
            v(x, 6, &[span(0, 0, 0, 0)], 8).unwrap().grid_dim.0,
            0,
            "nothing to launch"
        );
    }
}
