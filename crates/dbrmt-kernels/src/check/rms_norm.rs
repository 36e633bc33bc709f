//! `rms_norm_bf16` and `rms_norm_f32` (bf16 or f32 input rows) against
//! [`reference::rms_norm::rms_norm`](crate::reference::rms_norm::rms_norm).

use half::bf16;

use super::harness::{
    alone_vs_grouped, bf16_normal, changed_outside, compare, fail_if, gather, hidden_normal, poison_bits,
    poisoned_bf16, round_bf16, upload_bf16, upload_hidden, Block, Check, Layout, SplitMix64, BF16_OUT_TOL,
};
use crate::params::Span;
use crate::reference::rms_norm::rms_norm as rms_norm_ref;
use crate::rms_norm::{kernel, kernel_for, rms_norm};
use crate::{Gpu, HiddenElem, KernelError};

/// The ε of LLaMA's RMSNorm (and ARMT's config).
const EPS: f32 = 1e-5;

/// Random RMSNorm inputs (as input rows of type `X` hold them: bf16-rounded or f32) and weights, laid out for `rows`
/// (one span per entry).
struct Case {
    layout: Layout,
    d: usize,
    layers: usize,
    x_ld: usize,
    y_ld: usize,
    x: Vec<f32>,
    w: Vec<f32>,
}

impl Case {
    /// `aligned`: strides of multiples of 4 (with d a multiple of 128, many rows take the warp-per-row entries), else
    /// odd ones.
    fn new<X: HiddenElem>(seed: u64, rows: &[usize], d: usize, layers: usize, aligned: bool) -> Case {
        let mut rng = SplitMix64::new(seed);
        let layout = Layout::rows(rows, layers, false, 0);
        // Strides wider than d: the kernel must use them, not d.
        let (x_ld, y_ld) = if aligned { (d + 4, d + 8) } else { (d + 3, d + 5) };
        let x = hidden_normal::<X>(&mut rng, layout.in_rows * x_ld, 1.5);
        let w = bf16_normal(&mut rng, layers * d, 0.2)
            .into_iter()
            .map(|v| round_bf16(1.0 + v))
            .collect();
        Case {
            layout,
            d,
            layers,
            x_ld,
            y_ld,
            x,
            w,
        }
    }

    fn shape(&self) -> String {
        let rows: Vec<usize> = self.layout.spans.iter().map(|s| s.rows).collect();
        format!(
            "rows={rows:?} d={} ld={}/{} layers={}",
            self.d, self.x_ld, self.y_ld, self.layers
        )
    }

    /// Launches on `spans` (input rows of type `X`, as drawn by `new::<X>`) over poisoned outputs; returns the whole
    /// output buffer.
    fn run<X: HiddenElem>(&self, gpu: &Gpu, spans: &[Span]) -> Result<Vec<bf16>, KernelError> {
        let stream = gpu.stream();
        let x = upload_hidden::<X>(stream, &self.x)?;
        let w = upload_bf16(stream, &self.w)?;
        let mut y = poisoned_bf16(gpu, stream, self.layout.out_rows * self.y_ld)?;
        rms_norm(gpu, stream, &x, self.x_ld, &w, &mut y, self.y_ld, spans, self.d, EPS)?;
        Ok(stream.clone_dtoh(&y)?)
    }
}

/// RMSNorm of one span per entry of `rows` (each with its own layer's weights, `layers` stacked; input rows of type
/// `X`), against the f32 reference. Tolerance [`BF16_OUT_TOL`] for both input types: the output's one bf16 rounding
/// (the mean square differs from the reference's f64 sum by ~1e-7 relative).
pub fn check_rms_norm<X: HiddenElem>(
    gpu: &Gpu,
    seed: u64,
    rows: &[usize],
    d: usize,
    layers: usize,
    aligned: bool,
) -> Result<Check, KernelError> {
    let case = Case::new::<X>(seed, rows, d, layers, aligned);
    let y = case.run::<X>(gpu, &case.layout.spans)?;
    let (mut got, mut want) = (Vec::new(), Vec::new());
    for s in &case.layout.spans {
        let x = gather(&case.x, case.x_ld, s.in_row, s.rows, 0, d);
        let mut r = vec![0.0; x.len()];
        rms_norm_ref(&x, &case.w[s.layer * d..(s.layer + 1) * d], EPS, &mut r);
        want.extend(r);
        got.extend(
            gather(&y, case.y_ld, s.out_row, s.rows, 0, d)
                .into_iter()
                .map(f32::from),
        );
    }
    // named after the entry the launch took (block, register-cached few rows, or warp per row)
    let entry = kernel_for::<X>(&case.layout.spans, d, (case.x_ld, case.y_ld)).entry;
    let check = compare(entry, case.shape(), &got, &want, BF16_OUT_TOL);
    let strays = changed_outside(&y, &case.layout.out_blocks(case.y_ld, d, 0), |_| poison_bits::<bf16>());
    Ok(fail_if(check, strays, "writes outside the spans"))
}

/// The cell of `rows[target]` launched alone and inside the launch of all `rows` (in their order; input rows of type
/// `X`): identical bits.
pub fn check_rms_norm_grouping<X: HiddenElem>(
    gpu: &Gpu,
    seed: u64,
    rows: &[usize],
    target: usize,
    d: usize,
) -> Result<Check, KernelError> {
    let case = Case::new::<X>(seed, rows, d, rows.len(), true);
    alone_vs_grouped(
        kernel::<X>().entry,
        case.shape(),
        (&case.layout.spans, target),
        |spans| case.run::<X>(gpu, spans),
        |s| Block::rows(case.y_ld, s.out_row, s.rows, 0, d),
    )
}

/// RMSNorm at the shapes the engine uses and at awkward ones (d not a multiple of the block, rows 1 and 17, a
/// short last segment), plus the grouping check; each for bf16 and for f32 input rows.
pub fn checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    vec![
        check_rms_norm::<bf16>(gpu, seed, &[40, 17], 576, 2, false),
        check_rms_norm::<bf16>(gpu, seed ^ 1, &[130, 1, 64, 77], 2048, 3, false),
        check_rms_norm::<bf16>(gpu, seed ^ 2, &[33, 5], 3072, 2, false),
        check_rms_norm::<bf16>(gpu, seed ^ 3, &[9, 300, 2], 100, 1, false),
        check_rms_norm_grouping::<bf16>(gpu, seed ^ 4, &[40, 17, 200, 3], 1, 576),
        check_rms_norm::<f32>(gpu, seed ^ 5, &[40, 17], 576, 2, false),
        check_rms_norm::<f32>(gpu, seed ^ 6, &[130, 1, 64, 77], 2048, 3, false),
        check_rms_norm::<f32>(gpu, seed ^ 7, &[33, 5], 3072, 2, false),
        check_rms_norm::<f32>(gpu, seed ^ 8, &[9, 300, 2], 100, 1, false),
        check_rms_norm_grouping::<f32>(gpu, seed ^ 9, &[40, 17, 200, 3], 1, 576),
        // rows wider than the registers hold (32 · 128 columns): the looping path
        check_rms_norm::<f32>(gpu, seed ^ 10, &[3, 2], 5000, 2, false),
        check_rms_norm::<bf16>(gpu, seed ^ 11, &[1, 70], 4100, 2, false),
        // many rows of 128·k columns with strides of multiples of 4: the warp-per-row entries (160M's 768)
        check_rms_norm::<f32>(gpu, seed ^ 18, &[130, 1, 200], 768, 3, true),
        check_rms_norm::<bf16>(gpu, seed ^ 19, &[70, 3], 512, 2, true),
        check_rms_norm::<f32>(gpu, seed ^ 20, &[65, 9], 128, 2, true),
        // ... and the wide ones (up to 2048 columns: the 1B model's), at 2048 and at 15 · 128
        check_rms_norm::<f32>(gpu, seed ^ 23, &[130, 1, 200], 2048, 3, true),
        check_rms_norm::<bf16>(gpu, seed ^ 24, &[70, 3], 1920, 2, true),
        check_rms_norm_grouping::<bf16>(gpu, seed ^ 21, &[2, 90], 0, 768),
        check_rms_norm_grouping::<f32>(gpu, seed ^ 22, &[1, 100, 64], 0, 256),
        // a decoded row (the register-cached few-row entry) against the same row in a prefill's launch (the
        // warp-per-row entries at 2048, 768 and 256; the block per row at 4096): 1B, 8B, 160M
        check_rms_norm_grouping::<f32>(gpu, seed ^ 13, &[1, 200], 0, 2048),
        check_rms_norm_grouping::<f32>(gpu, seed ^ 14, &[3, 100], 0, 4096),
        check_rms_norm_grouping::<f32>(gpu, seed ^ 15, &[2, 90], 0, 768),
        check_rms_norm_grouping::<bf16>(gpu, seed ^ 16, &[1, 65], 0, 2048),
    ]
}
