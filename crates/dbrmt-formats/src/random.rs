//! Random weights at any shape, for tests and benchmarks at real model sizes without a checkpoint.
//!
//! Scales follow the golden-case generator (`shared/anchors/make_case.py`) so activations stay O(1) over many
//! layers and segments: projections N(0, 1/fan_in)-sized (uniform with that standard deviation, which is much
//! faster to draw and as good for timing and bitwise checks), o/down at half that, `W_v` 0.3/√d (non-zero, so
//! the memory path is alive), norms 1 ± 0.1, embeddings and memory O(1).

use std::thread;

use crate::{
    config::ModelConfig,
    rng::{stream_seed, SplitMix64},
    weights::{LayerWeights, Weights},
};

/// Deterministic weights of `cfg`'s shapes from `seed` (the same seed gives the same bits on any machine).
pub fn random_weights(cfg: &ModelConfig, seed: u64) -> Weights {
    let (d, inter, v, m) = (
        cfg.llama.hidden_size,
        cfg.llama.intermediate_size,
        cfg.llama.vocab_size,
        cfg.armt.num_mem_tokens,
    );
    let (q, kv, dm) = (cfg.llama.q_dim(), cfg.llama.kv_dim(), cfg.armt.d_mem);
    let fan = |n: usize| 1.0 / (n as f32).sqrt();
    let layers = thread::scope(|s| {
        let handles: Vec<_> = (0..cfg.llama.num_layers)
            .map(|l| {
                s.spawn(move || {
                    let mut r = Stream::new(seed, 1 + l as u64);
                    LayerWeights {
                        input_norm: r.around_one(d),
                        q: r.uniform(q * d, fan(d)),
                        k: r.uniform(kv * d, fan(d)),
                        v: r.uniform(kv * d, fan(d)),
                        o: r.uniform(d * q, 0.5 * fan(q)),
                        post_norm: r.around_one(d),
                        gate: r.uniform(inter * d, fan(d)),
                        up: r.uniform(inter * d, fan(d)),
                        down: r.uniform(d * inter, 0.5 * fan(inter)),
                        mem_q: r.uniform(dm * d, fan(d)),
                        mem_k: r.uniform(dm * d, fan(d)),
                        mem_v: r.uniform(d * d, 0.3 * fan(d)),
                        mem_beta: r.uniform(d, fan(d)),
                        mem_beta_bias: r.uniform(1, 0.1)[0],
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("weight generation thread"))
            .collect()
    });
    let mut r = Stream::new(seed, 0);
    Weights {
        embed: r.uniform(v * d, 1.0),
        layers,
        norm: r.around_one(d),
        lm_head: (!cfg.llama.tie_word_embeddings).then(|| r.uniform(v * d, fan(d))),
        memory: r.uniform(m * d, 1.0),
    }
}

/// One independent stream of the weights' random numbers (one per layer, so layers are drawn in parallel).
struct Stream(SplitMix64);

impl Stream {
    fn new(seed: u64, stream: u64) -> Self {
        Stream(SplitMix64::new(stream_seed(seed, stream)))
    }

    /// `n` values uniform in `[−√3·std, √3·std)` (standard deviation `std`), from 24 random bits each.
    fn uniform(&mut self, n: usize, std: f32) -> Vec<f32> {
        let a = std * 3f32.sqrt();
        (0..n)
            .map(|_| ((self.0.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * a)
            .collect()
    }

    fn around_one(&mut self, n: usize) -> Vec<f32> {
        self.uniform(n, 0.1).into_iter().map(|x| 1.0 + x).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ArmtParams, LlamaConfig};

    fn tiny() -> ModelConfig {
        ModelConfig {
            llama: LlamaConfig {
                vocab_size: 50,
                hidden_size: 16,
                intermediate_size: 24,
                num_layers: 2,
                num_heads: 4,
                num_kv_heads: 2,
                head_dim: 4,
                rms_norm_eps: 1e-5,
                rope_theta: 1e4,
                rope_scaling: None,
                tie_word_embeddings: true,
            },
            armt: ArmtParams {
                num_mem_tokens: 3,
                d_mem: 4,
                segment_size: 8,
                nu: 3,
                correction: true,
            },
        }
    }

    #[test]
    fn deterministic_shaped_and_scaled() {
        let cfg = tiny();
        let (a, b) = (random_weights(&cfg, 7), random_weights(&cfg, 7));
        assert_eq!(a, b);
        assert_ne!(a, random_weights(&cfg, 8));
        assert_eq!(a.layers[1].q.len(), 16 * 16);
        assert!(a.lm_head.is_none());
        let std = (a.embed.iter().map(|x| x * x).sum::<f32>() / a.embed.len() as f32).sqrt();
        assert!((std - 1.0).abs() < 0.1, "{std}");
        assert!(a.layers[0].mem_v.iter().any(|&x| x != 0.0));
    }
}
