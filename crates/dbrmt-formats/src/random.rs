//! Random weights at any shape, for tests and benchmarks at real model sizes without a checkpoint.
//!
//! [`RandomModel`] serves them through [`TensorRead`], generated piece by piece (so an 8B-shaped model streams to the
//! GPU in bounded host memory) and counter-based — value `i` of a tensor depends only on the seed, the tensor and
//! `i` — so any piece size, any thread count and any order give the same bits. [`random_weights`] collects them as
//! f32 host weights for the CPU model.
//!
//! Scales follow the golden-case generator (`testdata/fixtures/generator/make_case.py`) so activations stay O(1)
//! over many layers and segments: projections N(0, 1/fan_in)-sized (uniform with that standard deviation, which is
//! much faster to draw and as good for timing and bitwise checks), o/down at half that, `W_v` 0.3/√d (non-zero, so
//! the memory path is alive), norms 1 ± 0.1, embeddings and memory O(1).

use std::thread;

use crate::config::ModelConfig;
use crate::error::FormatError;
use crate::names::{LayerTensor, TensorId};
use crate::source::{read_weights, tensor_ids, TensorRead};
use crate::weights::Weights;

/// Pieces larger than this are generated on several threads.
const PARALLEL_ABOVE: usize = 1 << 20;

/// A model of `config`'s shapes whose every weight is drawn from `seed`.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomModel {
    pub config: ModelConfig,
    pub seed: u64,
    /// Every value rounded to bf16 (as a bf16 checkpoint stores it), so that a model written to a file and read back
    /// is exactly this one.
    pub bf16: bool,
}

impl RandomModel {
    pub fn new(config: ModelConfig, seed: u64) -> Self {
        Self {
            config,
            seed,
            bf16: false,
        }
    }

    /// The same weights rounded to bf16.
    pub fn rounded_to_bf16(self) -> Self {
        Self { bf16: true, ..self }
    }

    /// `(center, standard deviation)` of tensor `id`'s values.
    fn scale(&self, id: TensorId) -> (f32, f32) {
        let c = &self.config.llama;
        let fan = |n: usize| 1.0 / (n as f32).sqrt();
        let around_one = (1.0, 0.1);
        match id {
            TensorId::Embed | TensorId::Memory => (0.0, 1.0),
            TensorId::LmHead => (0.0, fan(c.hidden_size)),
            TensorId::Norm => around_one,
            TensorId::Layer(_, t) => match t {
                LayerTensor::InputNorm | LayerTensor::PostNorm => around_one,
                LayerTensor::O => (0.0, 0.5 * fan(c.q_dim())),
                LayerTensor::Down => (0.0, 0.5 * fan(c.intermediate_size)),
                LayerTensor::MemV => (0.0, 0.3 * fan(c.hidden_size)),
                LayerTensor::MemBetaBias => (0.0, 0.1),
                LayerTensor::Q
                | LayerTensor::K
                | LayerTensor::V
                | LayerTensor::Gate
                | LayerTensor::Up
                | LayerTensor::MemQ
                | LayerTensor::MemK
                | LayerTensor::MemBeta => (0.0, fan(c.hidden_size)),
            },
        }
    }

    /// Values `first .. first + out.len()` of tensor `id`.
    pub fn fill(&self, id: TensorId, first: usize, out: &mut [f32]) {
        let (center, std) = self.scale(id);
        let a = std * 3f32.sqrt();
        let key = mix(self.seed ^ tensor_key(id).wrapping_mul(0xD1B5_4A32_D192_ED03));
        for (k, x) in out.iter_mut().enumerate() {
            let h = mix(key.wrapping_add(((first + k) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
            *x = center + ((h >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * a;
            if self.bf16 {
                *x = half::bf16::from_f32(*x).to_f32();
            }
        }
    }

    /// The f32 host weights (for the CPU model).
    pub fn weights(&self) -> Weights {
        read_weights(self).expect("generated tensors cannot fail to read")
    }

    /// [`RandomModel::fill`] on every core for large pieces (the same bits: values are counter-based).
    fn fill_parallel(&self, id: TensorId, first: usize, out: &mut [f32]) {
        let threads = thread::available_parallelism().map_or(1, |n| n.get());
        if out.len() < PARALLEL_ABOVE || threads < 2 {
            return self.fill(id, first, out);
        }
        let chunk = out.len().div_ceil(threads);
        thread::scope(|s| {
            for (k, part) in out.chunks_mut(chunk).enumerate() {
                s.spawn(move || self.fill(id, first + k * chunk, part));
            }
        });
    }

    /// Every tensor id of the model, in canonical order.
    pub fn tensor_ids(&self) -> impl Iterator<Item = TensorId> {
        tensor_ids(&self.config)
    }
}

impl TensorRead for RandomModel {
    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn stored_bf16(&self, _: TensorId) -> Option<&[u8]> {
        None
    }

    fn read_pieces<E: From<FormatError>>(
        &self,
        id: TensorId,
        max: usize,
        mut f: impl FnMut(usize, &[f32]) -> Result<(), E>,
    ) -> Result<(), E> {
        let len = self.len(id);
        let mut piece = vec![0.0f32; max.clamp(1, len.max(1))];
        let mut at = 0;
        while at < len {
            let n = piece.len().min(len - at);
            self.fill_parallel(id, at, &mut piece[..n]);
            f(at, &piece[..n])?;
            at += n;
        }
        Ok(())
    }
}

/// Deterministic weights of `cfg`'s shapes from `seed` (the same seed gives the same bits on any machine).
pub fn random_weights(cfg: &ModelConfig, seed: u64) -> Weights {
    RandomModel::new(cfg.clone(), seed).weights()
}

/// A number per tensor, so that every tensor draws its own values.
fn tensor_key(id: TensorId) -> u64 {
    match id {
        TensorId::Embed => 1,
        TensorId::Norm => 2,
        TensorId::LmHead => 3,
        TensorId::Memory => 4,
        TensorId::Layer(i, t) => 16 + 32 * i as u64 + t as u64,
    }
}

/// SplitMix64's finaliser: a bijective mix of 64 bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets;

    #[test]
    fn deterministic_shaped_and_scaled() {
        let cfg = presets::tiny(true);
        let (a, b) = (random_weights(&cfg, 7), random_weights(&cfg, 7));
        assert_eq!(a, b);
        assert_ne!(a, random_weights(&cfg, 8));
        assert_eq!(a.layers[1].q.len(), 4 * 32 * 128);
        assert!(a.lm_head.is_none());
        let std = (a.embed.iter().map(|x| x * x).sum::<f32>() / a.embed.len() as f32).sqrt();
        assert!((std - 1.0).abs() < 0.1, "{std}");
        assert!(a.layers[0].mem_v.iter().any(|&x| x != 0.0));
        assert_ne!(a.layers[0].q, a.layers[1].q);
        assert_ne!(a.layers[0].gate[..100], a.layers[0].up[..100]);
    }

    #[test]
    fn pieces_of_any_size_give_the_same_values() {
        let m = RandomModel::new(presets::tiny(false), 3);
        let w = m.weights();
        for id in m.tensor_ids() {
            for max in [7, 333, 1 << 21] {
                let mut got = Vec::new();
                m.read_pieces(id, max, |first, p| {
                    assert_eq!(first, got.len());
                    got.extend_from_slice(p);
                    Ok::<(), FormatError>(())
                })
                .unwrap();
                assert_eq!(got.as_slice(), w.tensor(id).unwrap(), "{id:?} max {max}");
            }
        }
    }
}
