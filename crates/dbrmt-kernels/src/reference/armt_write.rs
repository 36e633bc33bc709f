//! ARMT's delta-rule memory write after the block (armt-spec §1.4–§1.5), from the post-block memory rows.
//!
//! State per layer: `A` `[D, d]` and `z` `[D]` in f32, `D = 2·ν·d_mem`.

use dbrmt_formats::MemShape;

use super::dpfp::dpfp;
use super::gemm::{linear, matmul, matmul_tn_add};
use super::{dot_f64, ARMT_EPS};

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
        let delta = dot_f64(kt, z) + ARMT_EPS;
        gamma[t] = if flags.correction {
            (1.0 - delta / (dot_f64(kt, kt) + ARMT_EPS)).clamp(0.0, 1.0)
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

/// `1 / (1 + e^-x)`: the write strength `β = σ(P w_β + b_β)`.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::armt_read::armt_read;

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
        let f = 0.25 * beta / (0.25 + ARMT_EPS);
        assert!((h[0] - (1.0 + f)).abs() < 1e-6 && (h[1] - (0.5 + 0.5 * f)).abs() < 1e-6);
    }
}
