//! A model's identity: what a saved memory state records so that it is never loaded into another model.

use crate::{config::ModelConfig, weights::Weights};

/// `dbrmt-id1:<16 hex digits>`: FNV-1a over the config and a strided sample of every weight tensor (4096 values
/// each, plus its length) — cheap even for billions of parameters, and different for any two models that differ in
/// shape or in more than a few weights.
pub fn model_identity(cfg: &ModelConfig, w: &Weights) -> String {
    let mut h = Fnv::new();
    h.bytes(format!("{cfg:?}").as_bytes());
    let mut tensor = |t: &[f32]| {
        h.bytes(&(t.len() as u64).to_le_bytes());
        let stride = (t.len() / 4096).max(1);
        for x in t.iter().step_by(stride) {
            h.bytes(&x.to_bits().to_le_bytes());
        }
    };
    tensor(&w.embed);
    tensor(&w.norm);
    tensor(&w.memory);
    if let Some(head) = &w.lm_head {
        tensor(head);
    }
    for l in &w.layers {
        l.backbone().into_iter().chain(l.memory_tensors()).for_each(&mut tensor);
        tensor(&[l.mem_beta_bias]);
    }
    format!("dbrmt-id1:{:016x}", h.0)
}

struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 = (self.0 ^ x as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
}
