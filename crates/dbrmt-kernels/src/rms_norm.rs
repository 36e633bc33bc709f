//! Launcher of `cuda/rms_norm.cu`: RMSNorm over the rows of the cells of one step.
//!
//! `y = w[layer] · (x · rsqrt(mean(x²) + eps))` per row (HF `LlamaRMSNorm`'s order, f32 math; x bf16 or f32, the
//! hidden rows' type [`HiddenElem`]; y bf16), one span per cell, each with its own layer's weight row. Also the final
//! norm before the LM head (layer 0 of a one-row weight). The CPU reference is [`crate::reference::rms_norm::rms_norm`].

use cudarc::driver::{CudaSlice, CudaStream, LaunchConfig, PushKernelArg};
use half::bf16;

use crate::launch::{addr, addr_mut, check_disjoint_outputs, check_groups, check_rows, invalid};
use crate::params::{Span, Spans};
use crate::{cubins, Gpu, HiddenElem, Kernel, KernelError};

const RMS_NORM_BF16: Kernel = Kernel {
    file: "rms_norm",
    cubin: cubins::RMS_NORM,
    entry: "rms_norm_bf16",
};
const RMS_NORM_F32: Kernel = Kernel {
    file: "rms_norm",
    cubin: cubins::RMS_NORM,
    entry: "rms_norm_f32",
};

/// The entry point for input rows of type `X`: `rms_norm_bf16` or `rms_norm_f32` (the output is bf16 for both).
pub(crate) fn kernel<X: HiddenElem>() -> &'static Kernel {
    X::pick(&RMS_NORM_BF16, &RMS_NORM_F32)
}

/// `RMS_NORM_THREADS` of rms_norm.cu.
const THREADS: u32 = 256;

/// Normalises rows `in_row..in_row + rows` of `x` (`d` columns, row stride `x_ld`) into rows `out_row..` of `y` (row
/// stride `y_ld`) for each span, with weight row `w[layer]` of the stacked weights `w` (`[layers, d]`), on `stream`.
/// `x` is bf16 or f32 (`rms_norm_bf16` or `rms_norm_f32` is launched, as `X` is); `y` is bf16.
///
/// Every span is checked against the buffers first (a span, layer or stride that does not fit, or two spans writing
/// the same output rows, is a [`KernelError::InvalidArgument`]); 1 to [`MAX_GROUPS`](crate::params::MAX_GROUPS)
/// spans per launch. A span's result does not depend on the other spans of the launch (bitwise).
#[allow(clippy::too_many_arguments)]
pub fn rms_norm<X: HiddenElem>(
    gpu: &Gpu,
    stream: &CudaStream,
    x: &CudaSlice<X>,
    x_ld: usize,
    w: &CudaSlice<bf16>,
    y: &mut CudaSlice<bf16>,
    y_ld: usize,
    spans: &[Span],
    d: usize,
    eps: f32,
) -> Result<(), KernelError> {
    let kernel = kernel::<X>();
    let name = kernel.entry;
    check_groups(name, spans.len())?;
    if d == 0 || d > i32::MAX as usize {
        return Err(invalid(name, format!("d = {d}")));
    }
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(invalid(name, format!("eps = {eps}")));
    }
    for s in spans {
        check_rows(name, "x", x.len(), s.in_row, s.rows, x_ld, 0, d)?;
        check_rows(name, "y", y.len(), s.out_row, s.rows, y_ld, 0, d)?;
        check_rows(name, "w", w.len(), s.layer, 1, d, 0, d)?;
    }
    check_disjoint_outputs(name, spans)?;
    let max_rows = spans.iter().map(|s| s.rows).max().unwrap_or(0);
    if max_rows == 0 {
        return Ok(());
    }

    let f = gpu.function(kernel)?;
    let params = Spans::pack(spans);
    let (x_ptr, w_ptr, y_ptr) = (addr(x, stream), addr(w, stream), addr_mut(y, stream));
    let (x_ld, y_ld, d) = (x_ld as i32, y_ld as i32, d as i32);
    let cfg = LaunchConfig {
        grid_dim: (max_rows as u32, spans.len() as u32, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut launch = stream.launch_builder(&f);
    launch
        .arg(&params)
        .arg(&x_ptr)
        .arg(&x_ld)
        .arg(&w_ptr)
        .arg(&y_ptr)
        .arg(&y_ld)
        .arg(&d)
        .arg(&eps);
    // SAFETY: the arguments match `rms_norm_<X>(Spans, const X* x, int x_ld, const bf16* w, bf16* y, int y_ld,
    // int d, float eps)` in order and size, the entry point picked by `X` (half::bf16 is the 2-byte __nv_bfloat16, f32
    // is float, and `x` holds X). Every span was checked above: the rows it reads from x, the weight row it
    // reads from w and the rows it writes in y lie inside those buffers, which this call borrows (y mutably, so it
    // aliases neither x nor w), and no two spans write the same rows. Blocks past a span's rows write nothing.
    unsafe { launch.launch(cfg) }?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_named_after_the_input_type() {
        let cu = include_str!("../../../cuda/rms_norm.cu");
        crate::hidden::assert_entries("rms_norm", cu, [kernel::<bf16>().entry, kernel::<f32>().entry]);
        assert!(cu.contains(&format!("#define RMS_NORM_THREADS {THREADS}\n")));
    }
}
