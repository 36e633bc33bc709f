//! Whether a `--model` path means a GGUF file: a `*.gguf` file, or a directory whose only weights are one.

use std::path::{Path, PathBuf};

use crate::error::FormatError;

/// The GGUF file `path` stands for: `path` itself when it is a `*.gguf` file (or names one that does not exist,
/// so that opening it reports the missing file); the one `*.gguf` file of a directory without `*.safetensors`
/// files; `None` otherwise (a safetensors model directory, or nothing readable, which the safetensors loader then
/// reports). Several `*.gguf` files and no safetensors is an error.
pub fn gguf_path(path: &Path) -> Result<Option<PathBuf>, FormatError> {
    if path.is_file() || !path.exists() {
        return Ok(has_extension(path, "gguf").then(|| path.to_path_buf()));
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return Ok(None);
    };
    let (mut gguf, mut safetensors) = (Vec::new(), false);
    for entry in entries {
        let file = entry
            .map_err(|source| FormatError::Io {
                path: path.to_path_buf(),
                source,
            })?
            .path();
        if !file.is_file() {
            continue;
        }
        safetensors |= has_extension(&file, "safetensors");
        if has_extension(&file, "gguf") {
            gguf.push(file);
        }
    }
    gguf.sort();
    match (safetensors, gguf.as_slice()) {
        (true, _) | (false, []) => Ok(None),
        (false, [one]) => Ok(Some(one.clone())),
        (false, many) => {
            let names: Vec<String> = many
                .iter()
                .filter_map(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .collect();
            Err(FormatError::Checkpoint {
                path: path.to_path_buf(),
                msg: format!(
                    "several *.gguf files ({}) and no safetensors: pass the one to load as --model",
                    names.join(", ")
                ),
            })
        }
    }
}

fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext))
}
