//! DPFP, the feature map of ARMT's associative memory (armt-spec §1.2): `φ` of the read's queries and the write's keys.

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
}
