//! Where the tests' data lives in a checkout.

use std::path::{Path, PathBuf};

/// The repository root: `$DBRMT_REPO_ROOT` where set (test executables copied to a GPU host by `cargo xtask bundle`
/// run there), else the checkout this crate was built in (it sits at `crates/dbrmt-testkit`).
pub fn repo_root() -> PathBuf {
    match std::env::var_os("DBRMT_REPO_ROOT") {
        Some(root) => PathBuf::from(root),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."),
    }
}

/// `testdata/fixtures`: the golden cases made by `testdata/fixtures/generator/make_case.py`.
pub fn fixtures() -> PathBuf {
    repo_root().join("testdata/fixtures")
}

/// The directory of one golden case.
pub fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

/// `models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf` (fetched by `cargo xtask fetch-model smollm2`), if present.
pub fn smollm2_gguf() -> Option<PathBuf> {
    let path = repo_root().join("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    path.is_file().then_some(path)
}
