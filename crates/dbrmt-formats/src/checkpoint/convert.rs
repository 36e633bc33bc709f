//! Stored tensor bytes → f32. Byte-wise little-endian decoding: mapped data need not be aligned for its dtype.

use half::{bf16, f16};
use safetensors::Dtype;

/// Decodes little-endian `bytes` of `dtype` into f32, or `None` for a dtype the model does not load
/// (only BF16, F16 and F32 weights are accepted; integer or F64 tensors are not weights of this model).
pub fn to_f32(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    match dtype {
        Dtype::F32 => Some(decode(bytes, f32::from_le_bytes)),
        Dtype::F16 => Some(decode(bytes, |b| f16::from_le_bytes(b).to_f32())),
        Dtype::BF16 => Some(decode(bytes, |b| bf16::from_le_bytes(b).to_f32())),
        _ => None,
    }
}

/// Decodes consecutive `N`-byte elements (a trailing partial element cannot occur: sizes were validated).
fn decode<const N: usize>(bytes: &[u8], element: impl Fn([u8; N]) -> f32) -> Vec<f32> {
    bytes
        .chunks_exact(N)
        .filter_map(|c| <[u8; N]>::try_from(c).ok())
        .map(element)
        .collect()
}

/// Whether [`to_f32`] converts `dtype`.
pub fn is_supported(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_each_float_dtype() {
        assert_eq!(to_f32(Dtype::F32, &1.5f32.to_le_bytes()), Some(vec![1.5]));
        assert_eq!(to_f32(Dtype::F16, &f16::from_f32(-2.0).to_le_bytes()), Some(vec![-2.0]));
        assert_eq!(
            to_f32(Dtype::BF16, &bf16::from_f32(0.375).to_le_bytes()),
            Some(vec![0.375])
        );
        assert_eq!(to_f32(Dtype::I32, &[0; 4]), None);
        assert!(!is_supported(Dtype::F64));
    }

    #[test]
    fn unaligned_input_is_fine() {
        let mut buf = vec![0u8];
        buf.extend_from_slice(&3.25f32.to_le_bytes());
        assert_eq!(to_f32(Dtype::F32, &buf[1..]), Some(vec![3.25]));
    }
}
