//! The one kit every kernel check is built from (model: DeepGEMM's `testing/numeric.py`).
//!
//! - **Inputs**: seeded draws over the project's one generator, [`SplitMix64`] ([`bf16_normal`], [`f32_normal`],
//!   [`hidden_normal`], [`below`]), rounded where the kernel stores bf16 so that GPU and reference see the same values.
//! - **Placement**: a [`Layout`] puts the cells of one launch in their buffers with gap rows between them and outputs
//!   in the reverse order of the inputs, so that a kernel confusing rows, spans or cells reads or writes the wrong
//!   place; [`Block`] (and [`gather`], [`put`]) move a region of a row-major buffer in and out.
//! - **Device buffers**: uploads, downloads and outputs poisoned before the launch ([`poisoned_bf16`],
//!   [`poisoned_f32`], [`poisoned_hidden`]).
//! - **Judgement**: [`compare`] (relative error, poisoned elements counted as unwritten) against the tolerances
//!   derived here ([`BF16_OUT_TOL`], [`F32_OUT_TOL`]); [`changed_outside`] counts stray writes and [`fail_if`] fails
//!   a check on them; [`bitwise`] is the "alone vs grouped" comparison (tolerance 0, every bit).
//! - **Reporting**: [`Check`] is one line of `dbrmt selftest`'s table; [`assert_all_pass`] is the GPU tests' loop.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream};
use half::bf16;

pub use dbrmt_formats::rng::SplitMix64;

use crate::params::Span;
use crate::poison::{poison_f32, poison_u32, POISON_F32_BITS};
use crate::{Gpu, HiddenElem, KernelError};

// ------------------------------------------------------------------------------------------------------------------
// Tolerances

/// The bound on `rel_err` for a kernel whose only rounding is the bf16 store of an f32 result (norm, rope, swiglu,
/// attention, the bf16-output GEMM, the read on bf16 hidden rows): one rounding is at most 2⁻⁹ relative (≈ 2e-3;
/// ≈ 1.1e-3 RMS over many elements), and the f32 differences in the order of operations are far below that
/// (≈ 1e-6). 8e-3 ≈ 2⁻⁷ leaves a factor of 4 over the worst case of one rounding, while a wrong index, row or
/// normalisation is off by O(1).
pub const BF16_OUT_TOL: f64 = 8e-3;

/// The bound for an f32 output (f32 GEMMs, DPFP, the write, the read on f32 hidden rows): nothing is rounded to
/// bf16, so only the order of the f32 arithmetic differs from the reference (dot products of ≤ a few thousand terms
/// reduced in a tree or a tile loop on the GPU, in f64 or another order on the host: a few 1e-7 · √k, measured
/// 2.1e-6 for bf16 inputs at k = 2048 on an H100). 1e-5 leaves a factor of five to ten.
pub const F32_OUT_TOL: f64 = 1e-5;

// ------------------------------------------------------------------------------------------------------------------
// Inputs

/// `n` values from N(0, std²) in f32.
pub fn f32_normal(rng: &mut SplitMix64, n: usize, std: f64) -> Vec<f32> {
    (0..n).map(|_| (rng.normal() * std) as f32).collect()
}

/// `n` values from N(0, std²), rounded to bf16 (so GPU and reference see the same inputs).
pub fn bf16_normal(rng: &mut SplitMix64, n: usize, std: f64) -> Vec<f32> {
    hidden_normal::<bf16>(rng, n, std)
}

/// `n` values from N(0, std²) as hidden rows of type `H` hold them: [`bf16_normal`] for bf16, [`f32_normal`] for
/// f32 (the same draws).
pub fn hidden_normal<H: HiddenElem>(rng: &mut SplitMix64, n: usize, std: f64) -> Vec<f32> {
    (0..n)
        .map(|_| H::from_f32((rng.normal() * std) as f32).to_f32())
        .collect()
}

/// Uniform integer in `0..n`.
pub fn below(rng: &mut SplitMix64, n: usize) -> usize {
    (rng.next_f64() * n as f64) as usize % n.max(1)
}

/// `x` rounded to the nearest bf16 (ties to even), as f32.
pub fn round_bf16(x: f32) -> f32 {
    bf16::from_f32(x).to_f32()
}

/// A seed that differs from run to run (tests print it, so a failure can be replayed with `DBRMT_SEED`).
pub fn fresh_seed() -> u64 {
    if let Some(s) = std::env::var("DBRMT_SEED").ok().and_then(|s| s.parse().ok()) {
        return s;
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ (std::process::id() as u64).rotate_left(32)
}

// ------------------------------------------------------------------------------------------------------------------
// Placement

/// A `rows × width` region of a row-major buffer with row stride `ld`, from element `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub offset: usize,
    pub rows: usize,
    pub width: usize,
    pub ld: usize,
}

impl Block {
    /// Rows `row..row + rows`, columns `col..col + width` of a matrix with row stride `ld`.
    pub fn rows(ld: usize, row: usize, rows: usize, col: usize, width: usize) -> Block {
        Block {
            offset: row * ld + col,
            rows,
            width,
            ld,
        }
    }

    /// The element ranges of its rows.
    fn ranges(self) -> impl Iterator<Item = std::ops::Range<usize>> {
        (0..self.rows).map(move |r| self.offset + r * self.ld..self.offset + r * self.ld + self.width)
    }

    /// Its elements, as one dense `[rows, width]` vector.
    pub fn gather<T: Copy>(self, buf: &[T]) -> Vec<T> {
        self.ranges().flat_map(|r| buf[r].iter().copied()).collect()
    }

    /// Writes `data` (dense `[rows, width]`) into it.
    pub fn scatter<T: Copy>(self, buf: &mut [T], data: &[T]) {
        for (r, src) in self.ranges().zip(data.chunks_exact(self.width.max(1))) {
            buf[r].copy_from_slice(src);
        }
    }

    /// Sets its elements of `mask`.
    pub fn mark(self, mask: &mut [bool]) {
        for r in self.ranges() {
            mask[r].fill(true);
        }
    }
}

/// Rows `row..row + rows`, columns `col..col + width` of a row-major matrix with row stride `ld`, as one dense
/// `[rows, width]` vector.
pub fn gather<T: Copy>(buf: &[T], ld: usize, row: usize, rows: usize, col: usize, width: usize) -> Vec<T> {
    Block::rows(ld, row, rows, col, width).gather(buf)
}

/// Writes `data` (rows of `width`) into rows `row..`, columns `0..width` of a row-major matrix with row stride `ld`.
pub fn put<T: Copy>(buf: &mut [T], ld: usize, row: usize, data: &[T], width: usize) {
    Block::rows(ld, row, data.len() / width.max(1), 0, width).scatter(buf, data);
}

/// Which elements of a buffer of `len` elements lie in one of `blocks`.
pub fn mask(len: usize, blocks: &[Block]) -> Vec<bool> {
    let mut inside = vec![false; len];
    for b in blocks {
        b.mark(&mut inside);
    }
    inside
}

/// The cells of one launch laid out in their buffers: one span per cell, inputs in cell order and outputs in the
/// reverse order, each after rows that no span covers, so that a kernel that confuses input and output rows, or one
/// span with another, reads or writes the wrong place.
#[derive(Debug, Clone)]
pub struct Layout {
    /// One span per cell (flag false: see [`Layout::spans_flagged`]).
    pub spans: Vec<Span>,
    /// Rows the input buffers need.
    pub in_rows: usize,
    /// Rows the output buffers need.
    pub out_rows: usize,
    /// States (and layers) the per-state and per-layer buffers need.
    pub slots: usize,
}

impl Layout {
    /// The row kernels' layout: span `i` of `rows[i]` rows, each input after one gap row (and one after the last),
    /// outputs from row 2 with two gap rows between them (and after the last); layer = `i mod layers`, state = `i`.
    /// `extra` more output rows per span than it reads (the embedding's memory rows); `in_place`: every span's
    /// output rows are its input rows (RoPE).
    pub fn rows(rows: &[usize], layers: usize, in_place: bool, extra: usize) -> Layout {
        let mut spans = Vec::with_capacity(rows.len());
        let mut r = 1;
        for (i, &n) in rows.iter().enumerate() {
            spans.push(Span {
                in_row: r,
                out_row: r,
                rows: n,
                layer: i % layers.max(1),
                state: i,
                ..Span::default()
            });
            r += n + 1;
        }
        let (in_rows, slots) = (r, rows.len());
        if in_place {
            return Layout {
                spans,
                in_rows,
                out_rows: in_rows,
                slots,
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
            slots,
        }
    }

    /// The memory kernels' layout: inputs after `gap` rows each, outputs in reverse order after `gap + 1` rows each;
    /// cell `i` of `n` has state `n − i` and layer `i + 1` (slot 0 of each is used by no span), so states and layers
    /// differ from the cell index and from each other for most cells.
    pub fn cells(rows: &[usize], gap: usize) -> Layout {
        let n = rows.len();
        let place = |order: Vec<usize>, gap: usize| {
            let (mut start, mut next) = (vec![0; n], 0);
            for i in order {
                next += gap;
                start[i] = next;
                next += rows[i];
            }
            (start, next)
        };
        let (in_row, in_rows) = place((0..n).collect(), gap);
        let (out_row, out_rows) = place((0..n).rev().collect(), gap + 1);
        let spans = (0..n)
            .map(|i| Span {
                in_row: in_row[i],
                out_row: out_row[i],
                rows: rows[i],
                layer: i + 1,
                state: n - i,
                ..Span::default()
            })
            .collect();
        Layout {
            spans,
            in_rows,
            out_rows,
            slots: n + 1,
        }
    }

    /// The spans with `flags[i]` (false where missing) as cell `i`'s segment-0 flag.
    pub fn spans_flagged(&self, flags: &[bool]) -> Vec<Span> {
        self.spans
            .iter()
            .enumerate()
            .map(|(i, s)| Span {
                flag: flags.get(i).copied().unwrap_or(false),
                ..*s
            })
            .collect()
    }

    /// The output regions of the spans (columns `0..width`, row stride `ld`), `extra` rows longer each.
    pub fn out_blocks(&self, ld: usize, width: usize, extra: usize) -> Vec<Block> {
        self.spans
            .iter()
            .map(|s| Block::rows(ld, s.out_row, s.rows + extra, 0, width))
            .collect()
    }
}

// ------------------------------------------------------------------------------------------------------------------
// Device buffers

/// Uploads f32 values as bf16.
pub fn upload_bf16(stream: &Arc<CudaStream>, x: &[f32]) -> Result<CudaSlice<bf16>, KernelError> {
    upload_hidden::<bf16>(stream, x)
}

/// Uploads f32 values.
pub fn upload_f32(stream: &Arc<CudaStream>, x: &[f32]) -> Result<CudaSlice<f32>, KernelError> {
    Ok(stream.clone_htod(x)?)
}

/// Downloads bf16 values as f32 (synchronising the stream).
pub fn download_bf16(stream: &Arc<CudaStream>, x: &CudaSlice<bf16>) -> Result<Vec<f32>, KernelError> {
    download_hidden(stream, x)
}

/// Downloads f32 values (synchronising the stream).
pub fn download_f32(stream: &Arc<CudaStream>, x: &CudaSlice<f32>) -> Result<Vec<f32>, KernelError> {
    Ok(stream.clone_dtoh(x)?)
}

/// Uploads f32 values as hidden rows of type `H` (rounded to bf16, or as they are).
pub fn upload_hidden<H: HiddenElem>(stream: &Arc<CudaStream>, x: &[f32]) -> Result<CudaSlice<H>, KernelError> {
    let h: Vec<H> = x.iter().map(|&v| H::from_f32(v)).collect();
    Ok(stream.clone_htod(&h)?)
}

/// Downloads hidden rows of type `H` as f32 (exact, so bits compare as the stored bits do; synchronising the stream).
pub fn download_hidden<H: HiddenElem>(stream: &Arc<CudaStream>, x: &CudaSlice<H>) -> Result<Vec<f32>, KernelError> {
    Ok(stream.clone_dtoh(x)?.into_iter().map(H::to_f32).collect())
}

/// What [`poisoned_bf16`] writes into each bf16 element: a quiet NaN (the high half of [`POISON_F32_BITS`]).
pub const POISON_BF16_BITS: u16 = (POISON_F32_BITS >> 16) as u16;

/// The bits of a poisoned element of type `T` as read back as f32 (exactly, by [`download_hidden`]):
/// [`POISON_BF16_BITS`] widened, or [`POISON_F32_BITS`].
pub fn poison_bits<T: HiddenElem>() -> u32 {
    T::pick((POISON_BF16_BITS as u32) << 16, POISON_F32_BITS)
}

/// A buffer of `n` hidden elements of type `H`, every element poisoned: [`POISON_BF16_BITS`] or [`POISON_F32_BITS`].
pub fn poisoned_hidden<H: HiddenElem>(
    gpu: &Gpu,
    stream: &Arc<CudaStream>,
    n: usize,
) -> Result<CudaSlice<H>, KernelError> {
    let mut words: CudaSlice<u32> = stream.alloc_zeros(n)?;
    poison_u32(gpu, stream, &mut words, POISON_F32_BITS)?;
    // f32 → bf16 keeps a NaN's high half (and sets its quiet bit, already set): the bf16 poison.
    let host: Vec<H> = stream
        .clone_dtoh(&words)?
        .into_iter()
        .map(|w| H::from_f32(f32::from_bits(w)))
        .collect();
    Ok(stream.clone_htod(&host)?)
}

/// A bf16 buffer of `n` elements, every element poisoned (a NaN).
pub fn poisoned_bf16(gpu: &Gpu, stream: &Arc<CudaStream>, n: usize) -> Result<CudaSlice<bf16>, KernelError> {
    poisoned_hidden::<bf16>(gpu, stream, n)
}

/// An f32 buffer of `n` elements, every element poisoned (a NaN).
pub fn poisoned_f32(gpu: &Gpu, stream: &Arc<CudaStream>, n: usize) -> Result<CudaSlice<f32>, KernelError> {
    let mut buf: CudaSlice<f32> = stream.alloc_zeros(n)?;
    poison_f32(gpu, stream, &mut buf)?;
    Ok(buf)
}

// ------------------------------------------------------------------------------------------------------------------
// Judgement

/// The outcome of one kernel check.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// Kernel entry point (or op) checked.
    pub kernel: &'static str,
    /// The shape, in words (`m=130 n=70 k=96 groups=3`).
    pub shape: String,
    /// ‖gpu − ref‖ / ‖ref‖ over all outputs.
    pub rel_err: f64,
    /// max |gpu − ref|.
    pub max_abs: f64,
    /// The bound on `rel_err`.
    pub tol: f64,
    /// Output elements still holding the poison pattern (never written).
    pub unwritten: usize,
}

impl Check {
    pub fn passed(&self) -> bool {
        self.unwritten == 0 && self.rel_err.is_finite() && self.rel_err <= self.tol
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<24} {:<40} rel {:>9.2e} (tol {:.0e})  max|Δ| {:>9.2e}  unwritten {:>3}  {}",
            self.kernel,
            self.shape,
            self.rel_err,
            self.tol,
            self.max_abs,
            self.unwritten,
            if self.passed() { "ok" } else { "FAIL" }
        )
    }
}

/// Compares a GPU result with the reference; poisoned (never written) elements are counted, not compared.
pub fn compare(kernel: &'static str, shape: String, gpu: &[f32], reference: &[f32], tol: f64) -> Check {
    assert_eq!(gpu.len(), reference.len(), "compare: length mismatch");
    let (mut num, mut den, mut max_abs, mut unwritten) = (0.0f64, 0.0f64, 0.0f64, 0usize);
    for (&g, &r) in gpu.iter().zip(reference) {
        if g.to_bits() == POISON_F32_BITS || g.to_bits() == poison_bits::<bf16>() {
            unwritten += 1;
            continue;
        }
        let d = g as f64 - r as f64;
        num += d * d;
        den += r as f64 * r as f64;
        max_abs = max_abs.max(d.abs());
    }
    let rel_err = if den > 0.0 { (num / den).sqrt() } else { num.sqrt() };
    Check {
        kernel,
        shape,
        rel_err,
        max_abs,
        tol,
        unwritten,
    }
}

/// Fails `check` (rel_err = ∞) when `bad` elements broke a rule the comparison does not see, saying which.
pub fn fail_if(mut check: Check, bad: usize, what: &str) -> Check {
    if bad > 0 {
        check.rel_err = f64::INFINITY;
        check.shape.push_str(&format!(" [{bad} {what}]"));
    }
    check
}

/// Elements of `buf` (bf16 or f32 values, compared as the f32 they widen to exactly) outside all `blocks` whose bits
/// are not `expected(i)`: writes a kernel must not have made. For a poisoned output `expected` is
/// [`poison_bits`]; for an in-place one, the bits before the launch.
pub fn changed_outside<T: HiddenElem>(buf: &[T], blocks: &[Block], expected: impl Fn(usize) -> u32) -> usize {
    let inside = mask(buf.len(), blocks);
    buf.iter()
        .enumerate()
        .filter(|&(i, v)| !inside[i] && v.to_f32().to_bits() != expected(i))
        .count()
}

/// Elements at the same index of `a` and `b` whose bits differ, plus the difference in length.
pub fn differing_bits<T: HiddenElem>(a: &[T], b: &[T]) -> usize {
    a.len().abs_diff(b.len())
        + a.iter()
            .zip(b)
            .filter(|(x, y)| x.to_f32().to_bits() != y.to_f32().to_bits())
            .count()
}

/// The bitwise grouping check: the bits `alone` (a cell launched on its own) and `grouped` (the same cell inside a
/// larger launch) must be identical (bf16 or f32 values; any differing bit fails, even between values that compare
/// equal such as ±0, and so does a difference in length). `rel_err` is measured over the common length; tol 0.
pub fn bitwise<T: HiddenElem>(kernel: &'static str, shape: String, alone: &[T], grouped: &[T]) -> Check {
    let n = alone.len().min(grouped.len());
    let f = |v: &[T]| v[..n].iter().map(|x| x.to_f32()).collect::<Vec<f32>>();
    let check = compare(kernel, shape, &f(grouped), &f(alone), 0.0);
    fail_if(check, differing_bits(alone, grouped), "elements differ in bits")
}

/// The grouping check of a kernel over spans: `run` launched with span `target` of `spans` alone and with all of
/// them; the block `out(target span)` of the output must have the same bits in both (tolerance 0).
pub fn alone_vs_grouped<T: HiddenElem>(
    kernel: &'static str,
    shape: String,
    (spans, target): (&[Span], usize),
    run: impl Fn(&[Span]) -> Result<Vec<T>, KernelError>,
    out: impl Fn(&Span) -> Block,
) -> Result<Check, KernelError> {
    let s = spans[target];
    let alone = run(&[s])?;
    let grouped = run(spans)?;
    let b = out(&s);
    let shape = format!("{shape} cell {target} alone vs grouped");
    Ok(bitwise(kernel, shape, &b.gather(&alone), &b.gather(&grouped)))
}

// ------------------------------------------------------------------------------------------------------------------
// Reporting

/// Prints every result, one line each, and returns the failures in words (a failed check, or an error).
pub fn report(results: &[Result<Check, KernelError>]) -> Vec<String> {
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok(c) => {
                println!("{c}");
                if !c.passed() {
                    failures.push(format!("{} {}", c.kernel, c.shape));
                }
            }
            Err(e) => {
                println!("error: {e}");
                failures.push(e.to_string());
            }
        }
    }
    failures
}

/// The GPU tests' loop: prints every result and fails, naming each failure and the seed to replay, unless all
/// passed.
pub fn assert_all_pass(seed: u64, results: Vec<Result<Check, KernelError>>) {
    println!("seed {seed} (replay with DBRMT_SEED={seed})");
    let failures = report(&results);
    assert!(
        failures.is_empty(),
        "seed {seed}: {} of {} checks failed: {failures:#?}",
        failures.len(),
        results.len()
    );
}

/// One kernel's checks on GPU 0 with a fresh seed, through [`assert_all_pass`] (a GPU test in one line).
pub fn assert_suite_passes(suite: super::Suite) {
    let gpu = Gpu::new(0).expect("open GPU 0");
    let seed = fresh_seed();
    assert_all_pass(seed, suite(&gpu, seed));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_counts_poison_and_measures_error() {
        let p = f32::from_bits(POISON_F32_BITS);
        let c = compare("k", "s".into(), &[1.0, p, 3.0], &[1.0, 2.0, 3.0], 1e-3);
        assert_eq!(c.unwritten, 1);
        assert!(!c.passed());
        let c = compare("k", "s".into(), &[1.0, 2.0, 3.3], &[1.0, 2.0, 3.0], 1e-3);
        assert!(c.rel_err > 0.08 && !c.passed());
        let c = compare("k", "s".into(), &[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0], 1e-3);
        assert!(c.passed() && c.rel_err == 0.0);
        let nan = compare("k", "s".into(), &[f32::NAN], &[1.0], 1e-3);
        assert!(!nan.passed());
        let widened = f32::from(bf16::from_bits(POISON_BF16_BITS));
        assert_eq!(compare("k", "s".into(), &[widened], &[1.0], 1e-3).unwritten, 1);
    }

    #[test]
    fn draws_are_rounded_as_stored() {
        let (mut a, mut b) = (SplitMix64::new(3), SplitMix64::new(3));
        assert_eq!(hidden_normal::<bf16>(&mut a, 100, 2.0), bf16_normal(&mut b, 100, 2.0));
        assert_eq!(hidden_normal::<f32>(&mut a, 100, 2.0), f32_normal(&mut b, 100, 2.0));
        let mut r = SplitMix64::new(1);
        let v = bf16_normal(&mut r, 1000, 1.0);
        assert!(v
            .iter()
            .all(|&x| x == round_bf16(x) && x.to_bits() != poison_bits::<bf16>()));
        assert!(v.iter().filter(|&&x| x == 0.0).count() < 5);
        assert!((0..1000).map(|_| below(&mut r, 7)).all(|i| i < 7));
    }

    #[test]
    fn poison_bits_of_both_types() {
        let p = f32::from_bits(POISON_F32_BITS);
        assert_eq!(<bf16 as HiddenElem>::from_f32(p).to_bits(), POISON_BF16_BITS);
        assert_eq!(poison_bits::<f32>(), POISON_F32_BITS);
        let widened = HiddenElem::to_f32(bf16::from_bits(POISON_BF16_BITS)).to_bits();
        assert_eq!(poison_bits::<bf16>(), widened);
    }

    #[test]
    fn row_layout_separates_spans_and_reverses_outputs() {
        let l = Layout::rows(&[3, 5, 2], 2, false, 1);
        assert_eq!(l.in_rows, 1 + 4 + 6 + 3);
        let ins: Vec<_> = l.spans.iter().map(|s| (s.in_row, s.rows, s.layer)).collect();
        assert_eq!(ins, [(1, 3, 0), (5, 5, 1), (11, 2, 0)]);
        let outs: Vec<_> = l.spans.iter().map(|s| s.out_row).collect();
        assert_eq!(outs, [2 + 3 + 2 + 6 + 2, 2 + 3 + 2, 2]);
        assert_eq!(l.out_rows, 2 + 3 + 2 + 6 + 2 + 4 + 2);
        let p = Layout::rows(&[3, 5], 1, true, 0);
        assert!(p.spans.iter().all(|s| s.in_row == s.out_row) && p.out_rows == p.in_rows);
    }

    #[test]
    fn cell_layout_separates_spans_and_slots() {
        let l = Layout::cells(&[3, 0, 5], 1);
        let col = |f: fn(&Span) -> usize| l.spans.iter().map(f).collect::<Vec<_>>();
        assert_eq!(col(|s| s.in_row), [1, 5, 6]);
        assert_eq!(l.in_rows, 11);
        // Outputs in reverse order with gaps of 2: cell 2 at 2..7, cell 1 at 9..9, cell 0 at 11..14.
        assert_eq!(col(|s| s.out_row), [11, 9, 2]);
        assert_eq!(l.out_rows, 14);
        assert_eq!(
            (col(|s| s.state), col(|s| s.layer), l.slots),
            (vec![3, 2, 1], vec![1, 2, 3], 4)
        );
        let spans = l.spans_flagged(&[false, true]);
        assert!(!spans[0].flag && spans[1].flag && !spans[2].flag);
        let inside = mask(14 * 5, &l.out_blocks(5, 4, 0));
        let at = |row: usize, col: usize| inside[row * 5 + col];
        assert!(at(11, 0) && at(13, 3) && !at(13, 4) && !at(10, 0));
        assert!(!at(0, 0) && at(2, 0) && at(6, 0) && !at(7, 0));
    }

    #[test]
    fn blocks_gather_scatter_and_count_strays() {
        let m: Vec<u32> = (0..12).collect();
        assert_eq!(gather(&m, 4, 1, 2, 1, 2), [5, 6, 9, 10]);
        let b = Block {
            offset: 3,
            rows: 2,
            width: 2,
            ld: 5,
        };
        assert_eq!(b.gather(&m), [3, 4, 8, 9]);
        let mut z = vec![0u32; 12];
        b.scatter(&mut z, &[1, 2, 3, 4]);
        put(&mut z, 4, 2, &[7, 7], 2);
        assert_eq!(
            z,
            [0, 0, 0, 1, 2, 0, 0, 0, 7, 7, 0, 0],
            "row 2 overwrites the block's second row"
        );

        let (p, one) = (bf16::from_bits(POISON_BF16_BITS), bf16::from_f32(1.0));
        let poisoned = |_| poison_bits::<bf16>();
        // 3 rows, ld 4; region: row 1, columns 0..2.
        let region = [Block::rows(4, 1, 1, 0, 2)];
        let mut buf = vec![p; 12];
        buf[4] = one;
        buf[5] = one;
        assert_eq!(changed_outside(&buf, &region, poisoned), 0);
        buf[6] = one;
        buf[11] = one;
        assert_eq!(changed_outside(&buf, &region, poisoned), 2);
        // f32::NAN is a NaN, but not the poison.
        let pf = f32::from_bits(POISON_F32_BITS);
        let region = [Block::rows(2, 1, 1, 0, 1)];
        let f = |_| POISON_F32_BITS;
        assert_eq!(changed_outside(&[pf, pf, 1.0, pf, pf, pf], &region, f), 0);
        assert_eq!(changed_outside(&[pf, pf, 1.0, 0.0, f32::NAN, pf], &region, f), 2);
    }

    #[test]
    fn bitwise_needs_equal_bits_and_fail_if_fails() {
        let a = [bf16::from_f32(1.0), bf16::from_f32(0.0)];
        assert!(bitwise("k", "s".into(), &a, &a).passed());
        let b = [bf16::from_f32(1.0), bf16::from_f32(-0.0)];
        assert!(!bitwise("k", "s".into(), &a, &b).passed());
        let (x, y) = ([1.0f32, 2.0], [1.0f32, 2.0000002]);
        assert!(bitwise("k", "s".into(), &x, &x).passed());
        assert!(!bitwise("k", "s".into(), &x, &y).passed());
        assert!(!bitwise("k", "s".into(), &x, &x[..1]).passed(), "lengths differ");
        let ok = compare("k", "s".into(), &[1.0], &[1.0], 0.0);
        assert!(fail_if(ok.clone(), 0, "strays").passed() && !fail_if(ok, 1, "strays").passed());
    }

    #[test]
    fn report_lists_failures_and_errors() {
        let ok = compare("k", "s".into(), &[1.0], &[1.0], 0.0);
        let bad = compare("k", "t".into(), &[2.0], &[1.0], 0.0);
        let err = KernelError::NotBuilt;
        let failures = report(&[Ok(ok.clone()), Ok(bad), Err(err)]);
        assert_eq!(failures.len(), 2);
        assert!(failures[0].contains("k t"));
        assert_all_pass(1, vec![Ok(ok)]);
    }
}
