//! The parts of a model's identity a person can read — the ARMT shape, the backbone's shape, where the memory came
//! from — recorded beside the identity hash in a saved state, so that a state refused as "from another model" can
//! say what differs (`--segment-size 512` there, 1024 here) instead of showing two hashes. Whatever the parts do
//! not explain is the weights.

use crate::config::ModelConfig;

/// What a state records of its model besides the hash ([`crate::identity`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelParts {
    pub segment_size: usize,
    pub mem_tokens: usize,
    pub d_mem: usize,
    pub nu: usize,
    pub correction: bool,
    pub layers: usize,
    pub hidden: usize,
    pub vocab: usize,
    /// The seed of an untrained memory (a plain LLaMA checkpoint); `None` when the memory was trained.
    pub memory_seed: Option<u64>,
}

impl ModelParts {
    pub fn new(cfg: &ModelConfig, memory_seed: Option<u64>) -> Self {
        Self {
            segment_size: cfg.armt.segment_size,
            mem_tokens: cfg.armt.num_mem_tokens,
            d_mem: cfg.armt.d_mem,
            nu: cfg.armt.nu,
            correction: cfg.armt.correction,
            layers: cfg.llama.num_layers,
            hidden: cfg.llama.hidden_size,
            vocab: cfg.llama.vocab_size,
            memory_seed,
        }
    }

    /// `T=1024 M=16 d_mem=64 nu=3 correction=true layers=30 hidden=576 vocab=49152 memory=seed:0` (or
    /// `memory=trained`).
    pub fn to_text(&self) -> String {
        let memory = match self.memory_seed {
            Some(seed) => format!("seed:{seed}"),
            None => "trained".to_string(),
        };
        format!(
            "T={} M={} d_mem={} nu={} correction={} layers={} hidden={} vocab={} memory={memory}",
            self.segment_size,
            self.mem_tokens,
            self.d_mem,
            self.nu,
            self.correction,
            self.layers,
            self.hidden,
            self.vocab
        )
    }

    /// The parts of [`ModelParts::to_text`]; `None` for text that is not that (an edited or foreign file).
    pub fn parse(text: &str) -> Option<Self> {
        let mut fields = std::collections::BTreeMap::new();
        for item in text.split_whitespace() {
            let (k, v) = item.split_once('=')?;
            fields.insert(k, v);
        }
        let num = |k: &str| fields.get(k)?.parse::<usize>().ok();
        let memory_seed = match *fields.get("memory")? {
            "trained" => None,
            m => Some(m.strip_prefix("seed:")?.parse::<u64>().ok()?),
        };
        Some(Self {
            segment_size: num("T")?,
            mem_tokens: num("M")?,
            d_mem: num("d_mem")?,
            nu: num("nu")?,
            correction: fields.get("correction")?.parse().ok()?,
            layers: num("layers")?,
            hidden: num("hidden")?,
            vocab: num("vocab")?,
            memory_seed,
        })
    }

    /// What differs between the model a state was saved from (`self`) and the model loading it (`here`), one
    /// phrase per part, with the flag that sets it where there is one.
    pub fn differences(&self, here: &Self) -> Vec<String> {
        let mut out = Vec::new();
        let mut num = |what: &str, there: usize, here: usize| {
            if there != here {
                out.push(format!("{what} {there} there, {here} here"));
            }
        };
        num("segment size T (--segment-size)", self.segment_size, here.segment_size);
        num("memory tokens M (--mem-tokens)", self.mem_tokens, here.mem_tokens);
        num("d_mem (--d-mem)", self.d_mem, here.d_mem);
        num("ν", self.nu, here.nu);
        num("layers", self.layers, here.layers);
        num("hidden size", self.hidden, here.hidden);
        num("vocabulary", self.vocab, here.vocab);
        if self.correction != here.correction {
            out.push(format!(
                "z correction {} there, {} here",
                self.correction, here.correction
            ));
        }
        let memory = |m: Option<u64>| match m {
            Some(seed) => format!("untrained from seed {seed}"),
            None => "trained".to_string(),
        };
        if self.memory_seed != here.memory_seed {
            out.push(format!(
                "memory {} there, {} here (--armt-init)",
                memory(self.memory_seed),
                memory(here.memory_seed)
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets;

    #[test]
    fn parts_read_back_and_name_what_differs() {
        let cfg = presets::tiny(true);
        let here = ModelParts::new(&cfg, Some(0));
        assert_eq!(ModelParts::parse(&here.to_text()), Some(here));
        let trained = ModelParts::new(&cfg, None);
        assert_eq!(ModelParts::parse(&trained.to_text()), Some(trained));
        assert_eq!(ModelParts::parse("T=1 M=x"), None);
        let there = ModelParts {
            segment_size: 512,
            memory_seed: Some(3),
            ..here
        };
        let d = there.differences(&here);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(
            d[0].contains("segment size T (--segment-size) 512 there, 32 here"),
            "{d:?}"
        );
        assert!(
            d[1].contains("untrained from seed 3 there, untrained from seed 0 here"),
            "{d:?}"
        );
        assert!(here.differences(&here).is_empty());
    }
}
