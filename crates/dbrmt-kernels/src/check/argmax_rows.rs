//! `argmax_rows_f32` (`cuda/argmax_rows.cu`) against [`reference::argmax_rows::argmax_flagged`](crate::reference::argmax_rows)
//! — the sampler's greedy choice: every id equal, on fresh random logits with planted ties (across threads, warps and
//! inside one thread's columns), NaNs (first, sprinkled, everywhere), infinities, signed zeros, denormals and rows of
//! few distinct values; outputs poisoned, and nothing written outside the spans.

use super::harness::{below, f32_normal, fail_if, Check, SplitMix64};
use crate::argmax_rows::{argmax_rows_f32, ARGMAX_ROWS_F32};
use crate::params::Span;
use crate::poison::{poison_u32, POISON_F32_BITS};
use crate::reference::argmax_rows::{argmax, argmax_flagged};
use crate::{Gpu, KernelError};

/// Kinds of planted rows ([`plant`]).
const KINDS: usize = 13;

/// `ARGMAX_THREADS` of the kernel: ties `THREADS` columns apart are in one thread's columns.
const THREADS: usize = 512;

/// Makes `row` (fresh N(0, 4²) values) a case of kind `kind` and returns the id the scan must give, as designed (the
/// reference must agree: a unit test checks it).
fn plant(kind: usize, row: &mut [f32], rng: &mut SplitMix64) -> u32 {
    let n = row.len();
    let max = |row: &[f32]| {
        row.iter()
            .copied()
            .filter(|v| !v.is_nan())
            .fold(f32::NEG_INFINITY, f32::max)
    };
    let first_of = |row: &[f32], m: f32| row.iter().position(|&v| v == m).unwrap_or(0) as u32;
    // two distinct indices i < j (equal when n = 1)
    let pair = |rng: &mut SplitMix64| match n {
        1 => (0, 0),
        _ => {
            let i = below(rng, n - 1);
            (i, i + 1 + below(rng, n - 1 - i))
        }
    };
    match kind {
        // plain random
        0 => first_of(row, max(row)),
        // the largest value twice: the first wins
        1 => {
            let (i, j) = pair(rng);
            let m = max(row) + 1.0;
            (row[i], row[j]) = (m, m);
            i as u32
        }
        // a NaN first: never beaten
        2 => {
            row[0] = f32::NAN;
            row[below(rng, n)] = 100.0;
            0
        }
        // NaNs sprinkled, one where the largest value was: skipped
        3 => {
            let at = first_of(row, max(row)) as usize;
            for _ in 0..n / 16 + 1 {
                let i = 1 + below(rng, n.max(2) - 1);
                if i < n {
                    row[i] = f32::NAN;
                }
            }
            if at > 0 {
                row[at] = f32::NAN;
            }
            if row[0].is_nan() {
                return 0;
            }
            first_of(row, max(row))
        }
        // +inf twice, NaNs before them: the first +inf
        4 => {
            let (i, j) = pair(rng);
            (row[i], row[j]) = (f32::INFINITY, f32::INFINITY);
            for k in 1..i.min(4) {
                row[i - k] = f32::NAN;
            }
            i as u32
        }
        // every value -inf but some NaNs after index 0: 0; one finite value wins when there is one
        5 => {
            row.fill(f32::NEG_INFINITY);
            for _ in 0..n / 8 {
                row[1 + below(rng, n - 1)] = f32::NAN;
            }
            match rng.next_f64() < 0.5 && n > 1 {
                true => {
                    let i = 1 + below(rng, n - 1);
                    row[i] = -1e30;
                    i as u32
                }
                false => 0,
            }
        }
        // every value NaN
        6 => {
            row.fill(f32::NAN);
            0
        }
        // everything negative, the largest a +0 and a -0 (in either order): a tie, the first wins
        7 => {
            row.iter_mut().for_each(|v| *v = -v.abs() - 1.0);
            let (i, j) = pair(rng);
            let (a, b) = if rng.next_f64() < 0.5 { (0.0, -0.0) } else { (-0.0, 0.0) };
            (row[i], row[j]) = (a, b);
            i as u32
        }
        // the largest value last
        8 => {
            row[n - 1] = max(row) + 1.0;
            (n - 1) as u32
        }
        // few distinct values (-3..=3): many ties of the largest
        9 => {
            row.iter_mut().for_each(|v| *v = v.round().clamp(-3.0, 3.0));
            first_of(row, max(row))
        }
        // one value at i, i + 1 (the next thread), i + 33 (another warp) and i + THREADS (the same thread): i
        10 => {
            let i = below(rng, n);
            let m = max(row) + 2.0;
            for p in [i + THREADS, i + 33, i + 1, i] {
                if p < n {
                    row[p] = m;
                }
            }
            i as u32
        }
        // positive denormals, the larger after the smaller, everything else negative: the larger (no flush to zero)
        11 => {
            row.iter_mut().for_each(|v| *v = -v.abs() - 1.0);
            let (i, j) = pair(rng);
            row[i] = f32::from_bits(1);
            row[j] = f32::from_bits(3);
            j as u32
        }
        // -inf first, every other value NaN: 0
        _ => {
            row.fill(f32::NAN);
            row[0] = f32::NEG_INFINITY;
            0
        }
    }
}

/// Spans of `rows[i]` rows: inputs packed from row 1 of x with a gap row after each, outputs after a gap in the
/// reverse order; `(spans, x rows, out length)`.
fn spans_for(rows: &[usize]) -> (Vec<Span>, usize, usize) {
    let mut spans: Vec<Span> = Vec::new();
    let mut r = 1;
    for &n in rows {
        spans.push(Span {
            in_row: r,
            rows: n,
            ..Span::default()
        });
        r += n + 1;
    }
    let mut o = 1;
    for s in spans.iter_mut().rev() {
        s.out_row = o;
        o += s.rows + 1;
    }
    (spans, r, o)
}

/// The ids of `rows` (one span each) of width `n` and stride `ld`, against the host's argmax: every id equal, none
/// unwritten, nothing written outside the spans. Row `k` (counted over the spans) is of kind `k % KINDS`.
pub fn check_argmax(gpu: &Gpu, seed: u64, rows: &[usize], n: usize, ld: usize) -> Result<Check, KernelError> {
    let stream = gpu.stream();
    let (spans, x_rows, out_len) = spans_for(rows);
    let mut rng = SplitMix64::new(seed);
    let mut x = f32_normal(&mut rng, x_rows * ld, 4.0);
    let (mut want, mut designed_wrong) = (vec![u32::MAX; out_len], 0);
    let mut k = 0;
    for s in &spans {
        for r in 0..s.rows {
            let row = &mut x[(s.in_row + r) * ld..][..n];
            let designed = plant(k % KINDS, row, &mut rng);
            want[s.out_row + r] = argmax_flagged(row);
            designed_wrong += usize::from(designed != argmax(row));
            k += 1;
        }
    }
    let xd = stream.clone_htod(&x)?;
    let mut out = stream.alloc_zeros::<u32>(out_len)?;
    poison_u32(gpu, stream, &mut out, POISON_F32_BITS)?;
    argmax_rows_f32(gpu, stream, &xd, ld, &mut out, &spans, n)?;
    let got = stream.clone_dtoh(&out)?;
    let inside = |i: usize| spans.iter().any(|s| (s.out_row..s.out_row + s.rows).contains(&i));
    let (mut unwritten, mut wrong, mut strays) = (0, 0, 0);
    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
        match (inside(i), g == POISON_F32_BITS) {
            (true, true) => unwritten += 1,
            (true, false) => wrong += usize::from(g != w),
            (false, poisoned) => strays += usize::from(!poisoned),
        }
    }
    let check = Check {
        kernel: ARGMAX_ROWS_F32.entry,
        shape: format!("rows={rows:?} n={n} ld={ld}"),
        rel_err: 0.0,
        max_abs: 0.0,
        tol: 0.0,
        unwritten,
    };
    let check = fail_if(check, wrong, "ids differ from the host's argmax");
    let check = fail_if(check, strays, "ids written outside the spans");
    Ok(fail_if(
        check,
        designed_wrong,
        "planted rows the host scan answers otherwise",
    ))
}

/// The decode rows of 64 requests at Llama-3's vocabulary (128,256) and of a prefill's last rows at SmolLM2's (49,152),
/// a span of many rows, and widths below the block, odd, and of one column.
pub fn checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    vec![
        check_argmax(gpu, seed, &[1; 64], 128_256, 128_256),
        check_argmax(gpu, seed ^ 1, &[1; 13], 49_152, 49_152),
        check_argmax(gpu, seed ^ 2, &[17, 1, 5], 49_152, 49_152 + 3),
        check_argmax(gpu, seed ^ 3, &[40, 3], 1000, 1001),
        check_argmax(gpu, seed ^ 4, &[26], 100, 100),
        check_argmax(gpu, seed ^ 5, &[13, 13], 3, 5),
        check_argmax(gpu, seed ^ 6, &[13], 1, 1),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every planted kind gives the id it was designed for, by the host's scan, at many widths and seeds.
    #[test]
    fn planted_rows_answer_as_designed() {
        for seed in 0..40u64 {
            let mut rng = SplitMix64::new(seed);
            for n in [1, 2, 3, 100, 513, 1000, 4096] {
                for kind in 0..KINDS {
                    let mut row = f32_normal(&mut rng, n, 4.0);
                    let designed = plant(kind, &mut row, &mut rng);
                    assert_eq!(argmax(&row), designed, "kind {kind} n {n} seed {seed}");
                }
            }
        }
    }

    /// The kernel's reduction step by step on the host (each thread's strided scan, the shuffle-down tree in each warp
    /// — a lane past 31 reads its own pair —, thread 0 over the warps in order, the NaN-first rule), as in
    /// `cuda/argmax_rows.cu`.
    fn as_the_kernel(x: &[f32]) -> u32 {
        let better = |v: f32, i: i32, bv: f32, bi: i32| v > bv || (v == bv && i < bi);
        let mut best = vec![(f32::NEG_INFINITY, i32::MAX); THREADS];
        for (t, b) in best.iter_mut().enumerate() {
            for c in (t..x.len()).step_by(THREADS) {
                if better(x[c], c as i32, b.0, b.1) {
                    *b = (x[c], c as i32);
                }
            }
        }
        for warp in best.chunks_exact_mut(32) {
            let mut o = 16;
            while o > 0 {
                let before = warp.to_vec();
                for lane in 0..32 {
                    let (ov, oi) = before[if lane + o < 32 { lane + o } else { lane }];
                    if better(ov, oi, warp[lane].0, warp[lane].1) {
                        warp[lane] = (ov, oi);
                    }
                }
                o /= 2;
            }
        }
        let (mut bv, mut bi) = best[0];
        for w in 1..THREADS / 32 {
            let (v, i) = best[w * 32];
            if better(v, i, bv, bi) {
                (bv, bi) = (v, i);
            }
        }
        match bi == i32::MAX || x[0].is_nan() {
            true => 0,
            false => bi as u32,
        }
    }

    /// The kernel's algorithm gives the host's id on every planted kind (so a GPU failure is the CUDA code's, not the
    /// reduction's design).
    #[test]
    fn the_kernels_reduction_is_the_host_scan() {
        for seed in 0..12u64 {
            let mut rng = SplitMix64::new(seed);
            for n in [1, 3, 31, 100, 511, 512, 513, 1000, 5000] {
                for kind in 0..KINDS {
                    let mut row = f32_normal(&mut rng, n, 4.0);
                    plant(kind, &mut row, &mut rng);
                    assert_eq!(as_the_kernel(&row), argmax(&row), "kind {kind} n {n} seed {seed}");
                }
            }
        }
    }

    #[test]
    fn spans_keep_outputs_apart() {
        let (spans, x_rows, out_len) = spans_for(&[2, 1, 3]);
        assert_eq!(x_rows, 1 + 3 + 2 + 4);
        for s in &spans {
            assert!(s.in_row + s.rows < x_rows && s.out_row + s.rows < out_len);
        }
        let mut ids: Vec<usize> = spans.iter().flat_map(|s| s.out_row..s.out_row + s.rows).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 6);
    }
}
