//! Host weights in f32, each tensor row-major with the checkpoint's `[out, in]` layout.

use crate::names::{LayerTensor, TensorId};

/// Loading a model directory into these structs lives in [`crate::load`].
pub use crate::load::{load_model, LoadOptions, Model};

/// One decoder layer plus its ARMT memory parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerWeights {
    /// `input_layernorm` `[d]`.
    pub input_norm: Vec<f32>,
    /// `q_proj` `[H·hd, d]`.
    pub q: Vec<f32>,
    /// `k_proj` `[KV·hd, d]`.
    pub k: Vec<f32>,
    /// `v_proj` `[KV·hd, d]`.
    pub v: Vec<f32>,
    /// `o_proj` `[d, H·hd]`.
    pub o: Vec<f32>,
    /// `post_attention_layernorm` `[d]`.
    pub post_norm: Vec<f32>,
    /// `gate_proj` `[I, d]`.
    pub gate: Vec<f32>,
    /// `up_proj` `[I, d]`.
    pub up: Vec<f32>,
    /// `down_proj` `[d, I]`.
    pub down: Vec<f32>,
    /// `W_mq` `[d_mem, d]`.
    pub mem_q: Vec<f32>,
    /// `W_mk` `[d_mem, d]`.
    pub mem_k: Vec<f32>,
    /// `W_mv` `[d, d]`.
    pub mem_v: Vec<f32>,
    /// `W_mb.weight` `[1, d]`, stored as `[d]`.
    pub mem_beta: Vec<f32>,
    /// `W_mb.bias` `[1]`.
    pub mem_beta_bias: f32,
}

impl LayerWeights {
    /// A layer whose backbone tensors come from `read` (any checkpoint format's reader) and whose memory tensors
    /// are still empty (they are read next).
    pub fn read_backbone<E>(mut read: impl FnMut(LayerTensor) -> Result<Vec<f32>, E>) -> Result<Self, E> {
        use LayerTensor as T;
        Ok(Self {
            input_norm: read(T::InputNorm)?,
            q: read(T::Q)?,
            k: read(T::K)?,
            v: read(T::V)?,
            o: read(T::O)?,
            post_norm: read(T::PostNorm)?,
            gate: read(T::Gate)?,
            up: read(T::Up)?,
            down: read(T::Down)?,
            mem_q: Vec::new(),
            mem_k: Vec::new(),
            mem_v: Vec::new(),
            mem_beta: Vec::new(),
            mem_beta_bias: 0.0,
        })
    }

    /// The decoder layer's tensors: norms, attention and MLP projections.
    pub fn backbone(&self) -> [&[f32]; 9] {
        [
            &self.input_norm,
            &self.q,
            &self.k,
            &self.v,
            &self.o,
            &self.post_norm,
            &self.gate,
            &self.up,
            &self.down,
        ]
    }

    /// The memory's tensors (the β bias, a scalar, aside).
    pub fn memory_tensors(&self) -> [&[f32]; 4] {
        [&self.mem_q, &self.mem_k, &self.mem_v, &self.mem_beta]
    }
}

/// The whole model.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    /// `embed_tokens` `[V, d]`.
    pub embed: Vec<f32>,
    /// The decoder layers, first to last.
    pub layers: Vec<LayerWeights>,
    /// Final `norm` `[d]`.
    pub norm: Vec<f32>,
    /// `lm_head` `[V, d]`; `None` when tied to `embed`.
    pub lm_head: Option<Vec<f32>>,
    /// The memory-token embeddings `[M, d]` (one learned matrix, the same for every segment).
    pub memory: Vec<f32>,
}

impl Weights {
    /// Tensor `id` (`None`: the LM head of a tied model). The β bias is a one-element slice.
    pub fn tensor(&self, id: TensorId) -> Option<&[f32]> {
        use LayerTensor as T;
        Some(match id {
            TensorId::Embed => &self.embed,
            TensorId::Norm => &self.norm,
            TensorId::LmHead => self.lm_head.as_deref()?,
            TensorId::Memory => &self.memory,
            TensorId::Layer(i, t) => {
                let l = self.layers.get(i)?;
                match t {
                    T::InputNorm => &l.input_norm,
                    T::Q => &l.q,
                    T::K => &l.k,
                    T::V => &l.v,
                    T::O => &l.o,
                    T::PostNorm => &l.post_norm,
                    T::Gate => &l.gate,
                    T::Up => &l.up,
                    T::Down => &l.down,
                    T::MemQ => &l.mem_q,
                    T::MemK => &l.mem_k,
                    T::MemV => &l.mem_v,
                    T::MemBeta => &l.mem_beta,
                    T::MemBetaBias => std::slice::from_ref(&l.mem_beta_bias),
                }
            }
        })
    }

    /// The LM head matrix (the embedding when tied).
    pub fn lm_head(&self) -> &[f32] {
        self.lm_head.as_deref().unwrap_or(&self.embed)
    }

    /// These weights with every tensor the GPU holds in bf16 rounded to bf16 (to nearest, ties to even), as the
    /// upload does — all but the β biases. The CPU model on them is the oracle for the GPU (docs/ARCHITECTURE.md,
    /// numerics): the same weights, f32 arithmetic.
    pub fn rounded_to_bf16(&self) -> Weights {
        let round = |t: &[f32]| -> Vec<f32> { t.iter().map(|&x| half::bf16::from_f32(x).to_f32()).collect() };
        Weights {
            embed: round(&self.embed),
            layers: self
                .layers
                .iter()
                .map(|l| LayerWeights {
                    input_norm: round(&l.input_norm),
                    q: round(&l.q),
                    k: round(&l.k),
                    v: round(&l.v),
                    o: round(&l.o),
                    post_norm: round(&l.post_norm),
                    gate: round(&l.gate),
                    up: round(&l.up),
                    down: round(&l.down),
                    mem_q: round(&l.mem_q),
                    mem_k: round(&l.mem_k),
                    mem_v: round(&l.mem_v),
                    mem_beta: round(&l.mem_beta),
                    mem_beta_bias: l.mem_beta_bias,
                })
                .collect(),
            norm: round(&self.norm),
            lm_head: self.lm_head.as_deref().map(round),
            memory: round(&self.memory),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounded_to_bf16_rounds_what_the_gpu_rounds() {
        let t = |k: f32| vec![1.0 + k * 1e-3, -0.3 + k * 1e-4, 1.0 / 3.0 + k];
        let layer = LayerWeights {
            input_norm: t(1.0),
            q: t(2.0),
            k: t(3.0),
            v: t(4.0),
            o: t(5.0),
            post_norm: t(6.0),
            gate: t(7.0),
            up: t(8.0),
            down: t(9.0),
            mem_q: t(10.0),
            mem_k: t(11.0),
            mem_v: t(12.0),
            mem_beta: t(13.0),
            mem_beta_bias: 0.123_456_7,
        };
        let w = Weights {
            embed: t(0.5),
            layers: vec![layer],
            norm: t(0.25),
            lm_head: None,
            memory: t(0.125),
        };
        let r = w.rounded_to_bf16();
        let is_bf16 = |v: &[f32]| v.iter().all(|&x| half::bf16::from_f32(x).to_f32() == x);
        let l = &r.layers[0];
        let mut tensors: Vec<&[f32]> = l.backbone().to_vec();
        tensors.extend(l.memory_tensors());
        tensors.extend([r.embed.as_slice(), r.norm.as_slice(), r.memory.as_slice()]);
        assert!(tensors.iter().all(|t| is_bf16(t)));
        assert_ne!(r.embed, w.embed, "the inputs are not all bf16 values already");
        assert_eq!(l.mem_beta_bias, 0.123_456_7, "the β bias stays f32 on the GPU");
        assert!(r.lm_head.is_none());
        // rounding twice changes nothing
        assert_eq!(r.rounded_to_bf16(), r);
    }
}
