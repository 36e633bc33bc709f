//! A model path → [`Model`], the f32 host weights the CPU backend runs (through [`ModelSource`], which also feeds
//! the GPU upload), and the shapes a config implies for every tensor.

use std::path::{Path, PathBuf};

use crate::config::{ArmtParams, ModelConfig};
use crate::error::FormatError;
use crate::names::{LayerTensor, NameLayout, TensorId};
use crate::source::ModelSource;
use crate::weights::Weights;

/// The config file every model directory has.
pub const CONFIG_FILE: &str = "config.json";

/// What the caller adds to what the model directory says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Initialise the ARMT memory from this seed (`--armt-init SEED`); only for checkpoints without ARMT tensors
    /// (one with them is refused: the seed would discard trained memory).
    pub armt_init: Option<u64>,
    /// The seed for a checkpoint without ARMT tensors when `armt_init` is not given, ignored for one with them. The
    /// CLI passes 0, so that a plain LLaMA checkpoint runs as it is (untrained memory, as the original initialises
    /// it); `None` refuses such a checkpoint ([`FormatError::NoArmtTensors`](crate::FormatError::NoArmtTensors)).
    pub armt_init_when_missing: Option<u64>,
    /// ARMT parameters for a `config.json` without an `armt` object (ignored when it has one).
    pub armt_params: Option<ArmtParams>,
    /// A trained ARMT memory to apply on top of a GGUF backbone (`--armt FILE`, see [`crate::armt_file`]); its
    /// metadata gives the ARMT parameters, and it must have been trained on this very GGUF file (sha256).
    pub armt_file: Option<PathBuf>,
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
    /// The seed the ARMT memory was initialised from (`LoadOptions::armt_init`, or `armt_init_when_missing` for a
    /// plain LLaMA checkpoint); `None` when it was loaded (trained).
    pub armt_seed: Option<u64>,
}

impl Model {
    /// A one-line warning listing the unused checkpoint tensors, if there are any.
    pub fn unused_tensors_warning(&self) -> Option<String> {
        unused_tensors_warning(&self.unused_tensors)
    }
}

/// A one-line warning listing `unused` checkpoint tensors, if there are any.
pub fn unused_tensors_warning(unused: &[String]) -> Option<String> {
    const SHOWN: usize = 8;
    let n = unused.len();
    if n == 0 {
        return None;
    }
    let shown: Vec<&str> = unused.iter().take(SHOWN).map(String::as_str).collect();
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

/// Loads the model at `path` into f32 host weights (the CPU backend's form): a directory with `config.json` plus
/// safetensors, or a LLaMA GGUF file, which needs `opts.armt_init` and `opts.armt_params` (see
/// [`ModelSource::open`]).
pub fn load_model(path: &Path, opts: &LoadOptions) -> Result<Model, FormatError> {
    ModelSource::open(path, opts)?.load()
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
