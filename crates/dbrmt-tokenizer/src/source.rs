//! Which tokenizer a model path has: GGUF metadata or a `tokenizer.json`.

use std::path::{Path, PathBuf};

use crate::gguf::{gguf_path, GgufFile};
use crate::{Tokenizer, TokenizerError};

const TOKENIZER_JSON: &str = "tokenizer.json";

impl Tokenizer {
    /// The tokenizer of the model at `path`, read the way the model loader reads `--model PATH`: a GGUF model (a
    /// `.gguf` file, or a directory whose only weights are one) gives its metadata's tokenizer; a safetensors
    /// checkpoint (its directory or a file in it) gives the `tokenizer.json` beside it; a `tokenizer.json` path
    /// is loaded as is.
    pub fn for_model(path: &Path) -> Result<Self, TokenizerError> {
        if let Some(gguf) = gguf_path(path)? {
            return Self::from_gguf(&GgufFile::open(&gguf)?);
        }
        Self::from_file(&tokenizer_json(path)?)
    }
}

fn tokenizer_json(path: &Path) -> Result<PathBuf, TokenizerError> {
    let candidate = if path.is_dir() {
        path.join(TOKENIZER_JSON)
    } else if path.file_name().is_some_and(|n| n == TOKENIZER_JSON) {
        path.to_path_buf()
    } else {
        path.parent().unwrap_or(Path::new(".")).join(TOKENIZER_JSON)
    };
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(TokenizerError::NotFound {
            path: path.to_path_buf(),
        })
    }
}
