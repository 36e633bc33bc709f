//! Writing files so that nothing a user stored is lost or half-written: the bytes go to a temporary file beside
//! the target, are flushed to disk, and replace the target in one rename. An error (a full disk, a bad path)
//! leaves the old file as it was and no temporary behind.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::FormatError;

/// Writes `path` through `write`, atomically (temporary file, fsync, rename).
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), FormatError> {
    let io = |source| FormatError::Io {
        path: path.to_path_buf(),
        source,
    };
    // a device or a pipe (/dev/stdout, a FIFO) is written as it is: renaming over it would replace it
    if path.exists() && !path.is_file() && !path.is_dir() {
        let file = std::fs::OpenOptions::new().write(true).open(path).map_err(io)?;
        let mut out = BufWriter::new(file);
        return write(&mut out).and_then(|()| out.flush()).map_err(io);
    }
    let tmp = temporary_beside(path);
    let result = (|| {
        let file = File::create(&tmp)?;
        let mut out = BufWriter::new(file);
        write(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Reads a text file of at most `cap` bytes (a config, an index, a tokenizer): a larger one is refused before it is
/// read, and a file that grows while read is cut off at the cap — never read whole into memory.
pub fn read_text_capped(path: &Path, cap: usize) -> Result<String, std::io::Error> {
    use std::io::Read;
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let too_large = |n: u64| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the file has {n} bytes, more than the {cap} a file of its kind may have"),
        )
    };
    if len > cap as u64 {
        return Err(too_large(len));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(cap as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > cap {
        return Err(too_large(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// `dir/.name.tmp-PID` beside `path`.
fn temporary_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_or_not_at_all() {
        let dir = std::env::temp_dir().join(format!("dbrmt-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.bin");
        write_atomically(&path, |w| w.write_all(b"first")).unwrap();
        let err = write_atomically(&path, |w| {
            w.write_all(b"half")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(err.unwrap_err().to_string().contains("disk full"));
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary left");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
