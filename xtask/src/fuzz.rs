//! `cargo xtask fuzz [--seconds N] [--quick] [--target T]...`: builds the coverage-guided fuzz targets of `fuzz/`
//! (libFuzzer through libfuzzer-sys, with cargo-fuzz's flags on a nightly toolchain; cargo-fuzz itself is not needed,
//! `cargo +nightly fuzz run -a T` works the same) and runs them one after another for N seconds each (default 60),
//! with overflow checks on, the
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

/// The triple the targets are built for: with `--target`, RUSTFLAGS reach only the fuzzed code, not build scripts.
const TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// cargo-fuzz 0.13's flags for `cargo fuzz run -a` (address sanitizer, libFuzzer's coverage counters, comparisons
/// traced, `cfg(fuzzing)`, debug assertions and so overflow checks on), so the targets build without cargo-fuzz
/// installed (CI saves its ~4-minute install).
const RUSTFLAGS: &[&str] = &[
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "--cfg fuzzing",
    "-Cllvm-args=-simplifycfg-branch-fold-threshold=0",
    "-Zsanitizer=address",
    "-Cllvm-args=-sanitizer-coverage-stack-depth",
    "-Cdebug-assertions",
];

pub fn run(args: &[String]) -> Result<()> {
    let mut seconds = 60u64;
    let mut quick = false;
    let mut targets: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                let v = it.next().context("--seconds needs a number")?;
                seconds = v.parse().with_context(|| format!("--seconds {v}: not a number"))?;
            }
            "--quick" => quick = true,
            "--target" => {
                let t = it.next().context("--target needs a name")?;
                if !TARGETS.contains(&t.as_str()) {
                    bail!("unknown fuzz target `{t}` (targets: {})", TARGETS.join(", "));
                }
                targets.push(t.clone());
            }
            other => {
                bail!("unknown argument `{other}` (usage: cargo xtask fuzz [--seconds N] [--quick] [--target T]...)")
            }
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| t.to_string()).collect();
    }
    if !available() {
        bail!(
            "a nightly toolchain is needed for the sanitizer and coverage flags: rustup toolchain install nightly \
             (the corpus is also replayed on stable by cargo test)"
        );
    }
    let fuzz = repo_root().join("fuzz");
    let bins = build(&fuzz, quick)?;
    let mut summary = Vec::new();
    for t in &targets {
        summary.push(run_target(&fuzz, &bins.join(t), t, seconds)?);
    }
    println!("xtask fuzz: {} target(s), {seconds} s each, no crash:", targets.len());
    for line in summary {
        println!("  {line}");
    }
    Ok(())
}

/// Whether a nightly toolchain is installed (the sanitizer flags need it).
pub fn available() -> bool {
    Command::new("cargo")
        .args(["+nightly", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Builds every target; returns the folder of the binaries. Release with one codegen unit, as cargo-fuzz builds
/// them (fast fuzzing, a slow build), or with `quick` the dev profile (a few times faster to build; CI's 20-second
/// runs care more for that than for executions per second).
fn build(fuzz: &Path, quick: bool) -> Result<std::path::PathBuf> {
    let mut flags = RUSTFLAGS.join(" ");
    let mut cmd = Command::new("cargo");
    cmd.current_dir(fuzz)
        .args(["+nightly", "build", "--bins", "--target", TRIPLE, "--manifest-path"])
        .arg(fuzz.join("Cargo.toml"));
    if !quick {
        cmd.args(["--release", "--config", "profile.release.debug=\"line-tables-only\""]);
        flags.push_str(" -Ccodegen-units=1");
    }
    println!(
        "$ cargo +nightly build --bins --target {TRIPLE}{} (fuzz/, libFuzzer + ASan)",
        if quick { "" } else { " --release" }
    );
    let status = cmd
        .env("RUSTFLAGS", flags)
        .status()
        .context("could not start cargo +nightly build")?;
    if !status.success() {
        bail!("building the fuzz targets failed ({status})");
    }
    Ok(fuzz
        .join("target")
        .join(TRIPLE)
        .join(if quick { "debug" } else { "release" }))
}

/// Runs one target for `seconds`; returns its summary line (executions, coverage, corpus).
fn run_target(fuzz: &Path, bin: &Path, target: &str, seconds: u64) -> Result<String> {
    let work = fuzz.join("work").join(target);
    let artifacts = fuzz.join("artifacts").join(target);
    std::fs::create_dir_all(&work)?;
    std::fs::create_dir_all(&artifacts)?;
    let mut cmd = Command::new(bin);
    cmd.current_dir(fuzz)
        // cargo-fuzz's default: the harness crates' globals may be instrumented twice
        .env("ASAN_OPTIONS", "detect_odr_violation=0")
        .arg(&work)
        .arg(fuzz.join("corpus").join(target))
        .arg(format!("-max_total_time={seconds}"))
        .args(LIBFUZZER_LIMITS)
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg("-print_final_stats=1");
    println!("$ fuzz/target/…/{target} fuzz/work/{target} fuzz/corpus/{target} -max_total_time={seconds}");
    let out = cmd
        .output()
        .with_context(|| format!("could not start {}", bin.display()))?;
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
