//! The SwiGLU activation of the LLaMA MLP: `silu(gate) ⊙ up`.

/// `out = silu(gate) · up`, elementwise.
pub fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) {
    assert!(
        gate.len() == up.len() && out.len() == up.len(),
        "swiglu: shape mismatch"
    );
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = silu(g) * u;
    }
}

/// `x · sigmoid(x)`.
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silu_values() {
        assert_eq!(silu(0.0), 0.0);
        assert!((silu(1.0) - 0.731_058_6).abs() < 1e-6);
        assert!((silu(-20.0)).abs() < 1e-7);
        let mut out = [f32::NAN; 2];
        swiglu(&[1.0, 0.0], &[2.0, 5.0], &mut out);
        assert!((out[0] - 1.462_117_2).abs() < 1e-6 && out[1] == 0.0);
    }
}
