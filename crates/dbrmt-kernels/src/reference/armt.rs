//! The ARMT associative memory of one layer: the DPFP feature map, the read before the block and the delta-rule
//! write after it (armt-spec §1.2–§1.5).
//!
//! State per layer: `A` `[D, d]` and `z` `[D]` in f32, `D = 2·ν·d_mem`.

use super::gemm::{linear, matmul, matmul_tn_add};
use super::mlp::sigmoid;
use super::MEM_EPS;

/// DPFP with order `nu`, per row: `x = [relu(u), relu(−u)]` (`2·d_mem`), then block `j = 1..=nu` holds
/// `x ⊙ roll(x, j)` with `roll(x, j)ᵢ = x₍ᵢ₋ⱼ₎ mod 2d_mem`. `u` `[rows, d_mem]` → `out` `[rows, 2·nu·d_mem]`.
pub fn dpfp(u: &[f32], d_mem: usize, nu: usize, out: &mut [f32]) {
    let w = 2 * d_mem;
    assert!(
        u.len().is_multiple_of(d_mem) && out.len() == u.len() / d_mem * nu * w,
        "dpfp: shape mismatch"
    );
    let mut x = vec![0.0f32; w];
    for (ur, or) in u.chunks_exact(d_mem).zip(out.chunks_exact_mut(nu * w)) {
        for (i, &v) in ur.iter().enumerate() {
            x[i] = v.max(0.0);
            x[d_mem + i] = (-v).max(0.0);
        }
        for j in 1..=nu {
            let block = &mut or[(j - 1) * w..j * w];
            for i in 0..w {
                block[i] = x[i] * x[(i + w - j % w) % w];
            }
        }
    }
}

pub use dbrmt_formats::MemShape;

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
    let mut q = vec![0.0f32; rows * dk];
    dpfp(&u, dm, shape.nu, &mut q);
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
        let den = dot(qr, z) + MEM_EPS;
        for (x, &n) in hr.iter_mut().zip(nr) {
            *x += n / den;
        }
    }
}

/// One layer's write-side parameters: `W_k` `[d_mem, d]`, `W_v` `[d, d]`, `w_β` `[d]`, `b_β`.
#[derive(Debug, Clone, Copy)]
pub struct WriteWeights<'a> {
    pub w_k: &'a [f32],
    pub w_v: &'a [f32],
    pub w_beta: &'a [f32],
    pub b_beta: f32,
}

/// The write from the post-block memory rows `p` `[M, d]`:
/// `K = φ(P W_kᵀ)`, `V = P W_vᵀ`, `β = σ(P w_β + b_β)`; segment 0: `V̄ = 0`, `γ = 1`; otherwise
/// `δ = K z + ε`, `V̄ = K A / δ`, `γ = clip(1 − δ / (‖K‖² + ε), 0, 1)` (`γ = 1` without `correction`);
/// then `A += Kᵀ (β ⊙ (V − V̄))`, `z += Σₜ γₜ Kₜ`. `V̄` and `γ` use the old state. Composed of the pieces the GPU
/// runs as separate launches: products, [`dpfp`], [`write_prep`], a transposed product into `A`, [`z_update`].
pub fn armt_write(
    p: &[f32],
    w: WriteWeights<'_>,
    a: &mut [f32],
    z: &mut [f32],
    shape: MemShape,
    first_segment: bool,
    correction: bool,
) {
    let (d, dm, dk) = (shape.hidden, shape.d_mem, shape.d_key());
    let m = p.len() / d;
    assert!(
        p.len() == m * d && a.len() == dk * d && z.len() == dk,
        "armt_write: shape mismatch"
    );
    let mut kr = vec![0.0f32; m * dm];
    linear(p, w.w_k, m, d, dm, &mut kr);
    let mut k = vec![0.0f32; m * dk];
    dpfp(&kr, dm, shape.nu, &mut k);
    let mut v = vec![0.0f32; m * d];
    linear(p, w.w_v, m, d, d, &mut v);
    let mut beta_logit = vec![0.0f32; m];
    linear(p, w.w_beta, m, d, 1, &mut beta_logit);
    let mut ka = vec![0.0f32; m * d];
    if !first_segment {
        matmul(&k, a, m, dk, d, &mut ka);
    }
    let mut u = vec![0.0f32; m * d];
    let mut gamma = vec![0.0f32; m];
    let flags = WriteFlags {
        first_segment,
        correction,
    };
    write_prep(&k, &v, &beta_logit, w.b_beta, &ka, z, flags, &mut u, &mut gamma);
    matmul_tn_add(&k, &u, dk, m, d, a);
    z_update(&k, &gamma, z);
}

/// How a cell writes: segment 0 (`V̄ = 0`, `γ = 1`) and whether `γ` is corrected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteFlags {
    pub first_segment: bool,
    pub correction: bool,
}

/// The middle of the write, per memory row `t`: from `K` `[M, D]`, `V` `[M, d]`, the β logits `P w_β` `[M]` (bias
/// not added), `KA = K · A_old` `[M, d]` (ignored for segment 0) and the old `z` `[D]`, computes
/// `u_t = σ(logit_t + b_β) · (V_t − KA_t / δ_t)` with `δ_t = K_t · z + ε`, and `γ_t`.
#[allow(clippy::too_many_arguments)]
pub fn write_prep(
    k: &[f32],
    v: &[f32],
    beta_logit: &[f32],
    b_beta: f32,
    ka: &[f32],
    z: &[f32],
    flags: WriteFlags,
    u: &mut [f32],
    gamma: &mut [f32],
) {
    let (m, dk) = (beta_logit.len(), z.len());
    let d = v.len() / m.max(1);
    assert!(
        k.len() == m * dk && v.len() == m * d && ka.len() == m * d,
        "write_prep: shape mismatch"
    );
    assert!(
        u.len() == m * d && gamma.len() == m,
        "write_prep: output shape mismatch"
    );
    for t in 0..m {
        let kt = &k[t * dk..(t + 1) * dk];
        let beta = sigmoid(beta_logit[t] + b_beta);
        let (vt, ut) = (&v[t * d..(t + 1) * d], &mut u[t * d..(t + 1) * d]);
        if flags.first_segment {
            gamma[t] = 1.0;
            for (o, &x) in ut.iter_mut().zip(vt) {
                *o = beta * x;
            }
            continue;
        }
        let delta = dot(kt, z) + MEM_EPS;
        gamma[t] = if flags.correction {
            (1.0 - delta / (dot(kt, kt) + MEM_EPS)).clamp(0.0, 1.0)
        } else {
            1.0
        };
        for ((o, &x), &kav) in ut.iter_mut().zip(vt).zip(&ka[t * d..(t + 1) * d]) {
            *o = beta * (x - kav / delta);
        }
    }
}

/// The end of the write: `z += Σₜ γₜ Kₜ`, summed over `t` in order.
pub fn z_update(k: &[f32], gamma: &[f32], z: &mut [f32]) {
    let dk = z.len();
    assert_eq!(k.len(), gamma.len() * dk, "z_update: shape mismatch");
    for (kt, &g) in k.chunks_exact(dk).zip(gamma) {
        for (zi, &ki) in z.iter_mut().zip(kt) {
            *zi += g * ki;
        }
    }
}

/// Dot product summed in f64, rounded once.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum::<f64>() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpfp_pairs_at_cyclic_distance() {
        // u = [1, -2]: x = [1, 0, 0, 2]
        let mut out = [f32::NAN; 3 * 4];
        dpfp(&[1.0, -2.0], 2, 3, &mut out);
        // j=1: x * [2, 1, 0, 0] ; j=2: x * [0, 2, 1, 0] ; j=3: x * [0, 0, 2, 1]
        assert_eq!(out, [2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0]);
    }

    #[test]
    fn first_write_then_read_retrieves_scaled_value() {
        // one memory token, identity-like projections: the read of the same key returns β·V (A = Kᵀβ V, z = K)
        let shape = MemShape {
            hidden: 2,
            d_mem: 1,
            nu: 1,
        };
        let p = [1.0f32, 0.5];
        let w = WriteWeights {
            w_k: &[1.0, 0.0],
            w_v: &[1.0, 0.0, 0.0, 1.0],
            w_beta: &[0.0, 0.0],
            b_beta: 0.0,
        };
        let (mut a, mut z) = (vec![0.0f32; 2 * 2], vec![0.0f32; 2]);
        armt_write(&p, w, &mut a, &mut z, shape, true, true);
        // K = φ(1) = [relu(1)*relu(-1) ... ] with d_mem=1, nu=1: x = [1, 0], roll 1 = [0, 1] → K = [0, 0]
        assert_eq!(z, [0.0, 0.0]);
        let shape = MemShape {
            hidden: 2,
            d_mem: 2,
            nu: 1,
        };
        let w = WriteWeights {
            w_k: &[1.0, 0.0, 0.0, 1.0],
            ..w
        };
        let (mut a, mut z) = (vec![0.0f32; 4 * 2], vec![0.0f32; 4]);
        armt_write(&p, w, &mut a, &mut z, shape, true, true);
        // u = [1, .5] → x = [1, .5, 0, 0], roll1 = [0, 1, .5, 0] → K = [0, .5, 0, 0]
        assert_eq!(z, [0.0, 0.5, 0.0, 0.0]);
        let beta = 0.5f32; // σ(0)
        assert_eq!(a, [0.0, 0.0, 0.5 * beta * 1.0, 0.5 * beta * 0.5, 0.0, 0.0, 0.0, 0.0]);
        let mut h = p.to_vec();
        armt_read(&mut h, w.w_k, &a, &z, shape);
        // read = K A / (K·z + ε) = .25·β·[1, .5] / (.25 + ε)
        let f = 0.25 * beta / (0.25 + MEM_EPS);
        assert!((h[0] - (1.0 + f)).abs() < 1e-6 && (h[1] - (0.5 + 0.5 * f)).abs() < 1e-6);
    }
}
