//! `cargo xtask demo`: the main job. Fetches SmolLM2 if needed, builds the release `dbrmt`, and runs
//! `dbrmt generate` on a long built-in document (`docs/demo/logbook.txt`, ≈ 4.5K tokens: five segments of 1024)
//! with a question at its end, printing the answer and the speeds.
//!
//! SmolLM2 is a plain LLaMA checkpoint: its ARMT memory is initialised as the original does (seed 0, `W_v = 0`), not
//! trained, so the answer comes from the last segment; a trained ARMT checkpoint carries the
//! earlier segments in its memory.

use anyhow::{bail, Context, Result};

use crate::cargo::{self, repo_root};
use crate::fetch_model;

pub fn run(args: &[String]) -> Result<()> {
    let model = fetch_model::ensure(&fetch_model::SMOLLM2)?;
    cargo::run(&["build", "-q", "--release", "-p", "dbrmt-cli"])?;
    let root = repo_root();
    // where cargo put it: CARGO_TARGET_DIR when set (relative to the root, as cargo runs there), else target/
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |d| root.join(d));
    let binary = target.join("release/dbrmt");
    let model = model.strip_prefix(&root).unwrap_or(&model).to_path_buf();
    let mut line: Vec<String> = [
        "generate",
        "--model",
        &model.to_string_lossy(),
        "--chat",
        "--file",
        "docs/demo/logbook.txt",
        "--max-new-tokens",
        "32",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    line.extend(args.iter().cloned());
    // the command as a person would type it after `cargo install --locked --path crates/dbrmt-cli`
    println!("$ dbrmt {}", line.join(" "));
    let status = std::process::Command::new(&binary)
        .args(&line)
        .current_dir(&root)
        .status()
        .with_context(|| format!("starting {}", binary.display()))?;
    if !status.success() {
        bail!("dbrmt generate failed ({status})");
    }
    println!(
        "xtask demo: the binary is {} (`cargo install --locked --path crates/dbrmt-cli` puts `dbrmt` on PATH)",
        binary.strip_prefix(&root).unwrap_or(&binary).display()
    );
    Ok(())
}
