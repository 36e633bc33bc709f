//! Whether a `--model` path means a GGUF file: a file that starts with GGUF's magic (whatever its name: a symlink,
//! a cache blob) or is named `*.gguf`, or a directory whose only weights are one `*.gguf` file.

use std::path::{Path, PathBuf};

use crate::error::FormatError;

/// The GGUF file `path` stands for: `path` itself when it is a file that starts with the GGUF magic or is named
/// `*.gguf` (or names a `*.gguf` file that does not exist, so that opening it reports the missing file); the one
/// `*.gguf` file of a directory without `*.safetensors` files; `None` otherwise (a safetensors model directory, or
/// nothing readable, which the safetensors loader then reports). Several `*.gguf` files and no safetensors is an
/// error.
pub fn gguf_path(path: &Path) -> Result<Option<PathBuf>, FormatError> {
    if path.is_file() || !path.exists() {
        let gguf = has_extension(path, "gguf") || starts_with(path, &super::MAGIC);
        return Ok(gguf.then(|| path.to_path_buf()));
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

/// Whether the file at `path` begins with `magic` (false when it cannot be read).
pub(crate) fn starts_with(path: &Path, magic: &[u8]) -> bool {
    use std::io::Read;
    let mut head = vec![0u8; magic.len()];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| head == magic)
}
