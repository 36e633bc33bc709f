//! Launcher of `cuda/rms_norm.cu`: RMSNorm over the rows of the cells of one step.
//!
//! `y = w[layer] · (x · rsqrt(mean(x²) + eps))` per row (HF `LlamaRMSNorm`'s order, f32 math; x bf16 or f32, the
//! hidden rows' type [`HiddenElem`]; y bf16), one span per cell, each with its own layer's weight row. Also the final
//! norm before the LM head (layer 0 of a one-row weight). The CPU reference is [`crate::reference::rms_norm::rms_norm`].

use cudarc::driver::{CudaSlice, CudaStream, LaunchConfig};
use half::bf16;

use crate::launch::{
    addr, addr_mut, check_dim, check_disjoint_outputs, check_groups, check_index, check_rows, invalid, row_grid, Rows,
};
use crate::params::{Span, Spans};
use crate::{cubins, Gpu, HiddenElem, Kernel, KernelError};

const RMS_NORM_BF16: Kernel = Kernel::new(cubins::RMS_NORM, "rms_norm_bf16");
const RMS_NORM_F32: Kernel = Kernel::new(cubins::RMS_NORM, "rms_norm_f32");
const RMS_NORM_BF16_FEW: Kernel = Kernel::new(cubins::RMS_NORM, "rms_norm_bf16_few");
const RMS_NORM_F32_FEW: Kernel = Kernel::new(cubins::RMS_NORM, "rms_norm_f32_few");
const RMS_NORM_BF16_WARP: Kernel = Kernel::new(cubins::RMS_NORM, "rms_norm_bf16_warp");
const RMS_NORM_F32_WARP: Kernel = Kernel::new(cubins::RMS_NORM, "rms_norm_f32_warp");
const RMS_NORM_BF16_WARP_WIDE: Kernel = Kernel::new(cubins::RMS_NORM, "rms_norm_bf16_warp_wide");
const RMS_NORM_F32_WARP_WIDE: Kernel = Kernel::new(cubins::RMS_NORM, "rms_norm_f32_warp_wide");

/// The entry point for input rows of type `X`: `rms_norm_bf16` or `rms_norm_f32` (the output is bf16 for both).
pub(crate) fn kernel<X: HiddenElem>() -> &'static Kernel {
    X::pick(&RMS_NORM_BF16, &RMS_NORM_F32)
}

/// The entry point of a launch over `spans`: [`kernel`]'s (a block per row), its `_few` twin (rows of up to 4,096
/// columns held in registers: one round of loads for a decoded row) for [`few_rows`](crate::launch::few_rows), or its
/// `_warp` twin (a warp per row, four columns a lane per 128) for many rows of a multiple of 128 columns, at most
/// [`WARP_MAX_D`], with row strides of multiples of 4, or its `_warp_wide` twin (the same for up to
/// [`WARP_WIDE_MAX_D`] columns, its own entry so that `_warp` keeps its registers). The same bits from all four.
pub(crate) fn kernel_for<X: HiddenElem>(spans: &[Span], d: usize, (x_ld, y_ld): (usize, usize)) -> &'static Kernel {
    if crate::launch::few_rows(spans) && d <= 32 * THREADS as usize {
        return X::pick(&RMS_NORM_BF16_FEW, &RMS_NORM_F32_FEW);
    }
    let vectors = d.is_multiple_of(128) && x_ld.is_multiple_of(4) && y_ld.is_multiple_of(4);
    match (vectors, d) {
        (true, ..=WARP_MAX_D) => X::pick(&RMS_NORM_BF16_WARP, &RMS_NORM_F32_WARP),
        (true, ..=WARP_WIDE_MAX_D) => X::pick(&RMS_NORM_BF16_WARP_WIDE, &RMS_NORM_F32_WARP_WIDE),
        _ => kernel::<X>(),
    }
}

/// `RMS_NORM_THREADS` of rms_norm.cu.
const THREADS: u32 = 128;
/// `WARP_MAX_D` of rms_norm.cu: the widest row of the `_warp` entries (a warp per row, `THREADS / 32` rows a block).
const WARP_MAX_D: usize = 768;
/// `WARP_WIDE_MAX_D` of rms_norm.cu: the widest row of the `_warp_wide` entries.
const WARP_WIDE_MAX_D: usize = 2048;

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
    let kernel = kernel_for::<X>(spans, d, (x_ld, y_ld));
    launch_with(kernel, gpu, stream, (x, x_ld), w, (y, y_ld), spans, d, eps)
}

/// [`rms_norm`] with the entry point given (`kernel`: one of `X`'s, as [`kernel_for`] would pick for these
/// arguments or the block-per-row one, which takes any; the benchmarks compare them).
#[allow(clippy::too_many_arguments)]
pub(crate) fn launch_with<X: HiddenElem>(
    kernel: &'static Kernel,
    gpu: &Gpu,
    stream: &CudaStream,
    (x, x_ld): (&CudaSlice<X>, usize),
    w: &CudaSlice<bf16>,
    (y, y_ld): (&mut CudaSlice<bf16>, usize),
    spans: &[Span],
    d: usize,
    eps: f32,
) -> Result<(), KernelError> {
    let mut cfg = validate(
        kernel.entry,
        Rows::of(x, x_ld),
        w.len(),
        Rows::of(y, y_ld),
        spans,
        d,
        eps,
    )?;
    if kernel.entry.contains("_warp") {
        cfg.grid_dim.0 = cfg.grid_dim.0.div_ceil(THREADS / 32); // a warp per row
    }
    if cfg.grid_dim.0 == 0 {
        return Ok(());
    }
    let f = gpu.function(kernel)?;
    let params = Spans::pack(spans);
    let (x_ptr, w_ptr, y_ptr) = (addr(x, stream), addr(w, stream), addr_mut(y, stream));
    // All fit in i32: `validate` checked them.
    let (x_ld, y_ld, d) = (x_ld as i32, y_ld as i32, d as i32);
    let mut launch = crate::launch::Launch::new(stream, &f);
    launch
        .arg(&params)
        .arg(&x_ptr)
        .arg(&x_ld)
        .arg(&w_ptr)
        .arg(&y_ptr)
        .arg(&y_ld)
        .arg(&d)
        .arg(&eps);
    // SAFETY: the arguments match `rms_norm_<X>[_few](Spans, const X* x, int x_ld, const bf16* w, bf16* y, int y_ld,
    // int d, float eps)` in order and size, the entry point picked by `X` (half::bf16 is the 2-byte __nv_bfloat16, f32
    // is float, and `x` holds X). `validate` checked every span: the rows it reads from x, the weight row it
    // reads from w and the rows it writes in y lie inside those buffers, which this call borrows (y mutably, so it
    // aliases neither x nor w), and no two spans write the same rows. Blocks (warps, in the `_warp` entries) past a
    // span's rows write nothing. A `_warp` entry reads and writes 4 columns at once: `kernel_for` took it only for
    // strides of multiples of 4 and d of 128 (as for `_warp_wide`, also at most WARP_WIDE_MAX_D; [`launch_with`]'s
    // callers pass what `kernel_for` picks or the block entry), and a CudaSlice starts where its allocation does.
    unsafe { launch.launch(cfg) }?;
    Ok(())
}

/// The launcher's checks, on buffer lengths only (so they are tested without a GPU); returns the launch's grid.
fn validate(
    k: &str,
    x: Rows,
    w_len: usize,
    y: Rows,
    spans: &[Span],
    d: usize,
    eps: f32,
) -> Result<LaunchConfig, KernelError> {
    check_groups(k, spans.len())?;
    check_dim(k, "d", d)?;
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(invalid(k, format!("eps = {eps}")));
    }
    for s in spans {
        check_rows(k, "x", x, s.in_row, s.rows, 0, d)?;
        check_rows(k, "y", y, s.out_row, s.rows, 0, d)?;
        check_index(k, "layer", s.layer, w_len / d)?;
    }
    check_disjoint_outputs(k, spans)?;
    Ok(row_grid(spans, THREADS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::tests::{rejected, span};

    #[test]
    fn entries_are_named_after_the_input_type() {
        let cu = include_str!("../../../cuda/rms_norm.cu");
        crate::hidden::assert_entries("rms_norm", cu, [kernel::<bf16>().entry, kernel::<f32>().entry]);
        assert!(cu.contains(&format!("#define RMS_NORM_THREADS {THREADS}\n")));
        assert!(
            cu.contains("constexpr int CACHED = 32;"),
            "kernel_for's 32 · THREADS columns"
        );
        assert!(cu.contains(&format!("#define WARP_MAX_D {WARP_MAX_D}\n")));
        assert!(cu.contains(&format!("#define WARP_WIDE_MAX_D {WARP_WIDE_MAX_D}\n")));
        for k in [
            &RMS_NORM_BF16_FEW,
            &RMS_NORM_F32_FEW,
            &RMS_NORM_BF16_WARP,
            &RMS_NORM_F32_WARP,
            &RMS_NORM_BF16_WARP_WIDE,
            &RMS_NORM_F32_WARP_WIDE,
        ] {
            assert!(cu.contains(&format!(" {}(", k.entry)), "{}", k.entry);
        }
    }

    #[test]
    fn few_rows_take_the_register_cached_entries() {
        let one = [span(0, 0, 1, 0)];
        assert_eq!(kernel_for::<f32>(&one, 2048, (2048, 2048)).entry, "rms_norm_f32_few");
        assert_eq!(kernel_for::<bf16>(&one, 4096, (4096, 4096)).entry, "rms_norm_bf16_few");
        assert_eq!(
            kernel_for::<f32>(&one, 4097, (4097, 4097)).entry,
            "rms_norm_f32",
            "wider than the registers hold"
        );
        assert_eq!(
            kernel_for::<f32>(&[span(0, 0, 65, 0)], 2048, (2048, 2048)).entry,
            "rms_norm_f32_warp_wide"
        );
        assert_eq!(
            kernel_for::<f32>(&[span(0, 0, 65, 0)], 2176, (2176, 2176)).entry,
            "rms_norm_f32",
            "past WARP_WIDE_MAX_D"
        );
        // many rows of 128·k <= 768 columns with strides of multiples of 4: a warp per row
        let many = [span(0, 0, 65, 0)];
        assert_eq!(kernel_for::<f32>(&many, 768, (768, 768)).entry, "rms_norm_f32_warp");
        assert_eq!(kernel_for::<bf16>(&many, 512, (516, 520)).entry, "rms_norm_bf16_warp");
        assert_eq!(kernel_for::<f32>(&one, 768, (768, 768)).entry, "rms_norm_f32_few");
        assert_eq!(
            kernel_for::<f32>(&many, 576, (576, 576)).entry,
            "rms_norm_f32",
            "not 128·k"
        );
        assert_eq!(
            kernel_for::<f32>(&many, 768, (771, 768)).entry,
            "rms_norm_f32",
            "odd stride"
        );
        assert_eq!(
            kernel_for::<f32>(&many, 896, (896, 896)).entry,
            "rms_norm_f32_warp_wide",
            "past WARP_MAX_D"
        );
        assert_eq!(
            kernel_for::<f32>(&many, 1000, (1000, 1000)).entry,
            "rms_norm_f32",
            "not 128·k"
        );
    }

    #[test]
    fn validate_checks_rows_layers_and_overlaps() {
        // d = 8: x 10 rows of stride 9, y 10 rows of stride 8, w 2 layers.
        let (x, y, w) = (Rows { len: 89, ld: 9 }, Rows { len: 80, ld: 8 }, 16);
        let ok = [span(0, 5, 5, 1), span(5, 0, 5, 0)];
        let v = |x: Rows, w: usize, y: Rows, spans: &[Span], d: usize, eps: f32| validate("k", x, w, y, spans, d, eps);
        let cfg = v(x, w, y, &ok, 8, 1e-5).unwrap();
        assert_eq!((cfg.grid_dim, cfg.block_dim.0), ((5, 2, 1), THREADS));
        assert!(rejected(v(Rows { len: 88, ..x }, w, y, &ok, 8, 1e-5)), "x short");
        assert!(rejected(v(x, w, Rows { len: 79, ..y }, &ok, 8, 1e-5)), "y short");
        assert!(rejected(v(Rows { ld: 7, ..x }, w, y, &ok, 8, 1e-5)), "x stride below d");
        assert!(rejected(v(x, 15, y, &ok, 8, 1e-5)), "layer 1 needs 16 weights");
        assert!(
            rejected(v(x, w, y, &[span(0, 0, 3, 2)], 8, 1e-5)),
            "layer past the weights"
        );
        assert!(
            rejected(v(x, w, y, &[span(0, 0, 3, 0), span(4, 2, 3, 1)], 8, 1e-5)),
            "overlapping outputs"
        );
        assert!(rejected(v(x, w, y, &[], 8, 1e-5)), "no spans");
        assert!(rejected(v(x, w, y, &vec![span(0, 0, 0, 0); 65], 8, 1e-5)), "65 spans");
        assert!(rejected(v(x, w, y, &ok, 0, 1e-5)), "d 0");
        assert!(
            rejected(v(x, w, y, &ok, 8, f32::NAN)) && rejected(v(x, w, y, &ok, 8, -1.0)),
            "eps"
        );
        assert_eq!(
            v(x, w, y, &[span(0, 0, 0, 0)], 8, 1e-5).unwrap().grid_dim.0,
            0,
            "nothing to launch"
        );
    }
}
