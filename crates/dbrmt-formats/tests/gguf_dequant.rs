//! Dequantisation on hand-made blocks with hand-computed values, for every supported type: the element order
//! (Q4 nibbles: low nibbles are elements 0..16, high nibbles 16..32), negative scales, the 6-bit scale packing of
//! Q4_K and the bit layout of Q6_K; and refusals.

use dbrmt_formats::gguf::dequant::{dequantize, DequantError};
use dbrmt_formats::gguf::GgmlType;

/// f16 bit patterns used below.
const H_ONE: u16 = 0x3c00; // 1.0
const H_HALF: u16 = 0x3800; // 0.5
const H_QUARTER_NEG: u16 = 0xb400; // -0.25
const H_TWO: u16 = 0x4000; // 2.0
const H_TWO_NEG: u16 = 0xc000; // -2.0
const H_ONE_NEG: u16 = 0xbc00; // -1.0

fn le(h: u16) -> [u8; 2] {
    h.to_le_bytes()
}

#[test]
fn f32_f16_bf16() {
    let bytes: Vec<u8> = [1.5f32, -0.0, f32::MAX].iter().flat_map(|x| x.to_le_bytes()).collect();
    let out = dequantize(GgmlType::F32, &bytes).unwrap();
    assert_eq!(out[0], 1.5);
    assert!(out[1] == 0.0 && out[1].is_sign_negative());
    assert_eq!(out[2], f32::MAX);

    // 1.0, -2.5, the largest f16, the smallest subnormal 2^-24.
    let bytes: Vec<u8> = [0x3c00u16, 0xc100, 0x7bff, 0x0001]
        .iter()
        .flat_map(|&h| le(h))
        .collect();
    assert_eq!(
        dequantize(GgmlType::F16, &bytes).unwrap(),
        vec![1.0, -2.5, 65504.0, 2f32.powi(-24)]
    );

    // bf16 is the top half of an f32: 1.0, -2.5, +inf, 3.0e38 rounded (0x7f61 → 2.9911e38).
    let bytes: Vec<u8> = [0x3f80u16, 0xc020, 0x7f80, 0x7f61]
        .iter()
        .flat_map(|&h| le(h))
        .collect();
    let out = dequantize(GgmlType::BF16, &bytes).unwrap();
    assert_eq!(out[..3], [1.0, -2.5, f32::INFINITY]);
    assert_eq!(out[3], f32::from_bits(0x7f61_0000));
}

#[test]
fn q8_0() {
    // d = 0.5: x = 0.5 q.
    let mut block = le(H_HALF).to_vec();
    let q: Vec<i8> = (0..32).map(|i| [-128, -1, 0, 1, 127][i % 5]).collect();
    block.extend(q.iter().map(|&v| v as u8));
    // A second block with a negative scale d = -0.25: q = 4 → -1, q = -8 → 2.
    block.extend(le(H_QUARTER_NEG));
    block.extend([4u8, (-8i8) as u8]);
    block.extend([0u8; 30]);
    let out = dequantize(GgmlType::Q8_0, &block).unwrap();
    assert_eq!(out.len(), 64);
    assert_eq!(out[..6], [-64.0, -0.5, 0.0, 0.5, 63.5, -64.0]);
    assert_eq!(out[32..35], [-1.0, 2.0, -0.0]);
}

#[test]
fn q4_0_nibble_order() {
    // d = 2: x = 2 (q − 8). Byte 0 = 0x1f: element 0 is the low nibble 15 → 14, element 16 the high nibble 1
    // → −14. Byte 1 = 0x80: element 1 → −16, element 17 → 0. Other bytes 0x88: all zero.
    let mut block = le(H_TWO).to_vec();
    block.extend([0x1f, 0x80]);
    block.extend([0x88; 14]);
    // Second block, d = −1: byte 0 = 0xf0 → element 0: −(0 − 8) = 8; element 16: −(15 − 8) = −7.
    block.extend(le(H_ONE_NEG));
    block.push(0xf0);
    block.extend([0x88; 15]);
    let out = dequantize(GgmlType::Q4_0, &block).unwrap();
    assert_eq!((out[0], out[16], out[1], out[17]), (14.0, -14.0, -16.0, 0.0));
    assert!(out[2..16].iter().chain(&out[18..32]).all(|&x| x == 0.0));
    assert_eq!((out[32], out[48]), (8.0, -7.0));
}

#[test]
fn q4_1_nibble_order_and_offset() {
    // d = 0.5, m = −2: x = 0.5 q − 2. Byte 0 = 0x3c: element 0 = 12 → 4, element 16 = 3 → −0.5.
    // Byte 15 = 0xf0: element 15 = 0 → −2, element 31 = 15 → 5.5.
    let mut block = le(H_HALF).to_vec();
    block.extend(le(H_TWO_NEG));
    block.push(0x3c);
    block.extend([0x44; 14]); // elements 1..15 and 17..31: 4 → 0
    block.push(0xf0);
    // Second block: d = −1 (negative scale), m = 1: byte 0 = 0x21 → element 0: −1 + 1 = 0, element 16: −1.
    block.extend(le(H_ONE_NEG));
    block.extend(le(H_ONE));
    block.push(0x21);
    block.extend([0u8; 15]);
    let out = dequantize(GgmlType::Q4_1, &block).unwrap();
    assert_eq!((out[0], out[16], out[15], out[31]), (4.0, -0.5, -2.0, 5.5));
    assert!(out[1..15].iter().chain(&out[17..31]).all(|&x| x == 0.0));
    assert_eq!((out[32], out[48], out[33]), (0.0, -1.0, 1.0));
}

/// A Q4_K block: d = 1, dmin = 0.5; scales sc_j = 8j + 7 (7, 15, …, 63) and mins m_j = 63 − 8j (63, 55, …, 7),
/// packed by hand into the 12 bytes as ggml's `get_scale_min_k4` reads them:
/// bytes 0..4 = sc_j | (sc_{j+4} >> 4) << 6, bytes 4..8 = m_j | (m_{j+4} >> 4) << 6,
/// bytes 8..12 = (sc_{j+4} & 15) | (m_{j+4} & 15) << 4.
fn q4_k_block(qs: [u8; 128]) -> Vec<u8> {
    let mut block = le(H_ONE).to_vec();
    block.extend(le(H_HALF));
    block.extend([135, 143, 215, 223, 127, 119, 47, 39, 247, 127, 247, 127]);
    block.extend(qs);
    block
}

#[test]
fn q4_k_scales_mins_and_order() {
    // Every byte 0x21: low nibble 1, high nibble 2. Chunk i (64 elements, 32 bytes) gives 32 × (sc_{2i}·1 −
    // 0.5·m_{2i}), then 32 × (sc_{2i+1}·2 − 0.5·m_{2i+1}).
    let mut qs = [0x21u8; 128];
    // Byte 0 = 0x5f: element 0 = 7·15 − 31.5 = 73.5, element 32 = 15·5 − 27.5 = 47.5.
    qs[0] = 0x5f;
    let out = dequantize(GgmlType::Q4_K, &q4_k_block(qs)).unwrap();
    assert_eq!(out.len(), 256);
    let expected_runs = [-24.5, 2.5, -0.5, 42.5, 23.5, 82.5, 47.5, 122.5];
    for (run, &want) in expected_runs.iter().enumerate() {
        let first = usize::from(run < 2); // elements 0 and 32 are checked below
        let xs = &out[32 * run + first..32 * run + 32];
        assert!(xs.iter().all(|&x| x == want), "run {run}: {xs:?}, want {want}");
    }
    assert_eq!(out[0], 73.5);
    // Element 32 is byte 0's high nibble.
    assert_eq!(out[32], 47.5);
}

/// A Q6_K block: ql, qh, 16 i8 scales, f16 d.
fn q6_k_block(ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: u16) -> Vec<u8> {
    let mut block = ql.to_vec();
    block.extend(qh);
    block.extend(scales.iter().map(|&s| s as u8));
    block.extend(le(d));
    block
}

#[test]
fn q6_k_bits_and_scales() {
    // d = 0.5; scales 1, −2, 3, −4, …, −16. With every q = 0 − 32, element e gets scale e / 16:
    // x = 0.5 · s · (−32) = −16 s.
    let scales: [i8; 16] = std::array::from_fn(|i| if i % 2 == 0 { i as i8 + 1 } else { -(i as i8 + 1) });
    let mut ql = [0u8; 128];
    let mut qh = [0u8; 64];
    // Half 0, l = 0: ql[0] = 0x21, ql[32] = 0x00, qh[0] = 0b11_10_01_00.
    //   element 0  (k = 0): q = 1 | 0 << 4 = 1   → 0.5 · 1 · (1 − 32)  = −15.5
    //   element 32 (k = 1): q = 0 | 1 << 4 = 16  → 0.5 · 3 · (16 − 32) = −24
    //   element 64 (k = 2): q = 2 | 2 << 4 = 34  → 0.5 · 5 · (34 − 32) = 5
    //   element 96 (k = 3): q = 0 | 3 << 4 = 48  → 0.5 · 7 · (48 − 32) = 56
    ql[0] = 0x21;
    qh[0] = 0b1110_0100;
    // Half 1, l = 5: ql[64 + 5] = 0x0f → element 133: q = 15 → 0.5 · 9 · (15 − 32) = −76.5;
    // element 197 (its high nibble, k = 2) stays q = 0 → 0.5 · 13 · (−32) = −208.
    ql[69] = 0x0f;
    let out = dequantize(GgmlType::Q6_K, &q6_k_block(ql, qh, scales, H_HALF)).unwrap();
    assert_eq!(out.len(), 256);
    assert_eq!((out[0], out[32], out[64], out[96]), (-15.5, -24.0, 5.0, 56.0));
    assert_eq!((out[133], out[197]), (-76.5, -208.0));
    for (e, &x) in out.iter().enumerate() {
        if ![0, 32, 64, 96, 133].contains(&e) {
            assert_eq!(x, -16.0 * f32::from(scales[e / 16]), "element {e}");
        }
    }
}

#[test]
fn refusals() {
    assert_eq!(
        dequantize(GgmlType::Q5_K, &[0; 176]),
        Err(DequantError::Unsupported(GgmlType::Q5_K))
    );
    assert_eq!(
        dequantize(GgmlType::Q4_0, &[0; 19]),
        Err(DequantError::PartialBlock {
            ggml_type: GgmlType::Q4_0,
            len: 19,
            block_bytes: 18
        })
    );
    assert_eq!(dequantize(GgmlType::Q8_0, &[]), Ok(vec![]));
}
