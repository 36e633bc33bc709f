//! `config.json`: Hugging Face LLaMA fields plus an `armt` object.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::FormatError;
use crate::limits::{self, ArmtFields, LlamaFields};

/// Shapes of one layer's memory: `d` hidden, `d_mem`, `nu`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemShape {
    pub hidden: usize,
    pub d_mem: usize,
    pub nu: usize,
}

impl MemShape {
    /// `D = 2·ν·d_mem`, the feature size.
    pub fn d_key(&self) -> usize {
        2 * self.nu * self.d_mem
    }
}

/// The `rope_scaling` object of a `rope_type: "llama3"` config (Llama 3.1/3.2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Llama3Scaling {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_position_embeddings: f64,
}

/// The ARMT hyper-parameters (`armt` object of `config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArmtParams {
    /// M: memory tokens appended to every segment.
    pub num_mem_tokens: usize,
    /// d_mem: width of the key/query projections before DPFP.
    pub d_mem: usize,
    /// T: text tokens per segment (memory tokens not included).
    pub segment_size: usize,
    /// ν: DPFP order (3 in the original).
    pub nu: usize,
    /// γ correction of the z update (original default: true).
    pub correction: bool,
}

/// Everything the model needs to know about its shapes: the LLaMA backbone and the ARMT memory.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub llama: LlamaConfig,
    pub armt: ArmtParams,
}

impl ModelConfig {
    /// The memory shape of every layer.
    pub fn mem_shape(&self) -> MemShape {
        MemShape {
            hidden: self.llama.hidden_size,
            d_mem: self.armt.d_mem,
            nu: self.armt.nu,
        }
    }

    /// D = 2·ν·d_mem.
    pub fn d_key(&self) -> usize {
        self.mem_shape().d_key()
    }

    /// Rows of one full segment: `T + M`.
    pub fn segment_rows(&self) -> usize {
        self.armt.segment_size + self.armt.num_mem_tokens
    }

    /// Number of segments for `tokens` text tokens (the last may be shorter).
    pub fn segments_for(&self, tokens: usize) -> usize {
        tokens.div_ceil(self.armt.segment_size)
    }
}

/// The backbone half of `config.json`: every LLaMA field [`ModelConfig`] needs, without the ARMT parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f32,
    pub rope_theta: f64,
    pub rope_scaling: Option<Llama3Scaling>,
    pub tie_word_embeddings: bool,
}

/// A parsed `config.json`: the backbone and, for an ARMT model, its `armt` object.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigFile {
    /// Where it was read from (named in every error).
    pub path: PathBuf,
    pub llama: LlamaConfig,
    /// `None` for a plain LLaMA config.
    pub armt: Option<ArmtParams>,
    /// What the backbone's fields are called in the file (`config.json` or GGUF metadata), for messages.
    pub fields: LlamaFields,
}

impl ConfigFile {
    /// Reads and parses `path` (normally `<model dir>/config.json`).
    pub fn read(path: &Path) -> Result<Self, FormatError> {
        let text =
            crate::files::read_text_capped(path, limits::MAX_CONFIG_BYTES).map_err(|source| FormatError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Self::parse(&text, path)
    }

    /// Parses the text of a `config.json`; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, FormatError> {
        let bad = |msg: String| FormatError::Config {
            path: path.to_path_buf(),
            msg,
        };
        let value: Value = serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let obj = value.as_object().ok_or_else(|| bad("not a JSON object".into()))?;
        let fields = Fields { obj, prefix: "" };
        let llama = parse_llama(&fields).map_err(bad)?;
        let armt = match fields.get("armt") {
            None => None,
            Some(Value::Object(a)) => Some(
                parse_armt(&Fields {
                    obj: a,
                    prefix: "armt.",
                })
                .map_err(bad)?,
            ),
            Some(other) => return Err(bad(format!("field `armt` must be an object, found {other}"))),
        };
        Ok(Self {
            path: path.to_path_buf(),
            llama,
            armt,
            fields: limits::CONFIG_JSON,
        })
    }

    /// The model config. The file's `armt` object wins; `fallback` (the caller's ARMT parameters) is used only
    /// for a plain LLaMA config without one, and neither present is an error.
    pub fn model_config(&self, fallback: Option<ArmtParams>) -> Result<ModelConfig, FormatError> {
        let bad = |msg: String| FormatError::Config {
            path: self.path.clone(),
            msg,
        };
        let (armt, armt_fields): (ArmtParams, &ArmtFields) = match (self.armt, fallback) {
            (Some(a), _) => (a, &limits::ARMT_JSON),
            (None, Some(a)) => {
                validate_armt(&a, "ARMT parameter `").map_err(bad)?;
                (a, &limits::ARMT_FLAGS)
            }
            (None, None) => {
                return Err(bad(
                    "no `armt` object (a plain LLaMA config): pass the ARMT parameters \
                                (num_mem_tokens, d_mem, segment_size) with --armt-init"
                        .into(),
                ))
            }
        };
        let config = self.llama.clone().with_armt(armt);
        limits::check_model(&config, &self.fields, armt_fields).map_err(bad)?;
        Ok(config)
    }
}

impl LlamaConfig {
    /// Adds the ARMT parameters.
    pub fn with_armt(self, armt: ArmtParams) -> ModelConfig {
        ModelConfig { llama: self, armt }
    }

    /// Width of the query projection (`H · hd`).
    pub fn q_dim(&self) -> usize {
        self.num_heads * self.head_dim
    }

    /// Width of each of the key and value projections (`KV · hd`).
    pub fn kv_dim(&self) -> usize {
        self.num_kv_heads * self.head_dim
    }
}

impl ModelConfig {
    /// This config as a `config.json` (Hugging Face LLaMA fields plus the `armt` object) that [`ConfigFile`] reads
    /// back to the same config.
    pub fn to_json(&self) -> Value {
        let l = &self.llama;
        let rope_scaling = match &l.rope_scaling {
            None => Value::Null,
            Some(s) => serde_json::json!({
                "rope_type": "llama3",
                "factor": s.factor,
                "low_freq_factor": s.low_freq_factor,
                "high_freq_factor": s.high_freq_factor,
                "original_max_position_embeddings": s.original_max_position_embeddings,
            }),
        };
        serde_json::json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_act": "silu",
            "vocab_size": l.vocab_size,
            "hidden_size": l.hidden_size,
            "intermediate_size": l.intermediate_size,
            "num_hidden_layers": l.num_layers,
            "num_attention_heads": l.num_heads,
            "num_key_value_heads": l.num_kv_heads,
            "head_dim": l.head_dim,
            "rms_norm_eps": l.rms_norm_eps,
            "rope_theta": l.rope_theta,
            "rope_scaling": rope_scaling,
            "tie_word_embeddings": l.tie_word_embeddings,
            "armt": {
                "num_mem_tokens": self.armt.num_mem_tokens,
                "d_mem": self.armt.d_mem,
                "segment_size": self.armt.segment_size,
                "nu": self.armt.nu,
                "correction": self.armt.correction,
            },
        })
    }

    /// Reads `path`; `fallback` supplies the ARMT parameters when it has no `armt` object.
    pub fn read(path: &Path, fallback: Option<ArmtParams>) -> Result<Self, FormatError> {
        ConfigFile::read(path)?.model_config(fallback)
    }
}

/// Typed access to one JSON object; `null` counts as absent, as in HF configs (`"head_dim": null`).
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    /// Prepended to field names in messages (`armt.`).
    prefix: &'static str,
}

impl Fields<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    fn required<T>(&self, key: &str, parse: impl Fn(&Self, &str) -> Result<Option<T>, String>) -> Result<T, String> {
        parse(self, key)?.ok_or_else(|| format!("missing field `{}{key}`", self.prefix))
    }

    fn usize(&self, key: &str) -> Result<Option<usize>, String> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        v.as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| format!("field `{}{key}` must be a non-negative integer, found {v}", self.prefix))
    }

    fn f64(&self, key: &str) -> Result<Option<f64>, String> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        v.as_f64()
            .map(Some)
            .ok_or_else(|| format!("field `{}{key}` must be a number, found {v}", self.prefix))
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, String> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        v.as_bool()
            .map(Some)
            .ok_or_else(|| format!("field `{}{key}` must be true or false, found {v}", self.prefix))
    }

    fn str(&self, key: &str) -> Result<Option<&str>, String> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        v.as_str()
            .map(Some)
            .ok_or_else(|| format!("field `{}{key}` must be a string, found {v}", self.prefix))
    }

    /// A required size that must be at least 1.
    fn size(&self, key: &str) -> Result<usize, String> {
        let n = self.required(key, Self::usize)?;
        if n == 0 {
            return Err(format!("field `{}{key}` must be at least 1", self.prefix));
        }
        Ok(n)
    }

    /// A number that must be finite and positive when present.
    fn positive(&self, key: &str) -> Result<Option<f64>, String> {
        match self.f64(key)? {
            Some(x) if !(x.is_finite() && x > 0.0) => Err(format!(
                "field `{}{key}` must be a positive number, found {x}",
                self.prefix
            )),
            x => Ok(x),
        }
    }
}

fn parse_llama(f: &Fields) -> Result<LlamaConfig, String> {
    let vocab_size = f.size("vocab_size")?;
    let hidden_size = f.size("hidden_size")?;
    let intermediate_size = f.size("intermediate_size")?;
    let num_layers = f.size("num_hidden_layers")?;
    let num_heads = f.size("num_attention_heads")?;
    let num_kv_heads = f.usize("num_key_value_heads")?.unwrap_or(num_heads);
    if num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
        return Err(format!(
            "num_attention_heads ({num_heads}) must be a multiple of num_key_value_heads ({num_kv_heads})"
        ));
    }
    let head_dim = match f.usize("head_dim")? {
        Some(hd) => hd,
        None if hidden_size % num_heads == 0 => hidden_size / num_heads,
        None => {
            return Err(format!(
                "no `head_dim` and hidden_size ({hidden_size}) is not a multiple of num_attention_heads ({num_heads})"
            ))
        }
    };
    if head_dim == 0 || head_dim % 2 != 0 {
        return Err(format!(
            "head_dim must be even and at least 2 (RoPE rotates pairs), found {head_dim}"
        ));
    }
    if let Some(act) = f.str("hidden_act")? {
        if act != "silu" {
            return Err(format!("hidden_act `{act}` is not supported (only `silu`)"));
        }
    }
    for key in ["attention_bias", "mlp_bias"] {
        if f.bool(key)? == Some(true) {
            return Err(format!(
                "`{key}: true` is not supported (LLaMA projections have no bias)"
            ));
        }
    }
    let config = LlamaConfig {
        vocab_size,
        hidden_size,
        intermediate_size,
        num_layers,
        num_heads,
        num_kv_heads,
        head_dim,
        rms_norm_eps: f.positive("rms_norm_eps")?.unwrap_or(1e-6) as f32,
        rope_theta: f.positive("rope_theta")?.unwrap_or(10000.0),
        rope_scaling: parse_rope_scaling(f)?,
        tie_word_embeddings: f.bool("tie_word_embeddings")?.unwrap_or(false),
    };
    limits::check_llama(&config, &limits::CONFIG_JSON)?;
    Ok(config)
}

/// `rope_scaling`: absent, `null` or type `default` → none; `llama3` → its four parameters; anything else is
/// refused rather than silently run with the wrong positions.
fn parse_rope_scaling(f: &Fields) -> Result<Option<Llama3Scaling>, String> {
    let rs = match f.get("rope_scaling") {
        None => return Ok(None),
        Some(Value::Object(rs)) => Fields {
            obj: rs,
            prefix: "rope_scaling.",
        },
        Some(other) => return Err(format!("field `rope_scaling` must be an object or null, found {other}")),
    };
    let kind = match rs.str("rope_type")? {
        Some(k) => Some(k),
        None => rs.str("type")?,
    };
    match kind {
        None | Some("default") => Ok(None),
        Some("llama3") => {
            let req = |key: &str| {
                rs.positive(key)?
                    .ok_or_else(|| format!("missing field `rope_scaling.{key}` (rope_type llama3)"))
            };
            let s = Llama3Scaling {
                factor: req("factor")?,
                low_freq_factor: req("low_freq_factor")?,
                high_freq_factor: req("high_freq_factor")?,
                original_max_position_embeddings: req("original_max_position_embeddings")?,
            };
            if s.high_freq_factor <= s.low_freq_factor {
                return Err(format!(
                    "rope_scaling.high_freq_factor ({}) must exceed rope_scaling.low_freq_factor ({})",
                    s.high_freq_factor, s.low_freq_factor
                ));
            }
            Ok(Some(s))
        }
        Some(other) => Err(format!(
            "rope_scaling type `{other}` is not supported (only `default` and `llama3`)"
        )),
    }
}

fn parse_armt(f: &Fields) -> Result<ArmtParams, String> {
    let armt = ArmtParams {
        num_mem_tokens: f.required("num_mem_tokens", Fields::usize)?,
        d_mem: f.required("d_mem", Fields::usize)?,
        segment_size: f.required("segment_size", Fields::usize)?,
        nu: f.usize("nu")?.unwrap_or(3),
        correction: f.bool("correction")?.unwrap_or(true),
    };
    validate_armt(&armt, "field `armt.")?;
    limits::check_armt(&armt, &limits::ARMT_JSON)?;
    Ok(armt)
}

/// Every ARMT size must be at least 1; `label` names the field in the message (`field \`armt.`, …).
fn validate_armt(a: &ArmtParams, label: &str) -> Result<(), String> {
    let sizes = [
        ("num_mem_tokens", a.num_mem_tokens),
        ("d_mem", a.d_mem),
        ("segment_size", a.segment_size),
        ("nu", a.nu),
    ];
    match sizes.iter().find(|(_, v)| *v == 0) {
        Some((key, _)) => Err(format!("{label}{key}` must be at least 1")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets;

    #[test]
    fn to_json_reads_back_to_the_same_config() {
        for c in [
            presets::tiny(true),
            presets::small(),
            presets::llama_3_2_1b(presets::armt(1024, 128, 64)),
        ] {
            let text = c.to_json().to_string();
            let back = ConfigFile::parse(&text, Path::new("config.json"))
                .unwrap()
                .model_config(None)
                .unwrap();
            assert_eq!(back, c);
        }
    }
}
