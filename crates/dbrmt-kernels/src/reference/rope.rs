//! Rotary position embedding as HF LLaMA applies it (`rotate_half` layout), with the `llama3` frequency scaling.
//!
//! Positions restart at 0 in every ARMT segment, so one table of `T + M` positions serves every cell. The
//! frequencies and angles are computed in f64 and rounded once to f32 (closer to the fp64 golden cases than HF's
//! f32 arithmetic, and identical for every cell).

pub use dbrmt_formats::Llama3Scaling;

/// Inverse frequencies `1 / θ^(2i/hd)` for `i < hd/2`, rescaled as HF `_compute_llama3_parameters` does.
pub fn inv_freq(head_dim: usize, theta: f64, scaling: Option<&Llama3Scaling>) -> Vec<f64> {
    let base: Vec<f64> = (0..head_dim / 2)
        .map(|i| 1.0 / theta.powf((2 * i) as f64 / head_dim as f64))
        .collect();
    let Some(s) = scaling else { return base };
    let low_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
    let high_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
    base.into_iter()
        .map(|f| {
            let wavelen = 2.0 * std::f64::consts::PI / f;
            let scaled = if wavelen > low_wavelen { f / s.factor } else { f };
            let medium = wavelen >= high_wavelen && wavelen <= low_wavelen;
            if medium {
                let smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor)
                    / (s.high_freq_factor - s.low_freq_factor);
                (1.0 - smooth) * scaled / s.factor + smooth * scaled
            } else {
                scaled
            }
        })
        .collect()
}

/// `cos`/`sin` of `position · inv_freq[i]`, `[positions, head_dim / 2]` each.
#[derive(Debug, Clone, PartialEq)]
pub struct RopeTable {
    pub half: usize,
    pub positions: usize,
    pub cos: Vec<f32>,
    pub sin: Vec<f32>,
}

impl RopeTable {
    pub fn new(head_dim: usize, theta: f64, scaling: Option<&Llama3Scaling>, positions: usize) -> Self {
        assert!(head_dim.is_multiple_of(2), "head_dim must be even");
        let f = inv_freq(head_dim, theta, scaling);
        let half = head_dim / 2;
        let (mut cos, mut sin) = (
            Vec::with_capacity(positions * half),
            Vec::with_capacity(positions * half),
        );
        for p in 0..positions {
            for &fi in &f {
                let a = p as f64 * fi;
                cos.push(a.cos() as f32);
                sin.push(a.sin() as f32);
            }
        }
        Self {
            half,
            positions,
            cos,
            sin,
        }
    }
}

/// Rotates `x` (`[rows, heads, head_dim]`, row r at position r) in place:
/// `(x₁, x₂) → (x₁·cos − x₂·sin, x₂·cos + x₁·sin)` with `x₁ = x[..hd/2]`, `x₂ = x[hd/2..]`.
pub fn apply_rope(x: &mut [f32], rows: usize, heads: usize, table: &RopeTable) {
    apply_rope_at(x, rows, heads, table, 0);
}

/// As [`apply_rope`], with row r at position `first + r` (the next rows of a segment whose first `first` rows are
/// already in a KV cache).
pub fn apply_rope_at(x: &mut [f32], rows: usize, heads: usize, table: &RopeTable, first: usize) {
    let half = table.half;
    let hd = 2 * half;
    assert_eq!(x.len(), rows * heads * hd, "apply_rope: shape mismatch");
    assert!(
        first + rows <= table.positions,
        "apply_rope: more rows than table positions"
    );
    for (r, row) in x.chunks_exact_mut(heads * hd).enumerate() {
        let p = first + r;
        let (c, s) = (
            &table.cos[p * half..(p + 1) * half],
            &table.sin[p * half..(p + 1) * half],
        );
        for head in row.chunks_exact_mut(hd) {
            let (x1, x2) = head.split_at_mut(half);
            for i in 0..half {
                let (a, b) = (x1[i], x2[i]);
                x1[i] = a * c[i] - b * s[i];
                x2[i] = b * c[i] + a * s[i];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama3_scaling_matches_hf_values() {
        // Llama-3.2-1B: head_dim 64, theta 5e5, factor 32, low 1, high 4, original 8192.
        let s = Llama3Scaling {
            factor: 32.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192.0,
        };
        let f = inv_freq(64, 500000.0, Some(&s));
        let plain = inv_freq(64, 500000.0, None);
        // high frequencies untouched, the lowest divided by the factor
        assert_eq!(f[0], 1.0);
        assert!((f[31] - plain[31] / 32.0).abs() < 1e-18);
        // a medium-band frequency lies strictly between
        let mid = (0..32)
            .find(|&i| f[i] != plain[i] && (f[i] - plain[i] / 32.0).abs() > 1e-15)
            .unwrap();
        assert!(f[mid] < plain[mid] && f[mid] > plain[mid] / 32.0);
    }

    #[test]
    fn rotation_preserves_norm_and_position_zero_is_identity() {
        let t = RopeTable::new(8, 10000.0, None, 3);
        let mut x: Vec<f32> = (0..3 * 2 * 8).map(|i| (i as f32 * 0.37).sin()).collect();
        let before = x.clone();
        apply_rope(&mut x, 3, 2, &t);
        assert_eq!(&x[..16], &before[..16]);
        for (a, b) in x.chunks(8).zip(before.chunks(8)) {
            let na: f32 = a.iter().map(|v| v * v).sum();
            let nb: f32 = b.iter().map(|v| v * v).sum();
            assert!((na - nb).abs() < 1e-5);
        }
    }
}
