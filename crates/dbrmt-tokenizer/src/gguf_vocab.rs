//! The tokenizer a GGUF file describes under `tokenizer.ggml.*`, read and checked.

use std::collections::BTreeMap;

use crate::gguf::MetaValue;
use crate::TokenizerError;

/// The GGUF metadata keys this crate reads.
pub(crate) mod keys {
    pub const MODEL: &str = "tokenizer.ggml.model";
    pub const PRE: &str = "tokenizer.ggml.pre";
    pub const TOKENS: &str = "tokenizer.ggml.tokens";
    pub const TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
    pub const MERGES: &str = "tokenizer.ggml.merges";
    pub const BOS: &str = "tokenizer.ggml.bos_token_id";
    pub const EOS: &str = "tokenizer.ggml.eos_token_id";
    pub const PAD: &str = "tokenizer.ggml.padding_token_id";
    pub const UNK: &str = "tokenizer.ggml.unknown_token_id";
    pub const ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
    pub const ADD_EOS: &str = "tokenizer.ggml.add_eos_token";
    pub const ADD_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";
    pub const CHAT_TEMPLATE: &str = "tokenizer.chat_template";
}

/// `tokenizer.ggml.model` of a byte-level BPE (GPT-2 family) vocabulary.
const BYTE_LEVEL_BPE: &str = "gpt2";

/// `tokenizer.ggml.pre` values for which Hugging Face's GGUF loader splits with the plain GPT-2 regex, as this
/// crate does. llama.cpp's `smollm` also splits off each digit first, which differs only on a whitespace run
/// before a digit (HF is followed). Pre-tokenizers with their own regex (llama3, qwen2, …) are refused rather
/// than tokenised another way.
const SUPPORTED_PRE: &[&str] = &["default", "gpt-2", "smollm"];

/// `tokenizer.ggml.token_type` of a control token (llama.cpp's `LLAMA_TOKEN_TYPE_CONTROL`).
const TOKEN_TYPE_CONTROL: i64 = 3;
/// `tokenizer.ggml.token_type` of a user-defined token (`LLAMA_TOKEN_TYPE_USER_DEFINED`, e.g. `<think>`).
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// A byte-level BPE vocabulary with its special tokens and options, as the GGUF metadata states them.
#[derive(Debug, Clone)]
pub(crate) struct GgufVocab {
    /// Token strings in GPT-2's byte-level spelling; a token's id is its index.
    pub tokens: Vec<String>,
    /// Merges in rank order, each a pair of token strings.
    pub merges: Vec<(String, String)>,
    /// Ids of the control tokens (special: matched whole in the input, never split by BPE).
    pub control_ids: Vec<u32>,
    /// Ids of the user-defined tokens (not special, but matched whole too).
    pub user_defined_ids: Vec<u32>,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub pad_id: Option<u32>,
    pub unk_id: Option<u32>,
    pub add_bos: bool,
    pub add_eos: bool,
    /// Prepend a space to the text before the split (`tokenizer.ggml.add_space_prefix`).
    pub add_space_prefix: bool,
    pub chat_template: Option<String>,
}

impl GgufVocab {
    /// Reads `tokenizer.ggml.*` and `tokenizer.chat_template` from a GGUF file's metadata.
    pub fn from_metadata(meta: &BTreeMap<String, MetaValue>) -> Result<Self, TokenizerError> {
        let model = required_str(meta, keys::MODEL)?;
        if model != BYTE_LEVEL_BPE {
            return Err(TokenizerError::UnsupportedModel {
                model: model.to_string(),
            });
        }
        let pre = optional_str(meta, keys::PRE)?.unwrap_or("default");
        if !SUPPORTED_PRE.contains(&pre) {
            return Err(bad(
                keys::PRE,
                format!(
                    "pre-tokenizer `{pre}` is not supported (supported: {})",
                    SUPPORTED_PRE.join(", ")
                ),
            ));
        }
        let tokens = string_array(meta, keys::TOKENS)?;
        if tokens.is_empty() {
            return Err(bad(keys::TOKENS, "the vocabulary is empty"));
        }
        if u32::try_from(tokens.len()).is_err() {
            return Err(bad(keys::TOKENS, format!("{} tokens do not fit u32 ids", tokens.len())));
        }
        let merges = string_array(meta, keys::MERGES)?
            .into_iter()
            .enumerate()
            .map(|(rank, m)| split_merge(rank, &m))
            .collect::<Result<Vec<_>, _>>()?;

        let id = |key: &str| optional_id(meta, key, tokens.len());
        let (bos_id, eos_id, pad_id, unk_id) = (id(keys::BOS)?, id(keys::EOS)?, id(keys::PAD)?, id(keys::UNK)?);
        // Without token types, no token is matched whole (as in Hugging Face's loader).
        let (control_ids, user_defined_ids) = match meta.get(keys::TOKEN_TYPE) {
            Some(types) => (
                ids_of_type(types, tokens.len(), TOKEN_TYPE_CONTROL)?,
                ids_of_type(types, tokens.len(), TOKEN_TYPE_USER_DEFINED)?,
            ),
            None => (Vec::new(), Vec::new()),
        };

        Ok(GgufVocab {
            tokens,
            merges,
            control_ids,
            user_defined_ids,
            bos_id,
            eos_id,
            pad_id,
            unk_id,
            // llama.cpp's defaults for a byte-level vocabulary when the keys are absent.
            add_bos: optional_bool(meta, keys::ADD_BOS)?.unwrap_or(false),
            add_eos: optional_bool(meta, keys::ADD_EOS)?.unwrap_or(false),
            add_space_prefix: optional_bool(meta, keys::ADD_SPACE_PREFIX)?.unwrap_or(false),
            chat_template: optional_str(meta, keys::CHAT_TEMPLATE)?.map(str::to_string),
        })
    }
}

fn missing(key: &str) -> TokenizerError {
    TokenizerError::MissingMetadata { key: key.to_string() }
}

fn bad(key: &str, msg: impl Into<String>) -> TokenizerError {
    TokenizerError::BadMetadata {
        key: key.to_string(),
        msg: msg.into(),
    }
}

fn required_str<'m>(meta: &'m BTreeMap<String, MetaValue>, key: &str) -> Result<&'m str, TokenizerError> {
    optional_str(meta, key)?.ok_or_else(|| missing(key))
}

fn optional_str<'m>(meta: &'m BTreeMap<String, MetaValue>, key: &str) -> Result<Option<&'m str>, TokenizerError> {
    meta.get(key)
        .map(|v| v.as_str().ok_or_else(|| bad(key, "expected a string")))
        .transpose()
}

fn optional_bool(meta: &BTreeMap<String, MetaValue>, key: &str) -> Result<Option<bool>, TokenizerError> {
    meta.get(key)
        .map(|v| v.as_bool().ok_or_else(|| bad(key, "expected a bool")))
        .transpose()
}

fn optional_id(meta: &BTreeMap<String, MetaValue>, key: &str, vocab: usize) -> Result<Option<u32>, TokenizerError> {
    let Some(v) = meta.get(key) else {
        return Ok(None);
    };
    let id = v.as_u64().ok_or_else(|| bad(key, "expected a non-negative integer"))?;
    match u32::try_from(id) {
        Ok(id) if (id as usize) < vocab => Ok(Some(id)),
        _ => Err(bad(
            key,
            format!("token id {id} is outside the vocabulary (size {vocab})"),
        )),
    }
}

fn string_array(meta: &BTreeMap<String, MetaValue>, key: &str) -> Result<Vec<String>, TokenizerError> {
    let items = meta
        .get(key)
        .ok_or_else(|| missing(key))?
        .as_array()
        .ok_or_else(|| bad(key, "expected an array of strings"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| bad(key, format!("element {i} is not a string")))
        })
        .collect()
}

/// A GGUF merge is `"left right"`: byte-level tokens never hold a space (it is spelled `Ġ`), so exactly one.
fn split_merge(rank: usize, merge: &str) -> Result<(String, String), TokenizerError> {
    match merge.split(' ').collect::<Vec<_>>().as_slice() {
        [left, right] if !left.is_empty() && !right.is_empty() => Ok((left.to_string(), right.to_string())),
        _ => Err(bad(
            keys::MERGES,
            format!("merge {rank} `{merge}` is not two tokens separated by one space"),
        )),
    }
}

/// The ids whose `token_type` is `wanted`.
fn ids_of_type(types: &MetaValue, vocab: usize, wanted: i64) -> Result<Vec<u32>, TokenizerError> {
    let key = keys::TOKEN_TYPE;
    let types = types
        .as_array()
        .ok_or_else(|| bad(key, "expected an array of integers"))?;
    if types.len() != vocab {
        return Err(bad(key, format!("{} entries for {vocab} tokens", types.len())));
    }
    let mut ids = Vec::new();
    for (id, t) in types.iter().enumerate() {
        let t = integer(t).ok_or_else(|| bad(key, format!("element {id} is not an integer")))?;
        if t == wanted {
            // `id < vocab`, which was checked to fit u32.
            ids.push(id as u32);
        }
    }
    Ok(ids)
}

/// Any integer metadata value as i64 (token types are written as i32).
fn integer(v: &MetaValue) -> Option<i64> {
    match *v {
        MetaValue::I8(x) => Some(x.into()),
        MetaValue::I16(x) => Some(x.into()),
        MetaValue::I32(x) => Some(x.into()),
        MetaValue::I64(x) => Some(x),
        _ => v.as_u64().and_then(|x| i64::try_from(x).ok()),
    }
}
