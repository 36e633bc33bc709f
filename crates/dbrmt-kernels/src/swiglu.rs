//! Launcher of `cuda/swiglu.cu`: the SwiGLU activation of the LLaMA MLP over the rows of the cells of one step.
//!
//! The fused gate/up product holds gate in columns `0..I` and up in `I..2I` of each row; the output is
//! `silu(gate) · up` (f32 math, bf16 storage). The CPU reference is [`crate::reference::swiglu::swiglu`].

use cudarc::driver::{CudaSlice, CudaStream, LaunchConfig};
use half::bf16;

use crate::launch::{addr, addr_mut, check_disjoint_outputs, check_groups, check_rows, invalid, row_grid, Rows};
use crate::params::{Span, Spans};
use crate::{cubins, Gpu, Kernel, KernelError};

const SWIGLU_BF16: Kernel = Kernel::new(cubins::SWIGLU, "swiglu_bf16");

/// `SWIGLU_THREADS` of swiglu.cu.
const THREADS: u32 = 256;

/// For each span, rows `out_row..out_row + rows` of `act` (row stride `act_ld`, `intermediate` columns) get
/// `silu(gate) · up` of rows `in_row..` of `gu` (row stride `gu_ld`, gate in columns `0..intermediate`, up in
/// `intermediate..2·intermediate`), on `stream`.
///
/// Every span is checked against the buffers first, and spans must not write the same output rows; anything that
/// does not fit is a [`KernelError::InvalidArgument`].
#[allow(clippy::too_many_arguments)]
pub fn swiglu(
    gpu: &Gpu,
    stream: &CudaStream,
    gu: &CudaSlice<bf16>,
    gu_ld: usize,
    act: &mut CudaSlice<bf16>,
    act_ld: usize,
    spans: &[Span],
    intermediate: usize,
) -> Result<(), KernelError> {
    let cfg = validate(Rows::of(gu, gu_ld), Rows::of(act, act_ld), spans, intermediate)?;
    if cfg.grid_dim.0 == 0 {
        return Ok(());
    }
    let f = gpu.function(&SWIGLU_BF16)?;
    let params = Spans::pack(spans);
    let (gu_ptr, act_ptr) = (addr(gu, stream), addr_mut(act, stream));
    // All fit in i32: `validate` checked them.
    let (gu_ld, act_ld, inter) = (gu_ld as i32, act_ld as i32, intermediate as i32);
    let mut launch = crate::launch::Launch::new(stream, &f);
    launch
        .arg(&params)
        .arg(&gu_ptr)
        .arg(&gu_ld)
        .arg(&act_ptr)
        .arg(&act_ld)
        .arg(&inter);
    // SAFETY: the arguments match `swiglu_bf16(Spans, const bf16* gu, int gu_ld, bf16* act, int act_ld, int inter)`
    // in order and size. `validate` checked every span: the rows and 2·intermediate columns it reads from gu and the
    // rows and intermediate columns it writes in act lie inside those buffers (act borrowed mutably, so the two do
    // not alias), and no two spans write the same rows.
    unsafe { launch.launch(cfg) }?;
    Ok(())
}

/// The launcher's checks, on buffer lengths only (so they are tested without a GPU); returns the launch's grid.
fn validate(gu: Rows, act: Rows, spans: &[Span], intermediate: usize) -> Result<LaunchConfig, KernelError> {
    let k = SWIGLU_BF16.entry;
    check_groups(k, spans.len())?;
    if intermediate == 0 || intermediate > (i32::MAX / 2) as usize {
        return Err(invalid(k, format!("intermediate size {intermediate}")));
    }
    for s in spans {
        check_rows(k, "gu", gu, s.in_row, s.rows, 0, 2 * intermediate)?;
        check_rows(k, "act", act, s.out_row, s.rows, 0, intermediate)?;
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
        let cu = include_str!("../../../cuda/swiglu.cu");
        assert!(cu.contains(&format!("#define SWIGLU_THREADS {THREADS}\n")));
        assert!(cu.contains(&format!(" {}(", SWIGLU_BF16.entry)));
    }

    #[test]
    fn validate_checks_rows_widths_and_overlaps() {
        // I = 4: gu 6 rows of stride 8, act 6 rows of stride 5.
        let (gu, act) = (Rows { len: 48, ld: 8 }, Rows { len: 29, ld: 5 });
        let ok = [span(0, 3, 3, 0), span(3, 0, 3, 0)];
        assert_eq!(validate(gu, act, &ok, 4).unwrap().grid_dim, (3, 2, 1));
        assert!(rejected(validate(Rows { len: 47, ..gu }, act, &ok, 4)), "gu short");
        assert!(rejected(validate(gu, Rows { len: 28, ..act }, &ok, 4)), "act short");
        assert!(rejected(validate(gu, act, &ok, 5)), "gate/up wider than the stride");
        assert!(
            rejected(validate(gu, act, &[span(0, 0, 3, 0), span(3, 2, 3, 0)], 4)),
            "overlap"
        );
        assert!(rejected(validate(gu, act, &[], 4)), "no spans");
        assert!(rejected(validate(gu, act, &vec![span(0, 0, 0, 0); 65], 4)), "65 spans");
        assert!(rejected(validate(gu, act, &ok, 0)), "intermediate 0");
    }
}
