//! `to_bf16_f32` against [`reference::to_bf16::to_bf16`](crate::reference::to_bf16::to_bf16): bit for bit.

use half::bf16;

use super::harness::{
    alone_vs_grouped, bitwise, changed_outside, f32_normal, fail_if, gather, poison_bits, poisoned_bf16, upload_f32,
    Block, Check, Layout, SplitMix64,
};
use crate::params::Span;
use crate::reference::to_bf16::to_bf16 as to_bf16_ref;
use crate::to_bf16::{to_bf16, TO_BF16_F32};
use crate::{Gpu, KernelError};

/// Random f32 rows laid out for `rows` (one span per entry); every 7th value is moved onto a rounding tie (halfway
/// between two bf16 values), where a wrong rounding mode shows.
struct Case {
    layout: Layout,
    d: usize,
    x_ld: usize,
    y_ld: usize,
    x: Vec<f32>,
}

impl Case {
    /// `aligned`: strides of multiples of 4 (with d one too, the kernel's four-columns-a-thread path), else odd ones.
    fn new(seed: u64, rows: &[usize], d: usize, aligned: bool) -> Case {
        let mut rng = SplitMix64::new(seed);
        let layout = Layout::rows(rows, 1, false, 0);
        // Strides wider than d: the kernel must use them, not d.
        let (x_ld, y_ld) = if aligned { (d + 4, d + 8) } else { (d + 3, d + 5) };
        let mut x = f32_normal(&mut rng, layout.in_rows * x_ld, 2.0);
        for v in x.iter_mut().step_by(7) {
            // The low 16 bits 0x8000: exactly half a bf16 ulp above the truncation.
            *v = f32::from_bits((v.to_bits() & 0xffff_0000) | 0x8000);
        }
        Case {
            layout,
            d,
            x_ld,
            y_ld,
            x,
        }
    }

    fn shape(&self) -> String {
        let rows: Vec<usize> = self.layout.spans.iter().map(|s| s.rows).collect();
        format!("rows={rows:?} d={} ld={}/{}", self.d, self.x_ld, self.y_ld)
    }

    /// Launches on `spans` over a poisoned output; returns the whole output buffer.
    fn run(&self, gpu: &Gpu, spans: &[Span]) -> Result<Vec<bf16>, KernelError> {
        let stream = gpu.stream();
        let x = upload_f32(stream, &self.x)?;
        let mut y = poisoned_bf16(gpu, stream, self.layout.out_rows * self.y_ld)?;
        to_bf16(gpu, stream, &x, self.x_ld, &mut y, self.y_ld, spans, self.d)?;
        Ok(stream.clone_dtoh(&y)?)
    }
}

/// One span per entry of `rows`, against the reference: identical bits (tolerance 0), nothing written outside
/// (`aligned`: strides of multiples of 4).
pub fn check_to_bf16(gpu: &Gpu, seed: u64, rows: &[usize], d: usize, aligned: bool) -> Result<Check, KernelError> {
    let case = Case::new(seed, rows, d, aligned);
    let y = case.run(gpu, &case.layout.spans)?;
    let (mut got, mut want) = (Vec::new(), Vec::new());
    for s in &case.layout.spans {
        let x = gather(&case.x, case.x_ld, s.in_row, s.rows, 0, d);
        let mut r = vec![bf16::ZERO; x.len()];
        to_bf16_ref(&x, &mut r);
        want.extend(r);
        got.extend(gather(&y, case.y_ld, s.out_row, s.rows, 0, d));
    }
    let check = bitwise(TO_BF16_F32.entry, case.shape(), &want, &got);
    let strays = changed_outside(&y, &case.layout.out_blocks(case.y_ld, d, 0), |_| poison_bits::<bf16>());
    Ok(fail_if(check, strays, "writes outside the spans"))
}

/// The cell of `rows[target]` launched alone and inside the launch of all `rows`: identical bits.
pub fn check_to_bf16_grouping(
    gpu: &Gpu,
    seed: u64,
    rows: &[usize],
    target: usize,
    d: usize,
) -> Result<Check, KernelError> {
    let case = Case::new(seed, rows, d, true);
    alone_vs_grouped(
        TO_BF16_F32.entry,
        case.shape(),
        (&case.layout.spans, target),
        |spans| case.run(gpu, spans),
        |s| Block::rows(case.y_ld, s.out_row, s.rows, 0, d),
    )
}

/// At the engine's widths (the hidden rows of 576 and 2048) and awkward ones (d below the block, rows 1 and 300), with
/// odd strides (one column a thread) and strides of multiples of 4 (four).
pub fn checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    vec![
        check_to_bf16(gpu, seed, &[40, 17], 576, false),
        check_to_bf16(gpu, seed ^ 1, &[130, 1, 64, 77], 2048, false),
        check_to_bf16(gpu, seed ^ 2, &[9, 300, 2], 100, false),
        check_to_bf16(gpu, seed ^ 4, &[40, 17], 576, true),
        check_to_bf16(gpu, seed ^ 5, &[130, 1, 64, 77], 2048, true),
        check_to_bf16(gpu, seed ^ 6, &[1], 2048, true),
        check_to_bf16(gpu, seed ^ 7, &[9, 300, 2], 100, true),
        check_to_bf16_grouping(gpu, seed ^ 3, &[40, 17, 200, 3], 1, 576),
    ]
}
