//! The one error type of this crate: every bad input becomes one of these, never a panic.

use std::path::PathBuf;

/// Why a tokenizer could not be built, or could not encode or decode.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A key the tokenizer needs is absent from the GGUF metadata.
    #[error("tokenizer metadata missing: {key}")]
    MissingMetadata { key: String },
    /// A GGUF metadata key is present but holds the wrong type or an impossible value.
    #[error("tokenizer metadata {key}: {msg}")]
    BadMetadata { key: String, msg: String },
    /// `tokenizer.ggml.model` names a tokenizer family this crate does not build.
    #[error(
        "unsupported tokenizer model `{model}` in tokenizer.ggml.model: only `gpt2` (byte-level BPE) is supported"
    )]
    UnsupportedModel { model: String },
    /// The GGUF file itself could not be read.
    #[error("reading the GGUF file: {0}")]
    Gguf(#[from] dbrmt_formats::FormatError),
    /// A file next to the model (`tokenizer.json`, `tokenizer_config.json`) is absent or unreadable.
    #[error("{path}: {msg}")]
    File { path: PathBuf, msg: String },
    /// `Tokenizer::for_model` found neither GGUF metadata nor a `tokenizer.json` for this path.
    #[error("{path}: no tokenizer found (expected a .gguf file, or a tokenizer.json in the model directory)")]
    NotFound { path: PathBuf },
    /// The `tokenizers` library refused the vocabulary, the merges, or an input.
    #[error("tokenizer: {0}")]
    Library(String),
    /// A token id to decode is not in the vocabulary.
    #[error("token id {id} is outside the vocabulary (size {vocab_size})")]
    IdOutOfRange { id: u32, vocab_size: usize },
    /// The tokenizer can produce ids the model's vocabulary does not have.
    #[error(
        "the tokenizer's ids go up to {tokenizer} but the model's vocabulary has {model} ids: they do not belong \
         together"
    )]
    VocabMismatch { tokenizer: usize, model: usize },
    /// The model has no chat template and `--chat` asked for one.
    #[error("the model has no chat template (tokenizer.chat_template); drop --chat")]
    NoChatTemplate,
    /// The model's chat template is not one of the forms this crate renders without a Jinja engine.
    #[error("unsupported chat template (only ChatML, as SmolLM2 and Qwen write it, is rendered): {excerpt}")]
    UnsupportedChatTemplate { excerpt: String },
}

impl TokenizerError {
    /// Wraps an error of the `tokenizers` crate (a boxed `dyn Error`) with what was being done.
    pub(crate) fn library(what: &str, e: impl std::fmt::Display) -> Self {
        TokenizerError::Library(format!("{what}: {e}"))
    }
}
