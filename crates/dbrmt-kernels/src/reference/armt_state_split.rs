//! The memory state split for the fused read's tensor cores (`cuda/armt_state_split.cu`): a reference for its bits.

use half::bf16;

/// `cvt.rna.tf32.f32`: `x` rounded to tf32's 10 mantissa bits, to nearest with ties away from zero, as f32 bits.
pub fn tf32_rna(x: f32) -> u32 {
    let b = x.to_bits();
    if x.is_nan() {
        return b;
    }
    b.wrapping_add(0x1000) & 0xffff_e000
}

/// One value's tf32 hi and its bf16 pair `{bf16(hi), bf16(x − hi)}` (hi in the low half), as `sm90::split_b<true>`.
pub fn split_value(x: f32) -> (u32, u32) {
    let hi = tf32_rna(x);
    let lo = x - f32::from_bits(hi);
    let pair = bf16::from_f32(f32::from_bits(hi)).to_bits() as u32 | (bf16::from_f32(lo).to_bits() as u32) << 16;
    (hi, pair)
}

/// `A` (`[D, d]` f32, one state) in the split layout of one state (`[d, 2·D]` u32: per column `n`, per k-block `kb`
/// of 32, the 32 hi of `A[32·kb ..][n]` and then their 32 bf16 pairs).
pub fn split_state(a: &[f32], d_key: usize, d: usize) -> Vec<u32> {
    assert_eq!(a.len(), d_key * d, "A is [D, d]");
    assert!(d_key.is_multiple_of(32), "k-blocks of 32");
    let mut out = vec![0u32; 2 * d_key * d];
    for n in 0..d {
        for k in 0..d_key {
            let (hi, pair) = split_value(a[k * d + n]);
            let at = n * 2 * d_key + 64 * (k / 32) + k % 32;
            out[at] = hi;
            out[at + 32] = pair;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tf32_rounds_to_nearest_ties_away() {
        // 1 + 2^-11 is halfway between two tf32 values: away from zero
        let half = f32::from_bits(0x3f80_1000);
        assert_eq!(tf32_rna(half), 0x3f80_2000);
        assert_eq!(tf32_rna(-half), 0xbf80_2000);
        assert_eq!(tf32_rna(f32::from_bits(0x3f80_0fff)), 0x3f80_0000);
        assert_eq!(tf32_rna(1.0), 1.0f32.to_bits());
        assert!(f32::from_bits(tf32_rna(f32::NAN)).is_nan());
    }

    #[test]
    fn hi_plus_lo_is_close_to_x() {
        for x in [1.0f32 / 3.0, -7.123_456, 1e-20, 3.0e30] {
            let (hi, pair) = split_value(x);
            let lo = f32::from(bf16::from_bits((pair >> 16) as u16));
            assert_eq!(bf16::from_bits(pair as u16), bf16::from_f32(f32::from_bits(hi)));
            let err = ((f32::from_bits(hi) + lo) as f64 - x as f64).abs();
            assert!(err <= x.abs() as f64 * 2f64.powi(-18), "{x}: {err}");
        }
    }

    #[test]
    fn the_layout_is_k_major_per_k_block() {
        let (dk, d) = (64, 3);
        let a: Vec<f32> = (0..dk * d).map(|i| i as f32).collect();
        let s = split_state(&a, dk, d);
        // column n = 2, k = 33: k-block 1, position 1
        assert_eq!(s[2 * 2 * dk + 64 + 1], 101.0f32.to_bits()); // A[33][2] = 33·3 + 2
        assert_eq!(
            s[2 * 2 * dk + 64 + 32 + 1] & 0xffff,
            bf16::from_f32(101.0).to_bits() as u32
        );
    }
}
