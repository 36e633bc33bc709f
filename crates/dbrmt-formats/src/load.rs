//! A model directory → [`Model`]: config, checkpoint tensors in either name layout, shapes checked against the
//! config, and the ARMT memory loaded or (for a plain LLaMA checkpoint) initialised from a seed.

use std::collections::BTreeSet;
use std::path::Path;

use crate::armt_init::init_armt;
use crate::checkpoint::Checkpoint;
use crate::config::{ArmtParams, ConfigFile, ModelConfig};
use crate::error::FormatError;
use crate::names::{LayerTensor, NameLayout, TensorId};
use crate::weights::{LayerWeights, Weights};

/// The config file every model directory has.
pub const CONFIG_FILE: &str = "config.json";

/// What the caller adds to what the model directory says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Initialise the ARMT memory from this seed (`--armt-init SEED`); only for checkpoints without ARMT tensors.
    pub armt_init: Option<u64>,
    /// ARMT parameters for a `config.json` without an `armt` object (ignored when it has one).
    pub armt_params: Option<ArmtParams>,
}

/// A loaded model: its config and f32 host weights, and how the checkpoint was read.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub config: ModelConfig,
    pub weights: Weights,
    /// The tensor-name layout found in the checkpoint.
    pub layout: NameLayout,
    /// Checkpoint tensors the model does not use (e.g. rotary `inv_freq` buffers), sorted; worth a warning.
    pub unused_tensors: Vec<String>,
    /// Whether the ARMT memory was initialised from `LoadOptions::armt_init` rather than loaded.
    pub armt_initialised: bool,
}

impl Model {
    /// A one-line warning listing the unused checkpoint tensors, if there are any.
    pub fn unused_tensors_warning(&self) -> Option<String> {
        const SHOWN: usize = 8;
        let n = self.unused_tensors.len();
        if n == 0 {
            return None;
        }
        let shown: Vec<&str> = self.unused_tensors.iter().take(SHOWN).map(String::as_str).collect();
        let more = if n > SHOWN {
            format!(", and {} more", n - SHOWN)
        } else {
            String::new()
        };
        Some(format!(
            "{n} checkpoint tensor(s) not used by the model: {}{more}",
            shown.join(", ")
        ))
    }
}

/// Loads the model at `dir`: a directory with `config.json` plus safetensors (see [`Checkpoint::open`]), or a
/// LLaMA GGUF file — given as the file or as a directory whose only weights are one `*.gguf` file — which needs
/// `opts.armt_init` and `opts.armt_params` (see [`crate::gguf::load_gguf`]).
pub fn load_model(dir: &Path, opts: &LoadOptions) -> Result<Model, FormatError> {
    if let Some(gguf) = crate::gguf::gguf_path(dir)? {
        return crate::gguf::load_gguf(&gguf, opts);
    }
    let config = ConfigFile::read(&dir.join(CONFIG_FILE))?.model_config(opts.armt_params)?;
    let checkpoint = Checkpoint::open(dir)?;
    let layout = NameLayout::detect(checkpoint.names());
    let mut reader = Reader {
        checkpoint: &checkpoint,
        layout,
        config: &config,
        used: BTreeSet::new(),
    };

    // Decide how the memory is obtained before reading anything large.
    let mut armt_found = 0;
    for id in TensorId::armt_tensors(config.llama.num_layers) {
        armt_found += usize::from(reader.locate(id)?.is_some());
    }
    let initialise = match (armt_found, opts.armt_init) {
        (0, None) => {
            return Err(FormatError::NoArmtTensors {
                path: dir.to_path_buf(),
            })
        }
        (0, Some(seed)) => Some(seed),
        (_, Some(_)) => {
            return Err(FormatError::ArmtInitConflict {
                path: dir.to_path_buf(),
            })
        }
        // Some but not all present: reading them names the first missing one.
        (_, None) => None,
    };

    let (embed, lm_head) = reader.embedding_and_head()?;
    let mut layers = Vec::with_capacity(config.llama.num_layers);
    for i in 0..config.llama.num_layers {
        use LayerTensor as T;
        let mut read = |t: LayerTensor| reader.read(TensorId::Layer(i, t));
        // memory tensors: from the checkpoint here, or from the seed below once the embedding is known
        let mut layer = LayerWeights::read_backbone(&mut read)?;
        if initialise.is_none() {
            layer.mem_q = read(T::MemQ)?;
            layer.mem_k = read(T::MemK)?;
            layer.mem_v = read(T::MemV)?;
            layer.mem_beta = read(T::MemBeta)?;
            // Shape [1] was checked, so there is exactly one value.
            layer.mem_beta_bias = read(T::MemBetaBias)?.first().copied().unwrap_or_default();
        }
        layers.push(layer);
    }
    let norm = reader.read(TensorId::Norm)?;
    let memory = match initialise {
        None => reader.read(TensorId::Memory)?,
        Some(seed) => {
            let armt = &config.armt;
            let (init, memory) = init_armt(
                seed,
                config.llama.num_layers,
                config.llama.hidden_size,
                armt.d_mem,
                armt.num_mem_tokens,
                &embed,
            );
            for (layer, init) in layers.iter_mut().zip(init) {
                init.apply(layer);
            }
            memory
        }
    };

    let unused_tensors = checkpoint
        .names()
        .filter(|n| !reader.used.contains(*n))
        .map(String::from)
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
        layout,
        unused_tensors,
        armt_initialised: initialise.is_some(),
    })
}

/// The shape `config.json` implies for a tensor (`nn.Linear` weights are `[out, in]`).
pub fn expected_shape(id: TensorId, c: &ModelConfig) -> Vec<usize> {
    let (d, v, i) = (c.llama.hidden_size, c.llama.vocab_size, c.llama.intermediate_size);
    match id {
        TensorId::Embed | TensorId::LmHead => vec![v, d],
        TensorId::Norm => vec![d],
        TensorId::Memory => vec![c.armt.num_mem_tokens, d],
        TensorId::Layer(_, t) => match t {
            LayerTensor::InputNorm | LayerTensor::PostNorm => vec![d],
            LayerTensor::Q => vec![c.llama.q_dim(), d],
            LayerTensor::K | LayerTensor::V => vec![c.llama.kv_dim(), d],
            LayerTensor::O => vec![d, c.llama.q_dim()],
            LayerTensor::Gate | LayerTensor::Up => vec![i, d],
            LayerTensor::Down => vec![d, i],
            LayerTensor::MemQ | LayerTensor::MemK => vec![c.armt.d_mem, d],
            LayerTensor::MemV => vec![d, d],
            LayerTensor::MemBeta => vec![1, d],
            LayerTensor::MemBetaBias => vec![1],
        },
    }
}

/// Reads tensors by [`TensorId`] in one layout, remembering which checkpoint names it consumed.
struct Reader<'a> {
    checkpoint: &'a Checkpoint,
    layout: NameLayout,
    config: &'a ModelConfig,
    used: BTreeSet<String>,
}

impl Reader<'_> {
    /// The checkpoint name holding `id`, if any. When a file holds both aliases of a layer tensor they must be
    /// identical (the original loads either, so differing copies make the checkpoint ambiguous).
    fn locate(&self, id: TensorId) -> Result<Option<String>, FormatError> {
        let mut present = self
            .layout
            .candidates(id)
            .into_iter()
            .filter(|n| self.checkpoint.contains(n));
        let Some(first) = present.next() else {
            return Ok(None);
        };
        for other in present {
            let kind = |n: &str| self.checkpoint.entry(n).map(|e| (e.dtype, e.shape.clone()));
            let same = kind(&first) == kind(&other) && self.checkpoint.bytes(&first) == self.checkpoint.bytes(&other);
            if !same {
                return Err(FormatError::Checkpoint {
                    path: self.checkpoint.path_of(&other).to_path_buf(),
                    msg: format!("`{first}` and its alias `{other}` differ"),
                });
            }
        }
        Ok(Some(first))
    }

    /// Marks every alias of `id` as used.
    fn mark_used(&mut self, id: TensorId) {
        for name in self.layout.candidates(id) {
            if self.checkpoint.contains(&name) {
                self.used.insert(name);
            }
        }
    }

    /// Reads `id` with its shape checked; absent → [`FormatError::MissingTensor`].
    fn read(&mut self, id: TensorId) -> Result<Vec<f32>, FormatError> {
        self.read_as(id, id)
    }

    /// Reads the tensor stored as `stored` with the shape `id` must have (a tied head stored only as
    /// `lm_head` is read as the embedding).
    fn read_as(&mut self, stored: TensorId, id: TensorId) -> Result<Vec<f32>, FormatError> {
        let Some(name) = self.locate(stored)? else {
            return Err(FormatError::MissingTensor {
                path: self.checkpoint.dir().to_path_buf(),
                name: self.layout.name(stored),
                layout: self.layout,
            });
        };
        let data = self
            .checkpoint
            .read_f32_shaped(&name, &expected_shape(id, self.config))?;
        self.mark_used(stored);
        Ok(data)
    }

    /// The embedding and, when untied, the LM head. A tied model may store its one matrix under either name
    /// (`safetensors.torch.save_model` keeps `lm_head`); a stored tied head is accepted and ignored.
    fn embedding_and_head(&mut self) -> Result<(Vec<f32>, Option<Vec<f32>>), FormatError> {
        if !self.config.llama.tie_word_embeddings {
            return Ok((self.read(TensorId::Embed)?, Some(self.read(TensorId::LmHead)?)));
        }
        let embed_stored = self.locate(TensorId::Embed)?.is_some();
        let head_stored = self.locate(TensorId::LmHead)?.is_some();
        let embed = if !embed_stored && head_stored {
            self.read_as(TensorId::LmHead, TensorId::Embed)?
        } else {
            self.read(TensorId::Embed)?
        };
        self.mark_used(TensorId::LmHead);
        Ok((embed, None))
    }
}
