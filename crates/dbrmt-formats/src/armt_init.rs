//! Deterministic initialisation of the ARMT memory parameters for a plain LLaMA checkpoint.
//!
//! Follows the original's distributions: `W_mq`, `W_mk`, `W_mb` are `nn.Linear(d, ·)` with PyTorch's default
//! init, U(−1/√d, 1/√d) for weight and bias; `W_mv` is zero, so the memory path adds nothing and the model
//! equals its backbone per segment; the memory tokens are N(0, 1) · std(embedding matrix), as
//! `AssociativeMemoryCell.create_memory` does. The random numbers come from SplitMix64, not from PyTorch's
//! generator: the same seed gives bitwise the same weights here, not the original's values.

use crate::names::{LayerTensor, TensorId};
use crate::rng::SplitMix64;

/// The initialised ARMT parameters of one layer (`W_mv` is zero and is not stored).
#[derive(Debug, Clone, PartialEq)]
pub struct InitLayer {
    /// `W_mq` `[d_mem, d]`.
    pub mem_q: Vec<f32>,
    /// `W_mk` `[d_mem, d]`.
    pub mem_k: Vec<f32>,
    /// `W_mb.weight` as `[d]`.
    pub mem_beta: Vec<f32>,
    /// `W_mb.bias`.
    pub mem_beta_bias: f32,
}

/// The memory parameters of every layer and the memory-token embeddings, drawn from one seed.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmtInit {
    pub layers: Vec<InitLayer>,
    /// `[M, d]`.
    pub memory: Vec<f32>,
}

impl ArmtInit {
    /// The values of memory tensor `id`; `None` for `W_mv` (zero) and for tensors that are not memory tensors.
    pub fn values(&self, id: TensorId) -> Option<&[f32]> {
        match id {
            TensorId::Memory => Some(&self.memory),
            TensorId::Layer(i, t) => {
                let l = self.layers.get(i)?;
                match t {
                    LayerTensor::MemQ => Some(&l.mem_q),
                    LayerTensor::MemK => Some(&l.mem_k),
                    LayerTensor::MemBeta => Some(&l.mem_beta),
                    LayerTensor::MemBetaBias => Some(std::slice::from_ref(&l.mem_beta_bias)),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// ARMT parameters for `layers` layers of width `hidden`, plus `mem_tokens` memory embeddings scaled by
/// `embed_std` (the sample standard deviation of the `[V, d]` embedding matrix, [`sample_std`]), all drawn from
/// `seed`.
pub fn init_armt(seed: u64, layers: usize, hidden: usize, d_mem: usize, mem_tokens: usize, embed_std: f64) -> ArmtInit {
    let mut rng = SplitMix64::new(seed);
    let bound = 1.0 / (hidden as f64).sqrt();
    let mut uniform = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.uniform(bound)).collect() };
    let layers: Vec<InitLayer> = (0..layers)
        .map(|_| InitLayer {
            mem_q: uniform(d_mem * hidden),
            mem_k: uniform(d_mem * hidden),
            mem_beta: uniform(hidden),
            mem_beta_bias: uniform(1).first().copied().unwrap_or_default(),
        })
        .collect();
    let memory = (0..mem_tokens * hidden)
        .map(|_| (rng.normal() * embed_std) as f32)
        .collect();
    ArmtInit { layers, memory }
}

/// Sample standard deviation (Bessel-corrected, as `torch.Tensor.std`), in f64.
pub fn sample_std(x: &[f32]) -> f64 {
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
        let std = sample_std(&embed);
        let a = init_armt(5, 2, 8, 4, 3, std);
        let b = init_armt(5, 2, 8, 4, 3, std);
        let c = init_armt(6, 2, 8, 4, 3, std);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let ArmtInit { layers, memory } = a;
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[0].mem_q.len(), 32);
        assert_eq!(layers[0].mem_beta.len(), 8);
        let bound = 1.0 / 8f32.sqrt();
        assert!(layers[1].mem_k.iter().all(|v| v.abs() <= bound));
        assert!(layers[1].mem_beta_bias.abs() <= bound);
        assert_eq!(memory.len(), 24);
    }
}
