//! Causal grouped-query attention over the `S = T_s + M` rows of one segment (no KV from other segments).

use super::gemm::matmul_strided;

/// `q` `[S, H, hd]`, `k`/`v` `[S, KV, hd]` (row = position) → `out` `[S, H, hd]`; query head `h` reads KV head
/// `h / (H / KV)`; row `i` attends to rows `0..=i`. Scores are formed by a full `S × S` product per head (the
/// masked half is discarded), softmax sums in f64.
#[allow(clippy::too_many_arguments)]
pub fn causal_gqa_attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    s: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    scale: f32,
    out: &mut [f32],
) {
    causal_gqa_attention_cached(q, k, v, s, s, heads, kv_heads, head_dim, scale, out);
}

/// As [`causal_gqa_attention`], for the last `q_rows` positions of a sequence of `kv_rows`: `q` `[q_rows, H, hd]`
/// holds positions `kv_rows − q_rows ..`, `k`/`v` `[kv_rows, KV, hd]` every position so far (a KV cache), and query
/// `i` attends to keys `0..=kv_rows − q_rows + i`. With `q_rows = kv_rows` it is exactly the square case.
#[allow(clippy::too_many_arguments)]
pub fn causal_gqa_attention_cached(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    q_rows: usize,
    kv_rows: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    scale: f32,
    out: &mut [f32],
) {
    assert!(
        kv_heads > 0 && heads.is_multiple_of(kv_heads),
        "attention: heads must be a multiple of kv_heads"
    );
    assert!(q_rows <= kv_rows, "attention: more queries than keys");
    let (qw, kw) = (heads * head_dim, kv_heads * head_dim);
    assert!(
        q.len() == q_rows * qw && out.len() == q_rows * qw,
        "attention: q/out shape mismatch"
    );
    assert!(
        k.len() == kv_rows * kw && v.len() == kv_rows * kw,
        "attention: k/v shape mismatch"
    );
    let (group, first) = (heads / kv_heads, kv_rows - q_rows);
    let mut p = vec![0.0f32; q_rows * kv_rows];
    for h in 0..heads {
        let kvh = h / group;
        // scores[i, j] = q_i · k_j
        matmul_strided(
            q_rows,
            head_dim,
            kv_rows,
            (&q[h * head_dim..], qw, 1),
            (&k[kvh * head_dim..], 1, kw),
            (&mut p, kv_rows, 1),
        );
        for (i, row) in p.chunks_exact_mut(kv_rows).enumerate() {
            let last = first + i;
            let m = row[..=last].iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b * scale));
            let mut sum = 0.0f64;
            for x in row[..=last].iter_mut() {
                *x = (*x * scale - m).exp();
                sum += *x as f64;
            }
            let inv = (1.0 / sum) as f32;
            row[..=last].iter_mut().for_each(|x| *x *= inv);
            row[last + 1..].iter_mut().for_each(|x| *x = 0.0);
        }
        matmul_strided(
            q_rows,
            kv_rows,
            head_dim,
            (&p, kv_rows, 1),
            (&v[kvh * head_dim..], kw, 1),
            (&mut out[h * head_dim..], qw, 1),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Textbook attention in f64, one row at a time.
    #[allow(clippy::too_many_arguments)]
    fn naive(q: &[f32], k: &[f32], v: &[f32], s: usize, h: usize, kv: usize, hd: usize, scale: f32) -> Vec<f32> {
        let mut out = vec![0.0f32; s * h * hd];
        for head in 0..h {
            let kh = head / (h / kv);
            for i in 0..s {
                let sc: Vec<f64> = (0..=i)
                    .map(|j| {
                        (0..hd)
                            .map(|c| q[(i * h + head) * hd + c] as f64 * k[(j * kv + kh) * hd + c] as f64)
                            .sum::<f64>()
                            * scale as f64
                    })
                    .collect();
                let m = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = sc.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for c in 0..hd {
                    out[(i * h + head) * hd + c] = (0..=i)
                        .map(|j| e[j] / z * v[(j * kv + kh) * hd + c] as f64)
                        .sum::<f64>() as f32;
                }
            }
        }
        out
    }

    #[test]
    fn matches_textbook_attention_with_gqa() {
        let (s, h, kv, hd) = (9, 4, 2, 8);
        let gen = |n: usize, a: f32| (0..n).map(|i| (i as f32 * a).sin() * 1.7).collect::<Vec<f32>>();
        let (q, k, v) = (gen(s * h * hd, 0.91), gen(s * kv * hd, 1.37), gen(s * kv * hd, 0.53));
        let mut out = vec![f32::NAN; s * h * hd];
        causal_gqa_attention(&q, &k, &v, s, h, kv, hd, 0.35, &mut out);
        let r = naive(&q, &k, &v, s, h, kv, hd, 0.35);
        for (a, b) in out.iter().zip(&r) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn cached_queries_match_the_last_rows_of_the_square_case() {
        let (s, h, kv, hd, n) = (11, 4, 2, 8, 3);
        let gen = |len: usize, a: f32| (0..len).map(|i| (i as f32 * a).cos() * 1.3).collect::<Vec<f32>>();
        let (q, k, v) = (gen(s * h * hd, 0.77), gen(s * kv * hd, 1.11), gen(s * kv * hd, 0.29));
        let mut full = vec![f32::NAN; s * h * hd];
        causal_gqa_attention(&q, &k, &v, s, h, kv, hd, 0.3, &mut full);
        let mut last = vec![f32::NAN; n * h * hd];
        causal_gqa_attention_cached(&q[(s - n) * h * hd..], &k, &v, n, s, h, kv, hd, 0.3, &mut last);
        for (a, b) in last.iter().zip(&full[(s - n) * h * hd..]) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }
}
