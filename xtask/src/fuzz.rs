//! `cargo xtask fuzz [--seconds N] [--target T]...`: runs the coverage-guided fuzz targets of `fuzz/` (cargo-fuzz,
//! libFuzzer, nightly) one after another for N seconds each (default 60), with overflow checks on (`-a`), the
//! committed seed corpus `fuzz/corpus/T` read and new inputs kept in `fuzz/work/T` (git-ignored). A crash, an
//! abort, a timeout or an allocation over the limits is a failure; its input is left in `fuzz/artifacts/T/` — fix
//! the bug, then copy the input into `fuzz/regressions/T/`, where the stable replay test
//! (`crates/dbrmt-tokenizer/tests/fuzz_corpus.rs`) keeps it fixed.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::cargo::repo_root;

/// Every target of `fuzz/Cargo.toml`.
pub const TARGETS: &[&str] = &[
    "safetensors_header",
    "gguf",
    "npy",
    "config_json",
    "saved_state",
    "tokenizer",
];

/// libFuzzer's limits: a unit slower than 20 s is a hang, more than 2 GB of memory (or one allocation of 2 GB)
/// is a failure.
const LIBFUZZER_LIMITS: &[&str] = &["-rss_limit_mb=2048", "-malloc_limit_mb=2048", "-timeout=20"];

pub fn run(args: &[String]) -> Result<()> {
    let mut seconds = 60u64;
    let mut targets: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                let v = it.next().context("--seconds needs a number")?;
                seconds = v.parse().with_context(|| format!("--seconds {v}: not a number"))?;
            }
            "--target" => {
                let t = it.next().context("--target needs a name")?;
                if !TARGETS.contains(&t.as_str()) {
                    bail!("unknown fuzz target `{t}` (targets: {})", TARGETS.join(", "));
                }
                targets.push(t.clone());
            }
            other => bail!("unknown argument `{other}` (usage: cargo xtask fuzz [--seconds N] [--target T]...)"),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| t.to_string()).collect();
    }
    if !available() {
        bail!(
            "cargo-fuzz on a nightly toolchain is needed: rustup toolchain install nightly && cargo install \
             cargo-fuzz (the corpus is also replayed on stable by cargo test)"
        );
    }
    let fuzz = repo_root().join("fuzz");
    let mut summary = Vec::new();
    for t in &targets {
        summary.push(run_target(&fuzz, t, seconds)?);
    }
    println!("xtask fuzz: {} target(s), {seconds} s each, no crash:", targets.len());
    for line in summary {
        println!("  {line}");
    }
    Ok(())
}

/// Whether `cargo +nightly fuzz` works here.
pub fn available() -> bool {
    Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs one target for `seconds`; returns its summary line (executions, coverage, corpus).
fn run_target(fuzz: &Path, target: &str, seconds: u64) -> Result<String> {
    let work = fuzz.join("work").join(target);
    let artifacts = fuzz.join("artifacts").join(target);
    std::fs::create_dir_all(&work)?;
    std::fs::create_dir_all(&artifacts)?;
    let mut cmd = Command::new("cargo");
    cmd.current_dir(fuzz)
        .args(["+nightly", "fuzz", "run", "-a", target])
        .arg(&work)
        .arg(fuzz.join("corpus").join(target))
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .args(LIBFUZZER_LIMITS)
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg("-print_final_stats=1");
    println!("$ cargo +nightly fuzz run -a {target} … -- -max_total_time={seconds}");
    let out = cmd
        .output()
        .with_context(|| format!("could not start cargo fuzz run {target}"))?;
    let log = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let tail: Vec<&str> = log
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        bail!(
            "fuzz target `{target}` failed ({}); its input is in {}:\n{}",
            out.status,
            artifacts.display(),
            tail.join("\n")
        );
    }
    let stat = |key: &str| {
        log.lines()
            .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| "?".into())
    };
    let cov = log
        .lines()
        .rev()
        .find_map(|l| l.split_once(" cov: ").and_then(|(_, r)| r.split_whitespace().next()))
        .unwrap_or("?");
    let corpus = std::fs::read_dir(&work).map_or(0, |d| d.count());
    Ok(format!(
        "{target}: {} executions ({} /s), coverage {cov} edges, {corpus} inputs in fuzz/work/{target}",
        stat("stat::number_of_executed_units:"),
        stat("stat::average_exec_per_sec:")
    ))
}
