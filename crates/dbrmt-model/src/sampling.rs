//! Choosing the next token from logits: greedy at temperature 0, else temperature and nucleus (top-p) sampling
//! from a seeded generator (the same seed gives the same text).

use dbrmt_formats::rng::SplitMix64;

use crate::error::ModelError;

/// Temperature, top-p and a seeded generator.
#[derive(Debug, Clone)]
pub struct Sampler {
    temperature: f32,
    top_p: f32,
    rng: SplitMix64,
}

impl Sampler {
    /// `temperature ≥ 0` (0 = greedy), `0 < top_p ≤ 1`.
    pub fn new(temperature: f32, top_p: f32, seed: u64) -> Result<Self, ModelError> {
        if !(temperature >= 0.0 && temperature.is_finite()) {
            return Err(ModelError::InvalidInput(format!(
                "temperature must be ≥ 0, got {temperature}"
            )));
        }
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(ModelError::InvalidInput(format!(
                "top-p must be in (0, 1], got {top_p}"
            )));
        }
        Ok(Self {
            temperature,
            top_p,
            rng: SplitMix64::new(seed),
        })
    }

    /// Temperature 0: the next token is the [`argmax`] of the logits, and the generator is never drawn from.
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }

    /// The next token id.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.temperature == 0.0 {
            return argmax(logits);
        }
        let t = self.temperature as f64;
        let m = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        let mut probs: Vec<(usize, f64)> = logits
            .iter()
            .enumerate()
            .map(|(i, &x)| (i, ((x as f64 - m) / t).exp()))
            .collect();
        let total: f64 = probs.iter().map(|p| p.1).sum();
        probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        // the smallest prefix whose mass reaches top_p
        let (mut kept, mut mass) = (0, 0.0);
        for p in &probs {
            kept += 1;
            mass += p.1 / total;
            if mass >= self.top_p as f64 {
                break;
            }
        }
        let kept = &probs[..kept];
        let kept_total: f64 = kept.iter().map(|p| p.1).sum();
        let mut u = self.rng.next_f64() * kept_total;
        for &(i, p) in kept {
            if u < p {
                return i as u32;
            }
            u -= p;
        }
        kept[kept.len() - 1].0 as u32
    }
}

/// Whether greedy ids may be chosen on the device (`argmax_rows_f32`) where only the ids are wanted: yes unless
/// `DBRMT_DEVICE_ARGMAX=off` (which copies the logits to the host for [`argmax`] instead, to compare; the same ids).
pub fn device_argmax_allowed() -> bool {
    !dbrmt_kernels::switches::is_off(dbrmt_kernels::switches::DEVICE_ARGMAX)
}

/// The index of the largest value (the first one on ties; NaNs as the scan sees them): the one definition, shared with
/// the device's greedy ids (`cuda/argmax_rows.cu`, checked against it).
pub use dbrmt_kernels::reference::argmax_rows::argmax;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_top_p_and_seeds() {
        let logits = [0.0f32, 3.0, 1.0, 3.0];
        assert_eq!(Sampler::new(0.0, 1.0, 1).unwrap().sample(&logits), 1);
        // a tiny top-p keeps only the most likely tokens (1 or 3, tied)
        let mut s = Sampler::new(1.0, 0.01, 7).unwrap();
        assert!((0..50).all(|_| s.sample(&logits) == 1));
        // full sampling reaches every token with weight, deterministically per seed
        let draw = |seed| {
            let mut s = Sampler::new(1.0, 1.0, seed).unwrap();
            (0..400).map(|_| s.sample(&logits)).collect::<Vec<u32>>()
        };
        let a = draw(3);
        assert_eq!(a, draw(3));
        assert_ne!(a, draw(4));
        for t in 0..4u32 {
            assert!(a.contains(&t), "token {t} never drawn");
        }
        let ones = a.iter().filter(|&&t| t == 1).count() as f64 / 400.0;
        assert!((ones - 0.4577).abs() < 0.06, "{ones}"); // e³ / (1 + 2e³ + e)
        assert!(Sampler::new(-1.0, 1.0, 0).is_err() && Sampler::new(1.0, 0.0, 0).is_err());
        assert!(Sampler::new(1.0, 1.5, 0).is_err() && Sampler::new(f32::NAN, 1.0, 0).is_err());
    }
}
