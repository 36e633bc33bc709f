//! Matrix products (through `matrixmultiply`, single-threaded and deterministic).

/// `c = alpha·a·b + beta·c` for `a` `[m, k]`, `b` `[k, n]`, `c` `[m, n]`, each given by (row stride, column stride).
#[allow(clippy::too_many_arguments)]
fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: (&[f32], isize, isize),
    b: (&[f32], isize, isize),
    beta: f32,
    c: (&mut [f32], isize, isize),
) {
    let reach = |rows: usize, cols: usize, rs: isize, cs: isize| {
        if rows == 0 || cols == 0 {
            0
        } else {
            (rows - 1) * rs as usize + (cols - 1) * cs as usize + 1
        }
    };
    assert!(a.0.len() >= reach(m, k, a.1, a.2), "sgemm: a too short");
    assert!(b.0.len() >= reach(k, n, b.1, b.2), "sgemm: b too short");
    assert!(c.0.len() >= reach(m, n, c.1, c.2), "sgemm: c too short");
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the asserts above check that every element matrixmultiply addresses from (m, k, n) and the
    // non-negative strides lies inside its slice; `c` is a unique borrow, so it aliases neither input.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.0.as_ptr(),
            a.1,
            a.2,
            b.0.as_ptr(),
            b.1,
            b.2,
            beta,
            c.0.as_mut_ptr(),
            c.1,
            c.2,
        );
    }
}

/// `y[m, n] = x[m, k] · w[n, k]ᵀ`: an `nn.Linear` whose weight is stored `[out, in]`.
///
/// A few rows (token-by-token decoding) take contiguous dot products over the weight rows instead: a general
/// product would pack the whole weight matrix on every call.
pub fn linear(x: &[f32], w: &[f32], m: usize, k: usize, n: usize, y: &mut [f32]) {
    check(x, m * k, w, n * k, y, m * n);
    if m <= FEW_ROWS && k > 0 {
        for (xr, yr) in x.chunks_exact(k).zip(y.chunks_exact_mut(n)) {
            for (o, wr) in yr.iter_mut().zip(w.chunks_exact(k)) {
                *o = dot(xr, wr);
            }
        }
        return;
    }
    let (ki, ni) = (k as isize, n as isize);
    sgemm(m, k, n, (x, ki, 1), (w, 1, ki), 0.0, (y, ni, 1));
}

/// Row counts up to which [`linear`] uses dot products.
const FEW_ROWS: usize = 2;

/// A dot product with eight independent partial sums (so the compiler vectorises it), then summed in order.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (xa, xb) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += xa[i] * xb[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `y[m, n] += x[m, k] · w[n, k]ᵀ`: a linear layer with the residual add fused (as the GPU does it).
pub fn linear_add(x: &[f32], w: &[f32], m: usize, k: usize, n: usize, y: &mut [f32]) {
    check(x, m * k, w, n * k, y, m * n);
    let (ki, ni) = (k as isize, n as isize);
    sgemm(m, k, n, (x, ki, 1), (w, 1, ki), 1.0, (y, ni, 1));
}

/// `c[m, n] = a[m, k] · b[k, n]`.
pub fn matmul(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, c: &mut [f32]) {
    check(a, m * k, b, k * n, c, m * n);
    let (ki, ni) = (k as isize, n as isize);
    sgemm(m, k, n, (a, ki, 1), (b, ni, 1), 0.0, (c, ni, 1));
}

/// `c[m, n] += a[k, m]ᵀ · b[k, n]` (the outer-product sum of the memory write).
pub fn matmul_tn_add(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, c: &mut [f32]) {
    check(a, k * m, b, k * n, c, m * n);
    let (mi, ni) = (m as isize, n as isize);
    sgemm(m, k, n, (a, 1, mi), (b, ni, 1), 1.0, (c, ni, 1));
}

/// Strided product for the attention reference: `c = a·b` with explicit strides (row, column) per operand.
#[allow(clippy::too_many_arguments)]
pub fn matmul_strided(
    m: usize,
    k: usize,
    n: usize,
    a: (&[f32], usize, usize),
    b: (&[f32], usize, usize),
    c: (&mut [f32], usize, usize),
) {
    sgemm(
        m,
        k,
        n,
        (a.0, a.1 as isize, a.2 as isize),
        (b.0, b.1 as isize, b.2 as isize),
        0.0,
        (c.0, c.1 as isize, c.2 as isize),
    );
}

fn check(a: &[f32], na: usize, b: &[f32], nb: usize, c: &[f32], nc: usize) {
    assert_eq!(a.len(), na, "gemm: first operand has the wrong length");
    assert_eq!(b.len(), nb, "gemm: second operand has the wrong length");
    assert_eq!(c.len(), nc, "gemm: output has the wrong length");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_linear(x: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut y = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                y[i * n + j] = (0..k).map(|t| x[i * k + t] as f64 * w[j * k + t] as f64).sum::<f64>() as f32;
            }
        }
        y
    }

    fn rnd(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn linear_matches_naive_and_fused_add_adds() {
        let (m, k, n) = (7, 33, 5);
        let (x, w) = (rnd(m * k, 1), rnd(n * k, 2));
        let mut y = vec![f32::NAN; m * n];
        linear(&x, &w, m, k, n, &mut y);
        let r = naive_linear(&x, &w, m, k, n);
        for (a, b) in y.iter().zip(&r) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        let mut y2 = vec![1.0; m * n];
        linear_add(&x, &w, m, k, n, &mut y2);
        for (a, b) in y2.iter().zip(&r) {
            assert!((a - (b + 1.0)).abs() < 1e-5);
        }
    }

    #[test]
    fn tn_product_is_transpose_product() {
        let (m, k, n) = (4, 6, 3);
        let (a, b) = (rnd(k * m, 3), rnd(k * n, 4));
        let mut c = vec![0.5; m * n];
        matmul_tn_add(&a, &b, m, k, n, &mut c);
        for i in 0..m {
            for j in 0..n {
                let r: f32 = (0..k).map(|t| a[t * m + i] * b[t * n + j]).sum::<f32>() + 0.5;
                assert!((c[i * n + j] - r).abs() < 1e-5);
            }
        }
        let mut c2 = vec![f32::NAN; m * n];
        let at: Vec<f32> = (0..m * k).map(|idx| a[(idx % k) * m + idx / k]).collect();
        matmul(&at, &b, m, k, n, &mut c2);
        for (x, y) in c.iter().zip(&c2) {
            assert!((x - 0.5 - y).abs() < 1e-5);
        }
    }
}
