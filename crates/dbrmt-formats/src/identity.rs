//! A model's identity: what a saved memory state records so that it is never loaded into another model.
//!
//! `dbrmt-id1:<16 hex digits>`: FNV-1a over the config and a strided sample of every weight tensor (4096 values
//! each, plus its length), tensors in the canonical order of [`crate::source::tensor_ids`] — cheap even for
//! billions of parameters, and different for any two models that differ in shape or in more than a few weights.
//! The samples are the f32 values as read from the checkpoint (before any rounding to bf16), so the CPU model
//! ([`model_identity`]) and a GPU upload that streams the tensors ([`IdentityBuilder`]) agree.

use std::collections::BTreeMap;

use half::bf16;

use crate::config::ModelConfig;
use crate::names::TensorId;
use crate::source::tensor_ids;
use crate::weights::Weights;

/// Values sampled per tensor (at most one more).
const SAMPLES: usize = 4096;

/// The identity of the model `cfg` with weights `w`.
pub fn model_identity(cfg: &ModelConfig, w: &Weights) -> String {
    let mut b = IdentityBuilder::new(cfg);
    for id in tensor_ids(cfg) {
        if let Some(t) = w.tensor(id) {
            b.piece(id, t.len(), 0, t);
        }
    }
    b.finish()
}

/// Collects the samples of a model's tensors in any order, as pieces stream by, and hashes them in canonical order.
#[derive(Debug, Clone)]
pub struct IdentityBuilder {
    config: String,
    order: Vec<TensorId>,
    /// Per tensor: its length and the sampled values' bits.
    samples: BTreeMap<TensorId, (usize, Vec<u32>)>,
}

impl IdentityBuilder {
    pub fn new(cfg: &ModelConfig) -> Self {
        Self {
            config: config_text(cfg),
            order: tensor_ids(cfg).collect(),
            samples: BTreeMap::new(),
        }
    }

    /// Values `first .. first + values.len()` of tensor `id` (of `len` elements), pieces given in order.
    pub fn piece(&mut self, id: TensorId, len: usize, first: usize, values: &[f32]) {
        let stride = stride(len);
        let entry = self.samples.entry(id).or_insert_with(|| (len, Vec::new()));
        // the first sampled index at or after `first`
        let mut i = first.div_ceil(stride) * stride;
        while i < first + values.len() {
            entry.1.push(values[i - first].to_bits());
            i += stride;
        }
    }

    /// Tensor `id` whole, as stored little-endian bf16 bytes (widened to f32 exactly).
    pub fn bf16_bytes(&mut self, id: TensorId, bytes: &[u8]) {
        let len = bytes.len() / 2;
        let stride = stride(len);
        let values: Vec<u32> = (0..len)
            .step_by(stride)
            .map(|i| bf16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]).to_f32().to_bits())
            .collect();
        self.samples.insert(id, (len, values));
    }

    /// The identity (tensors never given count as absent, as the LM head of a tied model).
    pub fn finish(self) -> String {
        let mut h = Fnv::new();
        h.bytes(self.config.as_bytes());
        for id in &self.order {
            if let Some((len, values)) = self.samples.get(id) {
                h.bytes(&(*len as u64).to_le_bytes());
                for v in values {
                    h.bytes(&v.to_le_bytes());
                }
            }
        }
        format!("dbrmt-id1:{:016x}", h.0)
    }
}

/// Every `stride`-th value is sampled.
fn stride(len: usize) -> usize {
    (len / SAMPLES).max(1)
}

/// The config as identity version 1 spells it: the `Debug` text of the flat config struct it was defined on
/// (`ModelConfig { vocab_size: …, …, armt: ArmtParams { … } }`), kept so that saved states stay loadable.
fn config_text(cfg: &ModelConfig) -> String {
    let llama = format!("{:?}", cfg.llama);
    let fields = llama
        .strip_prefix("LlamaConfig { ")
        .and_then(|s| s.strip_suffix(" }"))
        .unwrap_or(&llama);
    format!("ModelConfig {{ {fields}, armt: {:?} }}", cfg.armt)
}

/// FNV-1a, 64 bits.
pub(crate) struct Fnv(pub(crate) u64);

impl Fnv {
    pub(crate) fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 = (self.0 ^ x as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets;
    use crate::random::random_weights;

    #[test]
    fn config_text_is_the_old_flat_debug_text() {
        let c = presets::tiny(true);
        let t = config_text(&c);
        assert!(
            t.starts_with("ModelConfig { vocab_size: 512, hidden_size: 128, "),
            "{t}"
        );
        assert!(t.ends_with("tie_word_embeddings: true, armt: ArmtParams { num_mem_tokens: 8, d_mem: 16, segment_size: 32, nu: 3, correction: true } }"), "{t}");
    }

    #[test]
    fn pieces_in_any_size_and_order_give_the_same_identity() {
        let c = presets::tiny(false);
        let w = random_weights(&c, 3);
        let whole = model_identity(&c, &w);
        let mut b = IdentityBuilder::new(&c);
        for id in tensor_ids(&c).collect::<Vec<_>>().into_iter().rev() {
            let t = w.tensor(id).unwrap();
            for (k, piece) in t.chunks(777).enumerate() {
                b.piece(id, t.len(), k * 777, piece);
            }
        }
        assert_eq!(b.finish(), whole);
        let mut other = w.clone();
        other.layers[2].down[4096] += 1.0;
        assert_ne!(model_identity(&c, &other), whole);
    }

    #[test]
    fn bf16_bytes_sample_as_their_f32_values() {
        let c = presets::tiny(false);
        let w = random_weights(&c, 4).rounded_to_bf16();
        let mut b = IdentityBuilder::new(&c);
        for id in tensor_ids(&c) {
            let t = w.tensor(id).unwrap();
            if matches!(id, TensorId::Layer(_, crate::names::LayerTensor::MemBetaBias)) {
                // rounded_to_bf16 keeps the β biases in f32
                b.piece(id, 1, 0, t);
                continue;
            }
            let bytes: Vec<u8> = t.iter().flat_map(|&x| bf16::from_f32(x).to_le_bytes()).collect();
            b.bf16_bytes(id, &bytes);
        }
        assert_eq!(b.finish(), model_identity(&c, &w));
    }
}
