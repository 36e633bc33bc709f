//! A scratch folder under the system temp dir, removed when dropped (also when the task fails): `fetch-model`'s
//! download folder, `sass-diff`'s two compiled trees, the tests' throwaway roots.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub(crate) struct Scratch(PathBuf);

impl Scratch {
    /// `dbrmt-{label}-{pid}` under the temp dir, emptied if a crashed run left it behind.
    pub(crate) fn new(label: &str) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("dbrmt-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
