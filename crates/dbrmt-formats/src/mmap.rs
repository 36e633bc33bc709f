//! Read-only memory maps of checkpoint files (safetensors and GGUF).

use std::fs::File;
use std::path::Path;

use memmap2::Mmap;

use crate::error::FormatError;

/// Maps `path` read-only.
pub(crate) fn map_file(path: &Path) -> Result<Mmap, FormatError> {
    let io = |source| FormatError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    // SAFETY: the map is read-only and private to this process. A file truncated or rewritten by another process
    // while we hold the map is outside what we can guard against (as for every mmap-based loader); every range the
    // readers use is validated against the length the file had when mapped.
    unsafe { Mmap::map(&file) }.map_err(io)
}

/// A read-only map holding a copy of `bytes` (anonymous memory): parsers that work on maps can read bytes that
/// never were a file (fuzzing, tests).
pub(crate) fn map_bytes(bytes: &[u8]) -> std::io::Result<Mmap> {
    let mut map = memmap2::MmapOptions::new().len(bytes.len()).map_anon()?;
    map.copy_from_slice(bytes);
    map.make_read_only()
}
