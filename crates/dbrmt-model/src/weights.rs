//! Host weights in f32, each tensor row-major with the checkpoint's `[out, in]` layout.

use crate::names::LayerTensor;

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
    /// are still empty: they are read next, or set by [`crate::armt_init::InitLayer::apply`].
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
    /// The LM head matrix (the embedding when tied).
    pub fn lm_head(&self) -> &[f32] {
        self.lm_head.as_deref().unwrap_or(&self.embed)
    }
}
