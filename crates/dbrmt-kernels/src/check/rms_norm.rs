//! `rms_norm_bf16` and `rms_norm_f32` (bf16 or f32 input rows) against
//! [`reference::rms_norm::rms_norm`](crate::reference::rms_norm::rms_norm), and the row layouts and comparisons shared by the
//! checks of the decoder layer's row kernels (rope, attention, swiglu, embed).

use half::bf16;

use super::{compare, poisoned_bf16, upload_bf16, upload_hidden, Check, Rng, POISON_BF16_BITS};
use crate::params::Span;
use crate::reference::rms_norm::rms_norm as rms_norm_ref;
use crate::rms_norm::{kernel, rms_norm};
use crate::{Gpu, HiddenElem, KernelError};

/// The ε of LLaMA's RMSNorm (and ARMT's config).
const EPS: f32 = 1e-5;

/// The bound on `rel_err` for a row kernel whose only rounding is the bf16 store of an f32 result: one rounding is at
/// most 2⁻⁹ relative (≈ 2e-3; ≈ 1.1e-3 RMS over many elements), plus f32 differences in the order of operations
/// (≈ 1e-6); 8e-3 leaves a factor of 4 over the worst case of one rounding, and a wrong index or a missed
/// normalisation is off by O(1).
pub const ROW_KERNEL_TOL: f64 = 8e-3;

/// Cells of one launch laid out in their buffers: spans with the given row counts, each after a gap row, outputs in
/// the reverse order of the inputs with two gap rows between them (so a kernel that confused input and output rows,
/// or one span with another, writes the wrong place), layer = span index mod `layers`.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub spans: Vec<Span>,
    /// Rows the input buffer needs.
    pub in_rows: usize,
    /// Rows the output buffer needs (`extra` more rows per span than `rows`, for kernels that write more rows
    /// than they read, like the embedding's memory rows).
    pub out_rows: usize,
}

impl Layout {
    /// `in_place`: every span's output rows are its input rows (RoPE).
    pub(crate) fn new(rows: &[usize], layers: usize, in_place: bool, extra: usize) -> Layout {
        let mut spans = Vec::with_capacity(rows.len());
        let mut r = 1;
        for (i, &n) in rows.iter().enumerate() {
            spans.push(Span {
                in_row: r,
                out_row: r,
                rows: n,
                layer: i % layers.max(1),
                flag: false,
                state: i,
            });
            r += n + 1;
        }
        let in_rows = r;
        if in_place {
            return Layout {
                spans,
                in_rows,
                out_rows: in_rows,
            };
        }
        let mut o = 2;
        for s in spans.iter_mut().rev() {
            s.out_row = o;
            o += s.rows + extra + 2;
        }
        Layout {
            spans,
            in_rows,
            out_rows: o,
        }
    }
}

/// Rows `row..row + rows`, columns `col..col + width` of a row-major matrix with row stride `ld`, as one dense
/// `[rows, width]` vector.
pub(crate) fn gather<T: Copy>(buf: &[T], ld: usize, row: usize, rows: usize, col: usize, width: usize) -> Vec<T> {
    (row..row + rows)
        .flat_map(|r| buf[r * ld + col..r * ld + col + width].iter().copied())
        .collect()
}

/// Elements of an output buffer (row stride `ld`) outside the regions `(row, rows, width)` that no longer hold
/// `expected` there: writes a kernel must not have made.
pub(crate) fn stray_writes(
    buf: &[bf16],
    ld: usize,
    regions: &[(usize, usize, usize)],
    expected: impl Fn(usize) -> u16,
) -> usize {
    let mut inside = vec![false; buf.len()];
    for &(row, rows, width) in regions {
        for r in row..row + rows {
            inside[r * ld..r * ld + width].iter_mut().for_each(|x| *x = true);
        }
    }
    buf.iter()
        .enumerate()
        .filter(|&(i, v)| !inside[i] && v.to_bits() != expected(i))
        .count()
}

/// Elements of a poisoned output read back as f32 ([`download_hidden`](super::download_hidden), exact for bf16 and
/// f32; row stride `ld`) outside the regions `(row, rows, width)` whose bits are no longer `poison`
/// ([`hidden_poison_bits`](super::hidden_poison_bits)): writes a kernel must not have made.
pub(crate) fn unpoisoned_outside(buf: &[f32], ld: usize, regions: &[(usize, usize, usize)], poison: u32) -> usize {
    let mut inside = vec![false; buf.len()];
    for &(row, rows, width) in regions {
        for r in row..row + rows {
            inside[r * ld..r * ld + width].iter_mut().for_each(|x| *x = true);
        }
    }
    buf.iter()
        .zip(&inside)
        .filter(|&(&v, &inside)| !inside && v.to_bits() != poison)
        .count()
}

/// `expected` for [`stray_writes`] on a poisoned buffer.
pub(crate) fn poison_bits(_: usize) -> u16 {
    POISON_BF16_BITS
}

/// Fails `check` (rel_err = ∞) when `bad` elements broke a rule the comparison does not see, saying which.
pub(crate) fn fail_if(mut check: Check, bad: usize, what: &str) -> Check {
    if bad > 0 {
        check.rel_err = f64::INFINITY;
        check.shape.push_str(&format!(" [{bad} {what}]"));
    }
    check
}

/// The bitwise grouping check: the bits `alone` (the cell launched on its own) and `grouped` (the same cell inside a
/// larger launch) must be identical (bf16 values, or f32 ones: hidden rows of either type read back as f32, which
/// keeps every bit). `rel_err` is exactly 0 when they are, ∞ otherwise; tol 0.
pub(crate) fn bitwise<T: HiddenElem>(kernel: &'static str, shape: String, alone: &[T], grouped: &[T]) -> Check {
    let f = |v: &[T]| v.iter().map(|x| x.to_f32()).collect::<Vec<f32>>();
    let (alone, grouped) = (f(alone), f(grouped));
    let check = compare(kernel, shape, &grouped, &alone, 0.0);
    let differ = alone
        .iter()
        .zip(&grouped)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    fail_if(check, differ, "elements differ in bits")
}

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
    fn new<X: HiddenElem>(seed: u64, rows: &[usize], d: usize, layers: usize) -> Case {
        let mut rng = Rng::new(seed);
        let layout = Layout::new(rows, layers, false, 0);
        // Strides wider than d (odd ones too): the kernel must use them, not d.
        let (x_ld, y_ld) = (d + 3, d + 5);
        let x = rng.hidden_normal::<X>(layout.in_rows * x_ld, 1.5);
        let w = rng
            .bf16_normal(layers * d, 0.2)
            .into_iter()
            .map(|v| super::round_bf16(1.0 + v))
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
        format!("rows={rows:?} d={} layers={}", self.d, self.layers)
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
/// `X`), against the f32 reference. Tolerance [`ROW_KERNEL_TOL`] for both input types: the output's one bf16 rounding
/// (the mean square differs from the reference's f64 sum by ~1e-7 relative).
pub fn check_rms_norm<X: HiddenElem>(
    gpu: &Gpu,
    seed: u64,
    rows: &[usize],
    d: usize,
    layers: usize,
) -> Result<Check, KernelError> {
    let case = Case::new::<X>(seed, rows, d, layers);
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
    let check = compare(kernel::<X>().entry, case.shape(), &got, &want, ROW_KERNEL_TOL);
    let regions: Vec<_> = case.layout.spans.iter().map(|s| (s.out_row, s.rows, d)).collect();
    Ok(fail_if(
        check,
        stray_writes(&y, case.y_ld, &regions, poison_bits),
        "writes outside the spans",
    ))
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
    let case = Case::new::<X>(seed, rows, d, rows.len());
    let s = case.layout.spans[target];
    let alone = case.run::<X>(gpu, &[s])?;
    let grouped = case.run::<X>(gpu, &case.layout.spans)?;
    let pick = |y: &[bf16]| gather(y, case.y_ld, s.out_row, s.rows, 0, d);
    Ok(bitwise(
        kernel::<X>().entry,
        format!("{} cell {target} alone vs grouped", case.shape()),
        &pick(&alone),
        &pick(&grouped),
    ))
}

/// RMSNorm at the shapes the engine uses and at awkward ones (d not a multiple of the block, rows 1 and 17, a
/// short last segment), plus the grouping check; each for bf16 and for f32 input rows.
pub fn checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    vec![
        check_rms_norm::<bf16>(gpu, seed, &[40, 17], 576, 2),
        check_rms_norm::<bf16>(gpu, seed ^ 1, &[130, 1, 64, 77], 2048, 3),
        check_rms_norm::<bf16>(gpu, seed ^ 2, &[33, 5], 3072, 2),
        check_rms_norm::<bf16>(gpu, seed ^ 3, &[9, 300, 2], 100, 1),
        check_rms_norm_grouping::<bf16>(gpu, seed ^ 4, &[40, 17, 200, 3], 1, 576),
        check_rms_norm::<f32>(gpu, seed ^ 5, &[40, 17], 576, 2),
        check_rms_norm::<f32>(gpu, seed ^ 6, &[130, 1, 64, 77], 2048, 3),
        check_rms_norm::<f32>(gpu, seed ^ 7, &[33, 5], 3072, 2),
        check_rms_norm::<f32>(gpu, seed ^ 8, &[9, 300, 2], 100, 1),
        check_rms_norm_grouping::<f32>(gpu, seed ^ 9, &[40, 17, 200, 3], 1, 576),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_separates_spans_and_reverses_outputs() {
        let l = Layout::new(&[3, 5, 2], 2, false, 1);
        assert_eq!(l.in_rows, 1 + 4 + 6 + 3);
        let ins: Vec<_> = l.spans.iter().map(|s| (s.in_row, s.rows, s.layer)).collect();
        assert_eq!(ins, [(1, 3, 0), (5, 5, 1), (11, 2, 0)]);
        let outs: Vec<_> = l.spans.iter().map(|s| s.out_row).collect();
        assert_eq!(outs, [2 + 3 + 2 + 6 + 2, 2 + 3 + 2, 2]);
        assert_eq!(l.out_rows, 2 + 3 + 2 + 6 + 2 + 4 + 2);
        let p = Layout::new(&[3, 5], 1, true, 0);
        assert!(p.spans.iter().all(|s| s.in_row == s.out_row) && p.out_rows == p.in_rows);
    }

    #[test]
    fn strays_and_gather() {
        let p = bf16::from_bits(POISON_BF16_BITS);
        let one = bf16::from_f32(1.0);
        // 3 rows, ld 4; region: row 1, columns 0..2.
        let mut buf = vec![p; 12];
        buf[4] = one;
        buf[5] = one;
        assert_eq!(stray_writes(&buf, 4, &[(1, 1, 2)], poison_bits), 0);
        buf[6] = one;
        buf[11] = one;
        assert_eq!(stray_writes(&buf, 4, &[(1, 1, 2)], poison_bits), 2);
        let m: Vec<u32> = (0..12).collect();
        assert_eq!(gather(&m, 4, 1, 2, 1, 2), [5, 6, 9, 10]);
    }

    #[test]
    fn bitwise_needs_equal_bits() {
        let a = [bf16::from_f32(1.0), bf16::from_f32(0.0)];
        assert!(bitwise("k", "s".into(), &a, &a).passed());
        let b = [bf16::from_f32(1.0), bf16::from_f32(-0.0)];
        assert!(!bitwise("k", "s".into(), &a, &b).passed());
        let (x, y) = ([1.0f32, 2.0], [1.0f32, 2.0000002]);
        assert!(bitwise("k", "s".into(), &x, &x).passed());
        assert!(!bitwise("k", "s".into(), &x, &y).passed());
    }

    #[test]
    fn unpoisoned_outside_counts_changed_bits() {
        let pf = crate::poison::POISON_F32_BITS;
        let p = f32::from_bits(pf);
        // 3 rows, ld 2; region: row 1, column 0.
        assert_eq!(unpoisoned_outside(&[p, p, 1.0, p, p, p], 2, &[(1, 1, 1)], pf), 0);
        // f32::NAN is a NaN, but not the poison.
        assert_eq!(
            unpoisoned_outside(&[p, p, 1.0, 0.0, f32::NAN, p], 2, &[(1, 1, 1)], pf),
            2
        );
        let pb = (POISON_BF16_BITS as u32) << 16;
        assert_eq!(unpoisoned_outside(&[f32::from_bits(pb), 1.0], 2, &[(0, 1, 0)], pb), 1);
    }
}
