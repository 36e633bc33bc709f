//! Stored GGUF tensor data → f32, exactly as ggml's reference `dequantize_row_*` (ggml-quants.c) computes it:
//! the same f32 operations in the same order (never fused), so the values equal llama.cpp's and gguf-py's.

use half::{bf16, f16};

use super::ggml_type::GgmlType;

/// Why a tensor could not be dequantised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DequantError {
    /// A type the loader has no dequantisation for.
    #[error("tensor type {0} is not supported")]
    Unsupported(GgmlType),
    /// The data is not a whole number of blocks.
    #[error("{len} bytes of {ggml_type} data are not a whole number of {block_bytes}-byte blocks")]
    PartialBlock {
        ggml_type: GgmlType,
        len: usize,
        block_bytes: usize,
    },
}

/// The types [`dequantize`] converts.
pub const SUPPORTED: [GgmlType; 8] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q4_K,
    GgmlType::Q6_K,
];

/// Whether [`dequantize`] converts tensors of type `t`.
pub fn is_supported(t: GgmlType) -> bool {
    matches!(
        t,
        GgmlType::F32
            | GgmlType::F16
            | GgmlType::BF16
            | GgmlType::Q8_0
            | GgmlType::Q4_0
            | GgmlType::Q4_1
            | GgmlType::Q4_K
            | GgmlType::Q6_K
    )
}

/// Dequantises `bytes` of type `t` to f32, in storage order.
pub fn dequantize(t: GgmlType, bytes: &[u8]) -> Result<Vec<f32>, DequantError> {
    let block: fn(&[u8], &mut Vec<f32>) = match t {
        GgmlType::F32 => |b, out| out.push(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        GgmlType::F16 => |b, out| out.push(f16::from_le_bytes([b[0], b[1]]).to_f32()),
        GgmlType::BF16 => |b, out| out.push(bf16::from_le_bytes([b[0], b[1]]).to_f32()),
        GgmlType::Q8_0 => q8_0,
        GgmlType::Q4_0 => q4_0,
        GgmlType::Q4_1 => q4_1,
        GgmlType::Q4_K => q4_k,
        GgmlType::Q6_K => q6_k,
        other => return Err(DequantError::Unsupported(other)),
    };
    let block_bytes = t.block_bytes();
    if !bytes.len().is_multiple_of(block_bytes) {
        return Err(DequantError::PartialBlock {
            ggml_type: t,
            len: bytes.len(),
            block_bytes,
        });
    }
    let mut out = Vec::with_capacity(bytes.len() / block_bytes * t.block_size());
    // Each closure indexes only within its block, whose length `chunks_exact` guarantees.
    for chunk in bytes.chunks_exact(block_bytes) {
        block(chunk, &mut out);
    }
    Ok(out)
}

/// The f16 at `b[at..at + 2]` as f32.
fn half_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// Q8_0 (34 bytes): f16 `d`, 32 × i8 `q`; `x = q · d`.
fn q8_0(b: &[u8], out: &mut Vec<f32>) {
    let d = half_at(b, 0);
    out.extend(b[2..34].iter().map(|&q| f32::from(q as i8) * d));
}

/// Q4_0 (18 bytes): f16 `d`, 16 bytes whose low nibbles are elements 0..16 and high nibbles 16..32;
/// `x = (q − 8) · d`.
fn q4_0(b: &[u8], out: &mut Vec<f32>) {
    let d = half_at(b, 0);
    let qs = &b[2..18];
    out.extend(qs.iter().map(|&q| f32::from(i16::from(q & 0x0f) - 8) * d));
    out.extend(qs.iter().map(|&q| f32::from(i16::from(q >> 4) - 8) * d));
}

/// Q4_1 (20 bytes): f16 `d`, f16 `m`, 16 bytes of nibbles in Q4_0's order; `x = q · d + m`.
fn q4_1(b: &[u8], out: &mut Vec<f32>) {
    let (d, m) = (half_at(b, 0), half_at(b, 2));
    let qs = &b[4..20];
    out.extend(qs.iter().map(|&q| f32::from(q & 0x0f) * d + m));
    out.extend(qs.iter().map(|&q| f32::from(q >> 4) * d + m));
}

/// Scale and min `j` (0..8) of a Q4_K block, unpacked from its 12 bytes of 6-bit values
/// (`get_scale_min_k4` in ggml).
fn scale_min_k4(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// Q4_K (144 bytes, 256 elements): f16 `d`, f16 `dmin`, 12 bytes of 6-bit scales and mins, 128 bytes of
/// nibbles. Each 64 elements use 32 bytes: low nibbles with scale/min `2i`, then high nibbles with `2i + 1`;
/// `x = d·sc · q − dmin·m`.
fn q4_k(b: &[u8], out: &mut Vec<f32>) {
    let (d, dmin) = (half_at(b, 0), half_at(b, 2));
    let scales = &b[4..16];
    for (i, qs) in b[16..144].chunks_exact(32).enumerate() {
        let (sc1, m1) = scale_min_k4(2 * i, scales);
        let (sc2, m2) = scale_min_k4(2 * i + 1, scales);
        let (d1, m1) = (d * f32::from(sc1), dmin * f32::from(m1));
        let (d2, m2) = (d * f32::from(sc2), dmin * f32::from(m2));
        out.extend(qs.iter().map(|&q| d1 * f32::from(q & 0x0f) - m1));
        out.extend(qs.iter().map(|&q| d2 * f32::from(q >> 4) - m2));
    }
}

/// Q6_K (210 bytes, 256 elements): 128 bytes `ql` (low 4 bits), 64 bytes `qh` (high 2 bits), 16 × i8 scales,
/// f16 `d`; `x = d·scale · (q − 32)`, laid out in two halves of 128 as ggml's `dequantize_row_q6_K`.
fn q6_k(b: &[u8], out: &mut Vec<f32>) {
    let d = half_at(b, 208);
    let start = out.len();
    out.resize(start + 256, 0.0);
    let y = &mut out[start..];
    for half in 0..2 {
        let ql = &b[64 * half..64 * half + 64];
        let qh = &b[128 + 32 * half..128 + 32 * half + 32];
        let sc = &b[192 + 8 * half..192 + 8 * half + 8];
        let y = &mut y[128 * half..128 * half + 128];
        for l in 0..32 {
            let is = l / 16;
            let q = [
                (ql[l] & 0x0f) | ((qh[l] & 3) << 4),
                (ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4),
                (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4),
                (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4),
            ];
            for (k, &q) in q.iter().enumerate() {
                let scale = f32::from(sc[is + 2 * k] as i8);
                y[l + 32 * k] = d * scale * f32::from(i16::from(q) - 32);
            }
        }
    }
}
