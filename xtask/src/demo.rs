//! `cargo xtask demo`: the main job. Fetches SmolLM2 if needed, builds the release `dbrmt`, and runs
//! `dbrmt generate` on a long built-in document (`docs/demo/logbook.txt`, ≈ 4K tokens: four segments of 1024)
//! with a question at its end, printing the answer and the speeds.
//!
//! SmolLM2 is a plain LLaMA checkpoint: its ARMT memory is initialised (`--armt-init 0`, `W_v = 0` as in the
//! original), not trained, so the answer comes from the last segment; a trained ARMT checkpoint carries the
//! earlier segments in its memory.

use anyhow::{bail, Result};

use crate::cargo::{self, repo_root};
use crate::fetch_model;

pub fn run(args: &[String]) -> Result<()> {
    let model = fetch_model::ensure(&fetch_model::SMOLLM2)?;
    cargo::run(&["build", "--release", "-p", "dbrmt-cli"])?;
    let root = repo_root();
    let document = root.join("docs/demo/logbook.txt");
    let mut cmd = std::process::Command::new(root.join("target/release/dbrmt"));
    cmd.args(["generate", "--model"])
        .arg(&model)
        .args([
            "--armt-init",
            "0",
            "--segment-size",
            "1024",
            "--mem-tokens",
            "16",
            "--chat",
            "--file",
        ])
        .arg(&document)
        .args(["--max-new-tokens", "32"])
        .args(args);
    println!("$ {cmd:?}");
    let status = cmd.status()?;
    if !status.success() {
        bail!("dbrmt generate failed ({status})");
    }
    Ok(())
}
