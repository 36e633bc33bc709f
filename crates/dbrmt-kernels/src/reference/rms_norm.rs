//! RMSNorm in the order of operations of HF `LlamaRMSNorm`: `w · (x · rsqrt(mean(x²) + eps))`.

/// Normalises each row of `x` (`[rows, d]`, `d = w.len()`) into `y`. The mean square is summed in f64.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, y: &mut [f32]) {
    let d = w.len();
    assert!(
        d > 0 && x.len().is_multiple_of(d) && y.len() == x.len(),
        "rms_norm: shape mismatch"
    );
    for (xr, yr) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
        let ms = xr.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / d as f64;
        let r = (1.0 / (ms + eps as f64).sqrt()) as f32;
        for ((o, &v), &g) in yr.iter_mut().zip(xr).zip(w) {
            *o = g * (v * r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_rows_keep_their_scale() {
        let x = [3.0f32, -4.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0];
        let w = [1.0f32, 2.0, 1.0, 1.0];
        let mut y = [f32::NAN; 8];
        rms_norm(&x, &w, 0.0, &mut y);
        // row 0: mean square 25/4 -> divide by 2.5
        assert_eq!(&y[..4], &[1.2, -3.2, 0.0, 0.0]);
        assert_eq!(&y[4..], &[1.0, 2.0, 1.0, 1.0]);
    }
}
