//! Greedy choice: the index of a row's largest value, the first one on ties. The one definition of it — the sampler's
//! greedy token (`dbrmt_model::sampling`) and the oracle of `cuda/argmax_rows.cu`.

/// The index of the largest value of `x` (the first one on ties): `best = 0`, then every `x[i] > x[best]` moves it.
/// A NaN is never greater, so NaNs are skipped, except a NaN at index 0, which nothing beats (the answer is then 0);
/// `-0.0 == 0.0` (a tie, the first wins); an empty slice gives 0.
pub fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best as u32
}

/// The bit `argmax_rows_f32` sets beside the id when its row holds a NaN or an infinity (ids are below 2^31): the
/// host path checks the logits it copies for that, and a greedy id chosen on the device must be able to say so too.
pub const NON_FINITE: u32 = 1 << 31;

/// What `argmax_rows_f32` writes for one row: [`argmax`], with [`NON_FINITE`] set when a value is NaN or ±inf.
pub fn argmax_flagged(x: &[f32]) -> u32 {
    argmax(x) | if x.iter().all(|v| v.is_finite()) { 0 } else { NON_FINITE }
}

/// [`argmax_flagged`] of each row of `x` (`[rows, n]`, `n > 0`).
pub fn argmax_rows(x: &[f32], n: usize) -> Vec<u32> {
    assert!(n > 0 && x.len().is_multiple_of(n), "argmax_rows: shape mismatch");
    x.chunks_exact(n).map(argmax_flagged).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_on_ties_and_nans_as_the_scan_sees_them() {
        let (nan, inf) = (f32::NAN, f32::INFINITY);
        assert_eq!(argmax(&[0.0, 3.0, 1.0, 3.0]), 1);
        assert_eq!(argmax(&[nan, 3.0, 1.0]), 0, "a NaN first is never beaten");
        assert_eq!(argmax(&[1.0, nan, 3.0, nan]), 2, "later NaNs are skipped");
        assert_eq!(argmax(&[-inf, nan, -inf]), 0);
        assert_eq!(argmax(&[-inf, -inf, -1.0]), 2);
        assert_eq!(argmax(&[1.0, inf, inf]), 1);
        assert_eq!(argmax(&[-1.0, -0.0, 0.0]), 1, "-0 and +0 tie");
        assert_eq!(argmax(&[nan, nan]), 0);
        assert_eq!(argmax(&[]), 0);
        assert_eq!(argmax_rows(&[1.0, 2.0, 5.0, 4.0], 2), vec![1, 0]);
        assert_eq!(argmax_flagged(&[1.0, inf, 0.0]), 1 | NON_FINITE);
        assert_eq!(argmax_flagged(&[1.0, nan, 3.0]), 2 | NON_FINITE);
        assert_eq!(argmax_flagged(&[-inf, 0.0]), 1 | NON_FINITE);
        assert_eq!(argmax_flagged(&[1.0, 3.0]), 1);
    }
}
