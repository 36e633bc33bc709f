//! A llama.cpp LLaMA GGUF → [`Model`]: the config from the `llama.*` metadata, the backbone tensors under
//! their llama.cpp names dequantised to f32 (`attn_q`/`attn_k` rows put back in Hugging Face order), and the
//! ARMT memory — which no GGUF file has — initialised from `LoadOptions::armt_init`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::metadata::MetaValue;
use super::permute::unpermute_rows;
use super::reader::GgufFile;
use crate::armt_init::init_armt;
use crate::config::{ConfigFile, LlamaConfig, ModelConfig};
use crate::error::FormatError;
use crate::load::{expected_shape, LoadOptions, Model};
use crate::names::{LayerTensor, NameLayout, TensorId};
use crate::weights::{LayerWeights, Weights};

/// The only `general.architecture` this loader maps.
pub const ARCHITECTURE: &str = "llama";

/// The tensor that carries llama3-style RoPE frequency factors in a GGUF file.
const ROPE_FREQS: &str = "rope_freqs.weight";

/// The llama.cpp name of a model tensor; `None` for the ARMT tensors, which GGUF files do not have.
pub fn tensor_name(id: TensorId) -> Option<String> {
    let layer_key = |t: LayerTensor| -> Option<&'static str> {
        Some(match t {
            LayerTensor::InputNorm => "attn_norm",
            LayerTensor::Q => "attn_q",
            LayerTensor::K => "attn_k",
            LayerTensor::V => "attn_v",
            LayerTensor::O => "attn_output",
            LayerTensor::PostNorm => "ffn_norm",
            LayerTensor::Gate => "ffn_gate",
            LayerTensor::Up => "ffn_up",
            LayerTensor::Down => "ffn_down",
            _ => return None,
        })
    };
    match id {
        TensorId::Embed => Some("token_embd.weight".into()),
        TensorId::Norm => Some("output_norm.weight".into()),
        TensorId::LmHead => Some("output.weight".into()),
        TensorId::Layer(i, t) => layer_key(t).map(|k| format!("blk.{i}.{k}.weight")),
        TensorId::Memory => None,
    }
}

/// The backbone config from the metadata of a `general.architecture = "llama"` file. Tied embeddings are
/// inferred from the absence of `output.weight`, as llama.cpp does.
pub fn llama_config(file: &GgufFile) -> Result<LlamaConfig, FormatError> {
    let meta = Meta { file };
    let arch = meta
        .get("general.architecture")
        .ok_or_else(|| meta.error("missing `general.architecture`".into()))?;
    match arch.as_str() {
        Some(ARCHITECTURE) => {}
        Some(other) => {
            return Err(meta.error(format!(
                "architecture `{other}` is not supported (only `{ARCHITECTURE}`)"
            )))
        }
        None => return Err(meta.error(format!("`general.architecture` must be a string, found {arch}"))),
    }
    if let Some(experts) = meta.usize("llama.expert_count")? {
        if experts > 0 {
            return Err(meta.error(format!(
                "mixture of experts (llama.expert_count = {experts}) is not supported"
            )));
        }
    }
    let hidden_size = meta.size("llama.embedding_length")?;
    let num_heads = meta.size("llama.attention.head_count")?;
    let num_kv_heads = meta.usize("llama.attention.head_count_kv")?.unwrap_or(num_heads);
    if num_kv_heads == 0 || !num_heads.is_multiple_of(num_kv_heads) {
        return Err(meta.error(format!(
            "llama.attention.head_count ({num_heads}) must be a multiple of llama.attention.head_count_kv \
             ({num_kv_heads})"
        )));
    }
    let head_dim = head_dim(&meta, hidden_size, num_heads)?;
    let vocab_size = match meta.usize("llama.vocab_size")? {
        Some(v) => v,
        None => meta
            .get("tokenizer.ggml.tokens")
            .and_then(MetaValue::as_array)
            .map(<[MetaValue]>::len)
            .ok_or_else(|| meta.error("neither `llama.vocab_size` nor `tokenizer.ggml.tokens` is present".into()))?,
    };
    if vocab_size == 0 {
        return Err(meta.error("the vocabulary is empty".into()));
    }
    Ok(LlamaConfig {
        vocab_size,
        hidden_size,
        intermediate_size: meta.size("llama.feed_forward_length")?,
        num_layers: meta.size("llama.block_count")?,
        num_heads,
        num_kv_heads,
        head_dim,
        rms_norm_eps: meta.positive("llama.attention.layer_norm_rms_epsilon")?.unwrap_or(1e-5) as f32,
        rope_theta: meta.positive("llama.rope.freq_base")?.unwrap_or(10000.0),
        rope_scaling: rope_scaling(&meta)?,
        tie_word_embeddings: file.tensor("output.weight").is_none(),
    })
}

/// `llama.attention.key_length` or hidden/heads; RoPE must rotate all of it and values must have its width.
fn head_dim(meta: &Meta, hidden_size: usize, num_heads: usize) -> Result<usize, FormatError> {
    let head_dim = match meta.usize("llama.attention.key_length")? {
        Some(hd) => hd,
        None if hidden_size.is_multiple_of(num_heads) => hidden_size / num_heads,
        None => {
            return Err(meta.error(format!(
                "no `llama.attention.key_length` and llama.embedding_length ({hidden_size}) is not a multiple of \
                 llama.attention.head_count ({num_heads})"
            )))
        }
    };
    if head_dim == 0 || !head_dim.is_multiple_of(2) {
        return Err(meta.error(format!(
            "the head dimension must be even and at least 2 (RoPE rotates pairs), found {head_dim}"
        )));
    }
    for key in ["llama.attention.value_length", "llama.rope.dimension_count"] {
        if let Some(n) = meta.usize(key)? {
            if n != head_dim {
                return Err(meta.error(format!(
                    "`{key}` = {n} differs from the head dimension {head_dim} (not supported)"
                )));
            }
        }
    }
    Ok(head_dim)
}

/// Absent or `none` → no scaling. llama3 scaling is stored as the `rope_freqs.weight` tensor, which the model
/// cannot take yet; other kinds (linear, yarn, …) are refused rather than run with the wrong positions.
fn rope_scaling(meta: &Meta) -> Result<Option<crate::config::Llama3Scaling>, FormatError> {
    if meta.file.tensor(ROPE_FREQS).is_some() {
        return Err(meta.error(format!(
            "llama3 RoPE scaling (tensor `{ROPE_FREQS}`) is not supported yet"
        )));
    }
    match meta.get("llama.rope.scaling.type") {
        None => Ok(None),
        Some(v) => match v.as_str() {
            Some("none") => Ok(None),
            Some(kind) => Err(meta.error(format!(
                "RoPE scaling type `{kind}` (llama.rope.scaling.type) is not supported"
            ))),
            None => Err(meta.error(format!("`llama.rope.scaling.type` must be a string, found {v}"))),
        },
    }
}

/// Loads a LLaMA GGUF file. GGUF has no ARMT tensors, so `opts` must give `armt_init` (the seed) and
/// `armt_params` (segment size, memory tokens, d_mem).
pub fn load_gguf(path: &Path, opts: &LoadOptions) -> Result<Model, FormatError> {
    let file = GgufFile::open(path)?;
    let llama = llama_config(&file)?;
    let Some(seed) = opts.armt_init else {
        return Err(FormatError::NoArmtTensors {
            path: path.to_path_buf(),
        });
    };
    let Some(params) = opts.armt_params else {
        return Err(FormatError::Config {
            path: path.to_path_buf(),
            msg: "a GGUF file has no ARMT parameters: give them with --armt-init SEED --segment-size T \
                  --mem-tokens M --d-mem D"
                .into(),
        });
    };
    // The same validation as for a config.json without an `armt` object.
    let config = ConfigFile {
        path: path.to_path_buf(),
        llama,
        armt: None,
    }
    .model_config(Some(params))?;
    refuse_biases(&file)?;
    let mut reader = Reader {
        file: &file,
        config: &config,
        used: BTreeSet::new(),
    };
    // Every tensor is looked up before anything is allocated from the metadata's sizes: a corrupt block count
    // stops at the first missing layer instead of allocating for it.
    reader.check_present()?;

    let embed = reader.read(TensorId::Embed)?;
    let lm_head = match config.llama.tie_word_embeddings {
        true => None,
        false => Some(reader.read(TensorId::LmHead)?),
    };
    let (init, memory) = init_armt(
        seed,
        config.llama.num_layers,
        config.llama.hidden_size,
        config.armt.d_mem,
        config.armt.num_mem_tokens,
        &embed,
    );
    let mut layers = Vec::with_capacity(config.llama.num_layers);
    for (i, init) in init.into_iter().enumerate() {
        let mut layer = LayerWeights::read_backbone(|t| reader.read(TensorId::Layer(i, t)))?;
        init.apply(&mut layer);
        layers.push(layer);
    }
    let norm = reader.read(TensorId::Norm)?;
    let unused_tensors = file
        .tensors()
        .iter()
        .map(|t| t.name.clone())
        .filter(|n| !reader.used.contains(n))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    Ok(Model {
        weights: Weights {
            embed,
            layers,
            norm,
            lm_head,
            memory,
        },
        config,
        layout: NameLayout::Gguf,
        unused_tensors,
        armt_initialised: true,
    })
}

/// LLaMA projections have no bias; a file with attention biases is another model, not one to run without them.
fn refuse_biases(file: &GgufFile) -> Result<(), FormatError> {
    let bias = file
        .tensors()
        .iter()
        .find(|t| t.name.starts_with("blk.") && t.name.contains(".attn_") && t.name.ends_with(".bias"));
    match bias {
        None => Ok(()),
        Some(t) => Err(FormatError::Config {
            path: file.path().to_path_buf(),
            msg: format!(
                "tensor `{}`: attention biases are not supported (LLaMA has none)",
                t.name
            ),
        }),
    }
}

/// Reads tensors by [`TensorId`], shape-checked, remembering which names it consumed.
struct Reader<'a> {
    file: &'a GgufFile,
    config: &'a ModelConfig,
    used: BTreeSet<String>,
}

impl Reader<'_> {
    /// Every backbone tensor the config calls for, in loading order.
    fn backbone(&self) -> impl Iterator<Item = TensorId> {
        let c = self.config;
        let head = (!c.llama.tie_word_embeddings).then_some(TensorId::LmHead);
        let layers = (0..c.llama.num_layers).flat_map(|i| LayerTensor::BACKBONE.map(|t| TensorId::Layer(i, t)));
        [TensorId::Embed]
            .into_iter()
            .chain(head)
            .chain(layers)
            .chain([TensorId::Norm])
    }

    /// The first backbone tensor absent from the file, as [`FormatError::MissingTensor`].
    fn check_present(&self) -> Result<(), FormatError> {
        for id in self.backbone() {
            let name = tensor_name(id).unwrap_or_default();
            if self.file.tensor(&name).is_none() {
                return Err(FormatError::MissingTensor {
                    path: self.file.path().to_path_buf(),
                    name,
                    layout: NameLayout::Gguf,
                });
            }
        }
        Ok(())
    }

    fn read(&mut self, id: TensorId) -> Result<Vec<f32>, FormatError> {
        let path = || self.file.path().to_path_buf();
        let name = tensor_name(id).unwrap_or_default();
        let shape = expected_shape(id, self.config);
        let data = self.file.read_f32_shaped(&name, &shape)?;
        let n_head = match id {
            TensorId::Layer(_, LayerTensor::Q) => Some(self.config.llama.num_heads),
            TensorId::Layer(_, LayerTensor::K) => Some(self.config.llama.num_kv_heads),
            _ => None,
        };
        let data = match n_head {
            // The shape was checked: [n_head · head_dim, hidden] with an even head_dim, so this succeeds.
            Some(n) => unpermute_rows(&data, n, self.config.llama.hidden_size).ok_or_else(|| FormatError::Gguf {
                path: path(),
                msg: format!("tensor `{name}` does not split into {n} heads"),
            })?,
            None => data,
        };
        self.used.insert(name);
        Ok(data)
    }
}

/// Typed, required-or-optional access to the metadata; errors name the file and the key.
struct Meta<'a> {
    file: &'a GgufFile,
}

impl Meta<'_> {
    fn get(&self, key: &str) -> Option<&MetaValue> {
        self.file.meta(key)
    }

    fn error(&self, msg: String) -> FormatError {
        FormatError::Config {
            path: self.path(),
            msg: format!("GGUF metadata: {msg}"),
        }
    }

    fn path(&self) -> PathBuf {
        self.file.path().to_path_buf()
    }

    fn usize(&self, key: &str) -> Result<Option<usize>, FormatError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        v.as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| self.error(format!("`{key}` must be a non-negative integer, found {v}")))
    }

    /// A required size of at least 1.
    fn size(&self, key: &str) -> Result<usize, FormatError> {
        match self.usize(key)? {
            None => Err(self.error(format!("missing `{key}`"))),
            Some(0) => Err(self.error(format!("`{key}` must be at least 1"))),
            Some(n) => Ok(n),
        }
    }

    /// A number that must be finite and positive when present.
    fn positive(&self, key: &str) -> Result<Option<f64>, FormatError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        match v.as_f64() {
            Some(x) if x.is_finite() && x > 0.0 => Ok(Some(x)),
            _ => Err(self.error(format!("`{key}` must be a positive number, found {v}"))),
        }
    }
}
