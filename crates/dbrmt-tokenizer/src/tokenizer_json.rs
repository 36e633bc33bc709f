//! A tokenizer from a Hugging Face `tokenizer.json` (beside a safetensors checkpoint), with the special tokens and
//! chat template of `tokenizer_config.json` (or the ids of `config.json`) when those files are there.

use std::path::Path;

use serde_json::Value;

use crate::tokenizer::SpecialIds;
use crate::{Tokenizer, TokenizerError};

impl Tokenizer {
    /// Loads `tokenizer.json`; BOS / EOS / padding / unknown and the chat template come from
    /// `tokenizer_config.json` in the same directory, the ids from `config.json` where that file lacks them.
    /// BOS / EOS are added by the file's own post-processor.
    pub fn from_file(path: &Path) -> Result<Self, TokenizerError> {
        let file_error = |msg: String| TokenizerError::File {
            path: path.to_path_buf(),
            msg,
        };
        let text = dbrmt_formats::files::read_text_capped(path, dbrmt_formats::limits::MAX_TOKENIZER_JSON_BYTES)
            .map_err(|e| file_error(e.to_string()))?;
        let inner: tokenizers::Tokenizer = text.parse().map_err(|e: tokenizers::Error| file_error(e.to_string()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let config = read_json(&dir.join("tokenizer_config.json"))?;
        let model_config = read_json(&dir.join("config.json"))?;

        let id_of = |token_key: &str, id_key: &str| {
            config
                .as_ref()
                .and_then(|c| token_content(c.get(token_key)?))
                .and_then(|t| inner.token_to_id(t))
                .or_else(|| model_config.as_ref().and_then(|c| first_id(c.get(id_key)?)))
        };
        let special = SpecialIds {
            bos: id_of("bos_token", "bos_token_id"),
            eos: id_of("eos_token", "eos_token_id"),
            pad: id_of("pad_token", "pad_token_id"),
            unk: id_of("unk_token", "unk_token_id"),
        };
        let chat_template = config.as_ref().and_then(|c| chat_template(c.get("chat_template")?));
        let vocab_size = inner.get_vocab_size(true);
        // a byte-level vocabulary must spell every byte text can hold, as a GGUF one must
        let byte_level = matches!(inner.get_decoder(), Some(tokenizers::DecoderWrapper::ByteLevel(_)));
        let unspellable = if byte_level {
            let alphabet = crate::byte_level::ByteAlphabet::new();
            crate::byte_level::check_byte_tokens(&alphabet, |t| inner.token_to_id(t).is_some()).map_err(|e| {
                TokenizerError::File {
                    path: path.to_path_buf(),
                    msg: e.to_string(),
                }
            })?
        } else {
            Vec::new()
        };
        Ok(Tokenizer::assemble(
            inner,
            special,
            (false, false),
            vocab_size,
            chat_template,
            unspellable,
        ))
    }
}

/// The parsed file, `None` when it does not exist.
fn read_json(path: &Path) -> Result<Option<Value>, TokenizerError> {
    let text = match dbrmt_formats::files::read_text_capped(path, dbrmt_formats::limits::MAX_TOKENIZER_JSON_BYTES) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(TokenizerError::File {
                path: path.to_path_buf(),
                msg: e.to_string(),
            })
        }
    };
    serde_json::from_str(&text).map(Some).map_err(|e| TokenizerError::File {
        path: path.to_path_buf(),
        msg: format!("not valid JSON: {e}"),
    })
}

/// A special token in `tokenizer_config.json`: a string, or an added-token object with `content`.
fn token_content(v: &Value) -> Option<&str> {
    v.as_str().or_else(|| v.get("content")?.as_str())
}

/// An id in `config.json`: a number, or a list whose first entry is the main one.
fn first_id(v: &Value) -> Option<u32> {
    let v = v.as_array().map_or(Some(v), |a| a.first())?;
    u32::try_from(v.as_u64()?).ok()
}

/// `chat_template`: a string, or a list of `{name, template}` of which the `default` one is used.
fn chat_template(v: &Value) -> Option<String> {
    if let Some(t) = v.as_str() {
        return Some(t.to_string());
    }
    v.as_array()?
        .iter()
        .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
        .and_then(|t| t.get("template")?.as_str())
        .map(str::to_string)
}
