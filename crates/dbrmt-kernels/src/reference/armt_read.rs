//! ARMT's associative read before the block (armt-spec §1.3): `h += φ(h W_qᵀ) A / (φ(h W_qᵀ) · z + ε)`.
//!
//! State per layer: `A` `[D, d]` and `z` `[D]` in f32, `D = 2·ν·d_mem`.

use dbrmt_formats::MemShape;

use super::dpfp::dpfp;
use super::gemm::{linear, matmul};
use super::{dot_f64, ARMT_EPS};

/// The read (segment ≥ 1 only): `h += φ(h W_qᵀ) A / (φ(h W_qᵀ) · z + ε)` on every row of `h` `[rows, d]`.
/// `w_q` is `[d_mem, d]`. Composed of the pieces the GPU runs as separate launches: a product, [`dpfp`], a product
/// with `A`, and [`read_apply`].
pub fn armt_read(h: &mut [f32], w_q: &[f32], a: &[f32], z: &[f32], shape: MemShape) {
    let (d, dm, dk) = (shape.hidden, shape.d_mem, shape.d_key());
    let rows = h.len() / d;
    assert!(
        h.len() == rows * d && a.len() == dk * d && z.len() == dk,
        "armt_read: shape mismatch"
    );
    let mut u = vec![0.0f32; rows * dm];
    linear(h, w_q, rows, d, dm, &mut u);
    read_from_u(h, &u, a, z, dm, shape.nu);
}

/// The read after the query projection (what the fused GPU read does in one launch): `φ = dpfp(u)` for `u`
/// `[rows, d_mem]`, then `h += φ·A / (φ·z + ε)` on `h` `[rows, d]`, `A` `[D, d]`, `z` `[D]`, `D = 2·nu·d_mem`.
pub fn read_from_u(h: &mut [f32], u: &[f32], a: &[f32], z: &[f32], d_mem: usize, nu: usize) {
    let dk = 2 * nu * d_mem;
    let rows = u.len() / d_mem;
    let d = h.len() / rows.max(1);
    assert!(
        u.len() == rows * d_mem && h.len() == rows * d && a.len() == dk * d && z.len() == dk,
        "read_from_u: shape mismatch"
    );
    let mut q = vec![0.0f32; rows * dk];
    dpfp(u, d_mem, nu, &mut q);
    let mut num = vec![0.0f32; rows * d];
    matmul(&q, a, rows, dk, d, &mut num);
    read_apply(h, &num, &q, z);
}

/// The last piece of the read: `h[r] += num[r] / (q[r] · z + ε)` for `h`, `num` `[rows, d]`, `q` `[rows, D]`.
pub fn read_apply(h: &mut [f32], num: &[f32], q: &[f32], z: &[f32]) {
    let dk = z.len();
    let rows = q.len() / dk;
    let d = h.len() / rows.max(1);
    assert!(
        q.len() == rows * dk && h.len() == rows * d && num.len() == h.len(),
        "read_apply: shape mismatch"
    );
    for ((hr, nr), qr) in h.chunks_exact_mut(d).zip(num.chunks_exact(d)).zip(q.chunks_exact(dk)) {
        let den = dot_f64(qr, z) + ARMT_EPS;
        for (x, &n) in hr.iter_mut().zip(nr) {
            *x += n / den;
        }
    }
}
