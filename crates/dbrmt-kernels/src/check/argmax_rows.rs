//! `argmax_rows_f32` (`cuda/argmax_rows.cu`) against [`reference::argmax_rows::argmax_flagged`](crate::reference::argmax_rows)
//! — the sampler's greedy choice: every id equal, on fresh random logits with planted ties (across threads, warps,
//! inside one thread's columns, and on both sides of a chunk boundary), NaNs (first, sprinkled, everywhere, just before
//! a boundary), infinities, signed zeros, denormals and rows of few distinct values; float4 and scalar (odd stride)
//! reads; outputs poisoned, and nothing written outside the spans.

use super::harness::{below, f32_normal, fail_if, Check, SplitMix64};
use crate::argmax_rows::{argmax_rows_f32, plan, ARGMAX_ROWS_F32, SCRATCH_PER_ROW};
use crate::params::Span;
use crate::poison::{poison_u32, POISON_F32_BITS};
use crate::reference::argmax_rows::{argmax, argmax_flagged};
use crate::{Gpu, KernelError};

/// Kinds of planted rows ([`plant`]).
const KINDS: usize = 18;

/// `ARGMAX_CHUNK_THREADS` of the kernel: with scalar reads, ties `THREADS` columns apart are in one thread's columns
/// (with float4 reads, ties 1 to 3 columns apart may be).
const THREADS: usize = 256;

/// Makes `row` (fresh N(0, 4²) values) a case of kind `kind` and returns the id the scan must give, as designed (the
/// reference must agree: a unit test checks it). `chunk`: the kernel's chunk width for this row (kinds 13 to 17 plant
/// on both sides of a boundary between chunks; with one chunk, of a random column).
fn plant(kind: usize, row: &mut [f32], chunk: usize, rng: &mut SplitMix64) -> u32 {
    let n = row.len();
    // a chunk boundary b (1 <= b < n; 0 when n = 1): column b - 1 ends a chunk, b starts the next
    let boundary = |rng: &mut SplitMix64| match (n - 1) / chunk {
        _ if n == 1 => 0,
        0 => 1 + below(rng, n - 1),
        k => chunk * (1 + below(rng, k)),
    };
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
        12 => {
            row.fill(f32::NAN);
            row[0] = f32::NEG_INFINITY;
            0
        }
        // the largest value on both sides of a chunk boundary: the one before it
        13 => {
            let b = boundary(rng);
            let m = max(row) + 1.0;
            row[b] = m;
            row[b.saturating_sub(1)] = m;
            b.saturating_sub(1) as u32
        }
        // the largest value at the start of a chunk, one column later and at the start of the next chunk; a NaN
        // before it: the first
        14 => {
            let b = boundary(rng);
            let m = max(row) + 1.0;
            for p in [b + chunk, b + 1, b] {
                if p < n {
                    row[p] = m;
                }
            }
            if b > 1 {
                row[b - 1] = f32::NAN;
            }
            b as u32
        }
        // everything negative, -0 ending a chunk and +0 starting the next (in either order): the first
        15 => {
            row.iter_mut().for_each(|v| *v = -v.abs() - 1.0);
            let b = boundary(rng);
            let (a, z) = if rng.next_f64() < 0.5 { (0.0, -0.0) } else { (-0.0, 0.0) };
            (row[b.saturating_sub(1)], row[b]) = (a, z);
            b.saturating_sub(1) as u32
        }
        // +inf starting a chunk and in the last column, -inf ending the chunk before: the first +inf
        16 => {
            let b = boundary(rng);
            row[n - 1] = f32::INFINITY;
            row[b] = f32::INFINITY;
            if b > 0 {
                row[b - 1] = f32::NEG_INFINITY;
            }
            b as u32
        }
        // NaN first and the largest value on both sides of a boundary: 0
        _ => {
            let b = boundary(rng);
            let m = max(row) + 1.0;
            row[b] = m;
            row[b.saturating_sub(1)] = m;
            row[0] = f32::NAN;
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
/// unwritten, nothing written outside the spans. Row `k` (counted over the spans) is of kind `(k + seed) % KINDS`.
pub fn check_argmax(gpu: &Gpu, seed: u64, rows: &[usize], n: usize, ld: usize) -> Result<Check, KernelError> {
    let stream = gpu.stream();
    let (spans, x_rows, out_len) = spans_for(rows);
    let chunk = plan(n, rows.iter().sum()).chunk_cols;
    let mut rng = SplitMix64::new(seed);
    let mut x = f32_normal(&mut rng, x_rows * ld, 4.0);
    let (mut want, mut designed_wrong) = (vec![u32::MAX; out_len], 0);
    let mut k = seed as usize % KINDS;
    for s in &spans {
        for r in 0..s.rows {
            let row = &mut x[(s.in_row + r) * ld..][..n];
            let designed = plant(k % KINDS, row, chunk, &mut rng);
            want[s.out_row + r] = argmax_flagged(row);
            designed_wrong += usize::from(designed != argmax(row));
            k += 1;
        }
    }
    let xd = stream.clone_htod(&x)?;
    let mut out = stream.alloc_zeros::<u32>(out_len)?;
    poison_u32(gpu, stream, &mut out, POISON_F32_BITS)?;
    let mut scratch = stream.alloc_zeros::<u32>(out_len * SCRATCH_PER_ROW)?;
    poison_u32(gpu, stream, &mut scratch, POISON_F32_BITS)?;
    argmax_rows_f32(gpu, stream, &xd, ld, &mut out, &mut scratch, &spans, n)?;
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
        shape: format!("rows={rows:?} n={n} ld={ld} chunk={chunk}"),
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

/// The decode rows of 1, 13 and 64 requests at Llama-3's vocabulary (128,256: 126 chunks of 1,024 for one row, 16 of
/// 8,192 for 64) and at SmolLM2's (49,152), float4 reads and scalar ones (odd stride), one row alone on several
/// seeds (every kind across 126 chunk boundaries), a span of many rows, a width not a multiple of 4 read as float4,
/// and widths below the block, odd, and of one column.
pub fn checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    let mut checks = vec![
        check_argmax(gpu, seed, &[1; 64], 128_256, 128_256),
        check_argmax(gpu, seed ^ 1, &[1; 13], 49_152, 49_152),
        check_argmax(gpu, seed ^ 7, &[64], 49_152, 49_152 + 3),
        check_argmax(gpu, seed ^ 8, &[1; 13], 128_256, 128_256 + 3),
        check_argmax(gpu, seed ^ 9, &[1; 64], 49_152, 49_152),
        check_argmax(gpu, seed ^ 10, &[3, 2], 128_257, 128_260),
        check_argmax(gpu, seed ^ 2, &[17, 1, 5], 49_152, 49_152 + 3),
        check_argmax(gpu, seed ^ 3, &[40, 3], 1000, 1001),
        check_argmax(gpu, seed ^ 4, &[26], 100, 100),
        check_argmax(gpu, seed ^ 5, &[13, 13], 3, 5),
        check_argmax(gpu, seed ^ 6, &[13], 1, 1),
    ];
    // one row of each vocabulary alone, of every kind (a seed's first row is of kind seed % KINDS), float4 and scalar
    let k = KINDS as u64;
    let base = seed.wrapping_mul(2 * k) % (1 << 40);
    for kind in 0..k {
        checks.push(check_argmax(gpu, base + kind, &[1], 128_256, 128_256));
        checks.push(check_argmax(gpu, base + k + kind, &[1], 49_152, 49_152 + 1));
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::argmax_rows::NON_FINITE;

    /// Every planted kind gives the id it was designed for, by the host's scan, at many widths, chunk widths and seeds.
    #[test]
    fn planted_rows_answer_as_designed() {
        for seed in 0..40u64 {
            let mut rng = SplitMix64::new(seed);
            for n in [1, 2, 3, 100, 513, 1000, 4096, 5001] {
                for chunk in [4, 64, 1024] {
                    for kind in 0..KINDS {
                        let mut row = f32_normal(&mut rng, n, 4.0);
                        let designed = plant(kind, &mut row, chunk, &mut rng);
                        assert_eq!(argmax(&row), designed, "kind {kind} n {n} chunk {chunk} seed {seed}");
                    }
                }
            }
        }
    }

    type Pair = (f32, i32);

    fn better((v, i): Pair, (bv, bi): Pair) -> bool {
        v > bv || (v == bv && i < bi)
    }

    /// The shuffle-down tree of one warp (a lane past 31 reads its own pair): lane 0's pair.
    fn warp_best(warp: &mut [Pair]) -> Pair {
        let mut o = 16;
        while o > 0 {
            let before = warp.to_vec();
            for lane in 0..32 {
                let other = before[if lane + o < 32 { lane + o } else { lane }];
                if better(other, warp[lane]) {
                    warp[lane] = other;
                }
            }
            o /= 2;
        }
        warp[0]
    }

    /// The kernel's two passes step by step on the host, as in `cuda/argmax_rows.cu`: per chunk of `chunk_cols`
    /// columns, each thread's float4 quads (with `vec4`) then its strided tail columns, the shuffle tree in each warp,
    /// thread 0 over the warps in order, a candidate per chunk with its non-finite flag; then the lanes of one warp
    /// over the candidates (lane l: l, l + 32, ...), the tree, the OR of the flags and the NaN-first rule.
    fn as_the_kernel(x: &[f32], chunk_cols: usize, vec4: bool) -> u32 {
        let n = x.len();
        let nothing = (f32::NEG_INFINITY, i32::MAX);
        let mut candidates: Vec<(Pair, bool)> = Vec::new();
        for c0 in (0..n).step_by(chunk_cols) {
            let c1 = (c0 + chunk_cols).min(n);
            let mut best = vec![nothing; THREADS];
            let mut non_finite = false;
            let mut take = |b: &mut Pair, c: usize| {
                non_finite |= !x[c].is_finite();
                if better((x[c], c as i32), *b) {
                    *b = (x[c], c as i32);
                }
            };
            let quads = if vec4 { (c1 - c0) / 4 } else { 0 };
            for (t, b) in best.iter_mut().enumerate() {
                for q in (t..quads).step_by(THREADS) {
                    for e in 0..4 {
                        take(b, c0 + 4 * q + e);
                    }
                }
                for c in (c0 + 4 * quads + t..c1).step_by(THREADS) {
                    take(b, c);
                }
            }
            let warps: Vec<Pair> = best.chunks_exact_mut(32).map(warp_best).collect();
            let mut b = warps[0];
            for &w in &warps[1..] {
                if better(w, b) {
                    b = w;
                }
            }
            candidates.push((b, non_finite));
        }
        let mut lanes = vec![nothing; 32];
        for (l, b) in lanes.iter_mut().enumerate() {
            for &(c, _) in candidates.iter().skip(l).step_by(32) {
                if better(c, *b) {
                    *b = c;
                }
            }
        }
        let (_, bi) = warp_best(&mut lanes);
        let flag = match candidates.iter().any(|&(_, f)| f) {
            true => NON_FINITE,
            false => 0,
        };
        flag | match bi == i32::MAX || x[0].is_nan() {
            true => 0,
            false => bi as u32,
        }
    }

    /// The kernel's algorithm gives the host's flagged id on every planted kind, with float4 and scalar reads, one
    /// chunk or many (so a GPU failure is the CUDA code's, not the reduction's design).
    #[test]
    fn the_kernels_reduction_is_the_host_scan() {
        for seed in 0..6u64 {
            let mut rng = SplitMix64::new(seed);
            for n in [1, 3, 31, 100, 511, 512, 513, 1000, 5000, 5001] {
                for chunk_cols in [4, 1024, 2048] {
                    for kind in 0..KINDS {
                        let mut row = f32_normal(&mut rng, n, 4.0);
                        plant(kind, &mut row, chunk_cols, &mut rng);
                        for vec4 in [false, true] {
                            assert_eq!(
                                as_the_kernel(&row, chunk_cols, vec4),
                                argmax_flagged(&row),
                                "kind {kind} n {n} chunk {chunk_cols} vec4 {vec4} seed {seed}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// The split the checks use puts chunk boundaries inside the rows they plant on.
    #[test]
    fn the_checked_rows_have_many_chunks() {
        assert_eq!(plan(128_256, 1).chunks, 126);
        assert_eq!(plan(128_256, 64).chunks, 16);
        assert_eq!(plan(49_152, 13).chunks, 48);
        assert_eq!(plan(49_152, 64).chunks, 16);
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
