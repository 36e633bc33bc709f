//! `benches/matrix.toml`: the model shapes and the rows of the benchmark matrix (the schema is in the file's header
//! and `benches/README.md`; `benches/python/` reads the same file for the baselines).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use dbrmt_formats::{presets, ArmtParams, Llama3Scaling, LlamaConfig, ModelConfig};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Matrix {
    pub defaults: Defaults,
    pub models: BTreeMap<String, Shape>,
    #[serde(default)]
    pub row: Vec<Row>,
    #[serde(default)]
    pub decode: Vec<DecodeRow>,
}

#[derive(Debug, Deserialize)]
pub struct Defaults {
    pub mem_tokens: usize,
    pub d_mem: usize,
    pub nu: usize,
    pub warmup: usize,
    pub iters: usize,
}

/// A published model shape (random weights).
#[derive(Debug, Deserialize)]
pub struct Shape {
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub intermediate_size: usize,
    pub vocab_size: usize,
    pub rope_theta: f64,
    pub rope_scaling: Option<String>,
    pub rope_factor: Option<f64>,
    pub rope_low_freq_factor: Option<f64>,
    pub rope_high_freq_factor: Option<f64>,
    pub rope_original_max_position_embeddings: Option<f64>,
    pub rms_norm_eps: f64,
    pub tie_word_embeddings: bool,
}

/// One prefill row.
#[derive(Debug, Deserialize)]
pub struct Row {
    pub id: String,
    pub model: String,
    pub segment: usize,
    pub tokens: usize,
    pub logits: String,
    pub methods: Vec<String>,
    pub warmup: Option<usize>,
    pub iters: Option<usize>,
}

/// One decode row: a prompt, then greedy tokens one at a time.
#[derive(Debug, Deserialize)]
pub struct DecodeRow {
    pub id: String,
    pub model: String,
    pub segment: usize,
    pub prompt: usize,
    pub new_tokens: usize,
    pub methods: Vec<String>,
}

impl Matrix {
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| {
            let hint = if path.is_relative() && !path.exists() {
                " (a path from the current directory: run from the repository's root, or give --matrix PATH)"
            } else {
                ""
            };
            format!("reading {}{hint}", path.display())
        })?;
        let m: Matrix = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        for model in m.row.iter().map(|r| &r.model).chain(m.decode.iter().map(|r| &r.model)) {
            if !m.models.contains_key(model) {
                bail!(
                    "{}: a row names model `{model}`, which [models] does not define",
                    path.display()
                );
            }
        }
        Ok(m)
    }

    /// The model config of `model` with segments of `segment` tokens and the defaults' memory.
    pub fn config(&self, model: &str, segment: usize) -> anyhow::Result<ModelConfig> {
        let s = self
            .models
            .get(model)
            .with_context(|| format!("no model `{model}` in the matrix"))?;
        let rope_scaling = match s.rope_scaling.as_deref() {
            None => None,
            Some("llama3") => Some(Llama3Scaling {
                factor: s.rope_factor.unwrap_or(presets::LLAMA3_ROPE.factor),
                low_freq_factor: s.rope_low_freq_factor.unwrap_or(presets::LLAMA3_ROPE.low_freq_factor),
                high_freq_factor: s.rope_high_freq_factor.unwrap_or(presets::LLAMA3_ROPE.high_freq_factor),
                original_max_position_embeddings: s
                    .rope_original_max_position_embeddings
                    .unwrap_or(presets::LLAMA3_ROPE.original_max_position_embeddings),
            }),
            Some(other) => bail!("model `{model}`: rope_scaling `{other}` is not supported (only llama3)"),
        };
        Ok(LlamaConfig {
            vocab_size: s.vocab_size,
            hidden_size: s.hidden_size,
            intermediate_size: s.intermediate_size,
            num_layers: s.num_layers,
            num_heads: s.num_heads,
            num_kv_heads: s.num_kv_heads,
            head_dim: s.head_dim,
            rms_norm_eps: s.rms_norm_eps as f32,
            rope_theta: s.rope_theta,
            rope_scaling,
            tie_word_embeddings: s.tie_word_embeddings,
        }
        .with_armt(ArmtParams {
            num_mem_tokens: self.defaults.mem_tokens,
            d_mem: self.defaults.d_mem,
            segment_size: segment,
            nu: self.defaults.nu,
            correction: true,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The repository's matrix parses, every row names a known model, and the 1B shape is Llama-3.2-1B's.
    #[test]
    fn the_repository_matrix_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benches/matrix.toml");
        let m = Matrix::read(&path).unwrap();
        assert!(m.row.len() >= 10 && !m.decode.is_empty());
        let c = m.config("llama-3.2-1b", 1024).unwrap();
        assert_eq!(c, presets::llama_3_2_1b(presets::armt(1024, 128, 64)));
        for r in &m.row {
            assert!(r.tokens > 0 && r.segment > 0, "{}", r.id);
            m.config(&r.model, r.segment).unwrap();
        }
    }
}
