//! f32 → bf16, round to nearest even (ties to even; NaN stays NaN): what `__float2bfloat16_rn` does.

use half::bf16;

/// `out[i] = bf16(x[i])`, rounded to nearest even.
pub fn to_bf16(x: &[f32], out: &mut [bf16]) {
    assert_eq!(x.len(), out.len(), "to_bf16: shape mismatch");
    for (o, &v) in out.iter_mut().zip(x) {
        *o = bf16::from_f32(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_nearest_even() {
        // 1 + 2⁻⁸ lies halfway between bf16 1 and 1 + 2⁻⁷: ties go to the even mantissa (1); 1 + 3·2⁻⁸ goes up.
        let x = [1.0 + 1.0 / 256.0, 1.0 + 3.0 / 256.0, -2.5, f32::INFINITY];
        let mut out = [bf16::ZERO; 4];
        to_bf16(&x, &mut out);
        let got: Vec<f32> = out.iter().map(|v| v.to_f32()).collect();
        assert_eq!(got, [1.0, 1.0 + 4.0 / 256.0, -2.5, f32::INFINITY]);
    }
}
