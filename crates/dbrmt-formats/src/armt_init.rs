//! Deterministic initialisation of the ARMT memory parameters for a plain LLaMA checkpoint.
//!
//! Follows the original's distributions: `W_mq`, `W_mk`, `W_mb` are `nn.Linear(d, ·)` with PyTorch's default
//! init, U(−1/√d, 1/√d) for weight and bias; `W_mv` is zero, so the memory path adds nothing and the model
//! equals its backbone per segment; the memory tokens are N(0, 1) · std(embedding matrix), as
//! `AssociativeMemoryCell.create_memory` does. The random numbers come from SplitMix64, not from PyTorch's
//! generator: the same seed gives bitwise the same weights here, not the original's values.

use crate::rng::SplitMix64;

/// The initialised ARMT parameters of one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct InitLayer {
    /// `W_mq` `[d_mem, d]`.
    pub mem_q: Vec<f32>,
    /// `W_mk` `[d_mem, d]`.
    pub mem_k: Vec<f32>,
    /// `W_mv` `[d, d]`: zero.
    pub mem_v: Vec<f32>,
    /// `W_mb.weight` as `[d]`.
    pub mem_beta: Vec<f32>,
    /// `W_mb.bias`.
    pub mem_beta_bias: f32,
}

impl InitLayer {
    /// Sets `layer`'s memory tensors to this initialisation.
    pub fn apply(self, layer: &mut crate::weights::LayerWeights) {
        layer.mem_q = self.mem_q;
        layer.mem_k = self.mem_k;
        layer.mem_v = self.mem_v;
        layer.mem_beta = self.mem_beta;
        layer.mem_beta_bias = self.mem_beta_bias;
    }
}

/// ARMT parameters for `layers` layers of width `hidden`, plus `mem_tokens` memory embeddings scaled by the
/// standard deviation of `embed` (the `[V, d]` embedding matrix), all drawn from `seed`.
pub fn init_armt(
    seed: u64,
    layers: usize,
    hidden: usize,
    d_mem: usize,
    mem_tokens: usize,
    embed: &[f32],
) -> (Vec<InitLayer>, Vec<f32>) {
    let mut rng = SplitMix64::new(seed);
    let bound = 1.0 / (hidden as f64).sqrt();
    let mut uniform = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.uniform(bound)).collect() };
    let layers: Vec<InitLayer> = (0..layers)
        .map(|_| InitLayer {
            mem_q: uniform(d_mem * hidden),
            mem_k: uniform(d_mem * hidden),
            mem_v: vec![0.0; hidden * hidden],
            mem_beta: uniform(hidden),
            mem_beta_bias: uniform(1).first().copied().unwrap_or_default(),
        })
        .collect();
    let std = sample_std(embed);
    let memory = (0..mem_tokens * hidden).map(|_| (rng.normal() * std) as f32).collect();
    (layers, memory)
}

/// Sample standard deviation (Bessel-corrected, as `torch.Tensor.std`), in f64.
fn sample_std(x: &[f32]) -> f64 {
    if x.len() < 2 {
        return 0.0;
    }
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = x.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / (n - 1.0);
    var.sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_is_deterministic_and_shaped() {
        let embed: Vec<f32> = (0..64).map(|i| (i as f32 - 32.0) / 8.0).collect();
        let a = init_armt(5, 2, 8, 4, 3, &embed);
        let b = init_armt(5, 2, 8, 4, 3, &embed);
        let c = init_armt(6, 2, 8, 4, 3, &embed);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let (layers, memory) = a;
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[0].mem_q.len(), 32);
        assert_eq!(layers[0].mem_beta.len(), 8);
        assert!(layers[0].mem_v.iter().all(|&v| v == 0.0));
        let bound = 1.0 / 8f32.sqrt();
        assert!(layers[1].mem_k.iter().all(|v| v.abs() <= bound));
        assert!(layers[1].mem_beta_bias.abs() <= bound);
        assert_eq!(memory.len(), 24);
    }
}
