//! Output paths checked before the work: a run of minutes must not end in "cannot write" — nor leave a file half
//! written (the writers replace files atomically).

use std::path::Path;

use anyhow::bail;

/// A file `flag` will write: its folder must exist and take a new file, and the path must not be a folder.
pub fn check_file(flag: &str, path: &Path) -> anyhow::Result<()> {
    let shown = crate::terminal_safe(&path.display().to_string());
    if path.is_dir() {
        bail!("{flag} {shown} is a folder; give a file name");
    }
    if path.file_name().is_none() {
        bail!("{flag} {shown} has no file name");
    }
    // a device or a pipe (/dev/stdout) is written as it is
    if path.exists() && !path.is_file() {
        return Ok(());
    }
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    check_folder(flag, folder, &shown)
}

/// A folder `flag` will write files into (created if missing, as the command would).
pub fn check_dir(flag: &str, dir: &Path) -> anyhow::Result<()> {
    let shown = crate::terminal_safe(&dir.display().to_string());
    if dir.exists() && !dir.is_dir() {
        bail!("{flag} {shown} is a file; with several inputs it names a folder (one output per input)");
    }
    if let Err(e) = std::fs::create_dir_all(dir) {
        bail!("{flag} {shown}: cannot create the folder: {e}");
    }
    check_folder(flag, dir, &shown)
}

/// `folder` exists and a file can be created in it (tried with a probe that is removed at once).
fn check_folder(flag: &str, folder: &Path, shown: &str) -> anyhow::Result<()> {
    let folder_shown = crate::terminal_safe(&folder.display().to_string());
    if !folder.is_dir() {
        bail!("{flag} {shown}: the folder {folder_shown} does not exist");
    }
    let probe = folder.join(format!(".dbrmt-probe-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => bail!("{flag} {shown}: cannot write in {folder_shown}: {e}"),
    }
}
