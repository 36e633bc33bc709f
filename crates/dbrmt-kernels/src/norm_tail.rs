//! The norm tail (`cuda/common/norm_tail.cuh`): the RMSNorm that follows a decode step's o projection or read, done by
//! that launch's last CTA instead of a launch of its own (a decoded layer's two norms are one row each, and as
//! launches each cost a start and a chain). The rows are normalised with `_few`'s arithmetic
//! (`cuda/common/rms_norm_row.cuh`), so they have the bytes [`crate::rms_norm::rms_norm`] would give them.
//!
//! A launcher that can finish with the tail takes a [`NormAfter`] and returns whether it did: only for few rows
//! ([`takes`]; one CTA normalises them one after another), at the decode widths of its kernel, and with the switch on
//! (`DBRMT_NORM_TAIL=off`). When it did not, the caller launches [`crate::rms_norm::rms_norm`] itself.

use cudarc::driver::{CudaSlice, CudaStream, DeviceRepr};
use half::bf16;

use crate::launch::{addr, addr_mut, check_disjoint_outputs, check_index, check_rows, invalid, Rows};
use crate::params::{Span, MAX_GROUPS};
use crate::KernelError;

/// The most rows a launch normalises in its tail (all problems together): its last CTA takes them one after another,
/// ~1 µs each, so beyond a few a launch of their own (a block a row) is faster.
pub const MAX_ROWS: usize = 4;
/// The widest row (`RMS_ROW_CACHED · 128` of rms_norm_row.cuh: the row is held in registers).
pub const MAX_D: usize = 4096;

/// The norm a launch may finish with: the rows it writes, problem by problem, normalised into rows of `y`.
#[derive(Debug)]
pub struct NormAfter<'a> {
    /// One u32 of device memory, 0 (the tail leaves it 0 again): the launch's CTAs count themselves out on it.
    pub counter: &'a mut CudaSlice<u32>,
    /// The norm's stacked weights `[layers, d]`.
    pub w: &'a CudaSlice<bf16>,
    /// The output rows (bf16) and their stride.
    pub y: (&'a mut CudaSlice<bf16>, usize),
    /// One span per problem of the launch, in order, as [`crate::rms_norm::rms_norm`] would take it: `in_row` the
    /// problem's first output row (checked), `rows` its rows, `layer` the weight row, `out_row` the first row of `y`.
    pub spans: &'a [Span],
    pub eps: f32,
}

/// Whether a launch of `spans` at row width `d` may take the tail: at most [`MAX_ROWS`] rows and `d ≤` [`MAX_D`],
/// with the switch on.
pub fn takes(spans: &[Span], d: usize) -> bool {
    let rows: usize = spans.iter().map(|s| s.rows).sum();
    rows <= MAX_ROWS && d <= MAX_D && enabled()
}

/// The tail unless `DBRMT_NORM_TAIL=off` (read at the first launch): the same bytes either way.
pub fn enabled() -> bool {
    TAIL.enabled()
}

/// Turns the tail on or off for the launches that follow (the process-wide switch `DBRMT_NORM_TAIL=off` sets).
pub fn set_enabled(on: bool) {
    TAIL.set(on);
}

static TAIL: crate::switches::RuntimeSwitch = crate::switches::RuntimeSwitch::new(crate::switches::NORM_TAIL);

/// `NormTail` of norm_tail.cuh (552 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct NormTailParams {
    counter: u64,
    w: u64,
    y: u64,
    y_ld: i32,
    d: i32,
    eps: f32,
    _pad: i32,
    layer: [i32; MAX_GROUPS],
    y_row: [i32; MAX_GROUPS],
}

// SAFETY: a #[repr(C)] plain-old-data mirror of norm_tail.cuh's NormTail (its static_assert, the layout test here); the
// addresses in it are formed by `params` after its checks and only dereferenced by the kernel.
unsafe impl DeviceRepr for NormTailParams {}

/// A problem's output rows as the launcher knows them: its first row of the f32 output buffer and its row count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProblemRows {
    pub first: usize,
    pub rows: usize,
}

impl NormAfter<'_> {
    /// The tail's parameters for a launch whose problems write `problems` (in order) of rows `d` wide, after checking
    /// the spans against them and the buffers: one span per problem with its rows (in_row = its first row), every
    /// output row inside `y`, every layer a row of `w`, no two spans writing the same rows, `eps` finite and ≥ 0.
    pub(crate) fn params(
        &mut self,
        entry: &str,
        stream: &CudaStream,
        problems: &[ProblemRows],
        d: usize,
    ) -> Result<NormTailParams, KernelError> {
        let p = validate(entry, self.lens(), self.spans, problems, d, self.eps)?;
        Ok(NormTailParams {
            counter: addr_mut(self.counter, stream),
            w: addr(self.w, stream),
            y: addr_mut(self.y.0, stream),
            ..p
        })
    }

    fn lens(&self) -> Lens {
        Lens {
            counter: self.counter.len(),
            w: self.w.len(),
            y: Rows::of(self.y.0, self.y.1),
        }
    }
}

/// Buffer lengths (elements) of a tail.
#[derive(Debug, Clone, Copy)]
struct Lens {
    counter: usize,
    w: usize,
    y: Rows,
}

/// The checks of [`NormAfter::params`], on lengths only; the parameters without addresses.
fn validate(
    entry: &str,
    lens: Lens,
    spans: &[Span],
    problems: &[ProblemRows],
    d: usize,
    eps: f32,
) -> Result<NormTailParams, KernelError> {
    if lens.counter == 0 {
        return Err(invalid(entry, "the norm tail's counter is empty".into()));
    }
    if spans.len() != problems.len() || spans.len() > MAX_GROUPS {
        let why = format!("{} norm spans for {} problems (one each)", spans.len(), problems.len());
        return Err(invalid(entry, why));
    }
    if d == 0 || d > MAX_D || !(eps.is_finite() && eps >= 0.0) {
        return Err(invalid(
            entry,
            format!("norm tail of d = {d} (1..{MAX_D}), eps = {eps}"),
        ));
    }
    let mut p = NormTailParams {
        counter: 0,
        w: 0,
        y: 0,
        y_ld: lens.y.ld as i32,
        d: d as i32,
        eps,
        _pad: 0,
        layer: [0; MAX_GROUPS],
        y_row: [0; MAX_GROUPS],
    };
    for (i, (s, pr)) in spans.iter().zip(problems).enumerate() {
        if (s.in_row, s.rows) != (pr.first, pr.rows) {
            let why = format!(
                "norm span {i} takes rows {}..{}, but the launch writes {}..{} there",
                s.in_row,
                s.in_row + s.rows,
                pr.first,
                pr.first + pr.rows
            );
            return Err(invalid(entry, why));
        }
        check_rows(entry, "y", lens.y, s.out_row, s.rows, 0, d)?;
        check_index(entry, "norm layer", s.layer, lens.w / d)?;
        p.layer[i] = s.layer as i32;
        p.y_row[i] = s.out_row as i32;
    }
    check_disjoint_outputs(entry, spans)?;
    if lens.y.ld > i32::MAX as usize {
        return Err(invalid(entry, "y's stride beyond 32 bits".into()));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    use super::*;

    /// Refused with a message that names `what`.
    fn rejected<T: std::fmt::Debug>(r: Result<T, KernelError>, what: &str) {
        match r {
            Err(KernelError::InvalidArgument { msg, .. }) => {
                assert!(msg.contains(what), "{msg:?} should name {what:?}")
            }
            other => panic!("expected a refusal naming {what:?}, got {other:?}"),
        }
    }

    fn span(in_row: usize, out_row: usize, rows: usize, layer: usize) -> Span {
        Span {
            in_row,
            out_row,
            rows,
            layer,
            ..Span::default()
        }
    }

    fn lens(y_rows: usize, d: usize) -> Lens {
        Lens {
            counter: 1,
            w: 4 * d,
            y: Rows { len: y_rows * d, ld: d },
        }
    }

    #[test]
    fn layout_matches_the_kernel() {
        let cu = include_str!("../../../cuda/common/norm_tail.cuh");
        assert!(cu.contains("sizeof(NormTail) == 40 + 8 * DBRMT_MAX_GROUPS"));
        assert_eq!(size_of::<NormTailParams>(), 40 + 8 * MAX_GROUPS);
        let row = include_str!("../../../cuda/common/rms_norm_row.cuh");
        assert!(row.contains(&format!("RMS_ROW_CACHED = {};", MAX_D / 128)));
    }

    #[test]
    fn takes_few_rows_of_at_most_4096_columns() {
        let one = [span(0, 0, 1, 0)];
        assert!(takes(&one, 576) && takes(&one, 4096));
        assert!(!takes(&one, 4097));
        let many = [span(0, 0, 3, 0), span(3, 3, 2, 1)];
        assert!(!takes(&many, 2048), "5 rows");
        assert!(takes(&many[..1], 2048));
    }

    #[test]
    fn pairs_each_problem_with_its_span() {
        let d = 576;
        let problems = [ProblemRows { first: 5, rows: 1 }, ProblemRows { first: 9, rows: 2 }];
        let spans = [span(5, 0, 1, 3), span(9, 1, 2, 0)];
        let p = validate("t", lens(4, d), &spans, &problems, d, 1e-5).unwrap();
        assert_eq!((p.layer[0], p.layer[1], p.y_row[0], p.y_row[1], p.d), (3, 0, 0, 1, 576));
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let d = 64;
        let problems = [ProblemRows { first: 5, rows: 1 }];
        let ok = [span(5, 0, 1, 0)];
        assert!(validate("t", lens(2, d), &ok, &problems, d, 1e-5).is_ok());
        let no_counter = Lens {
            counter: 0,
            ..lens(2, d)
        };
        rejected(validate("t", no_counter, &ok, &problems, d, 1e-5), "counter");
        rejected(
            validate("t", lens(2, d), &[span(4, 0, 1, 0)], &problems, d, 1e-5),
            "rows",
        );
        rejected(
            validate("t", lens(2, d), &[span(5, 0, 2, 0)], &problems, d, 1e-5),
            "rows",
        );
        rejected(validate("t", lens(2, d), &[], &problems, d, 1e-5), "problems");
        rejected(validate("t", lens(2, d), &[span(5, 2, 1, 0)], &problems, d, 1e-5), "y");
        rejected(
            validate("t", lens(2, d), &[span(5, 0, 1, 4)], &problems, d, 1e-5),
            "layer",
        );
        rejected(validate("t", lens(2, d), &ok, &problems, d, f32::NAN), "eps");
        rejected(validate("t", lens(2, 5000), &ok, &problems, 5000, 1e-5), "d =");
        let two = [ProblemRows { first: 5, rows: 1 }, ProblemRows { first: 6, rows: 1 }];
        rejected(
            validate("t", lens(2, d), &[span(5, 0, 1, 0), span(6, 0, 1, 0)], &two, d, 1e-5),
            "overlapping",
        );
    }
}
