//! `cargo xtask bundle [-p PACKAGE]...`: everything a GPU host without Rust needs, in `dist/`.
//!
//! `--gpu` keeps only the GPU test executables (`tests/gpu_*.rs`), which keeps `dist/` small enough to travel to
//! a GPU host with the working tree, and fails when nvcc is missing (`DBRMT_REQUIRE_NVCC=1`: a bundle without
//! kernels is of no use on the GPU host). With no `-p`, the whole workspace; with `-p`, only those packages' tests,
//! and the `dbrmt` binary only if `-p dbrmt-cli` is among them (handy while another crate does not build).
//!
//! - `dist/dbrmt`: the release binary (links only libc; cudarc loads libcuda at run time).
//! - `dist/tests/<package>__<target>`: every test executable of the workspace, release build.
//! - `dist/run.sh`: run from a checkout of this repository on the GPU host (with `dist/` copied
//!   into it); it runs the GPU tests (`--ignored`), then `dbrmt selftest` when the binary has it.
//!
//! Test executables remember the `CARGO_MANIFEST_DIR` of the machine that built them (here), which
//! does not exist on the GPU host. `run.sh` therefore runs them from the repository root and
//! exports `DBRMT_REPO_ROOT` (that root): test helpers that locate test data must prefer
//! `DBRMT_REPO_ROOT` over `env!("CARGO_MANIFEST_DIR")`, or use paths relative to the repo root.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::cargo;

pub fn run(args: &[String]) -> Result<()> {
    let gpu_only = args.iter().any(|a| a == "--gpu");
    let args: Vec<String> = args.iter().filter(|a| *a != "--gpu").cloned().collect();
    if gpu_only {
        // A GPU bundle built without nvcc has no kernels, and every test of it fails on the device with
        // "built without nvcc" (a whole device call lost): make a missing nvcc a build error instead.
        std::env::set_var("DBRMT_REQUIRE_NVCC", "1");
    }
    let packages = parse_packages(&args)?;
    let root = cargo::repo_root();
    let dist = root.join("dist");
    let with_cli = packages.is_empty() || packages.iter().any(|p| p == "dbrmt-cli");
    let binary = if with_cli { Some(build_cli()?) } else { None };
    let mut tests = build_tests(&packages)?;
    if gpu_only {
        // the device machine takes at most 64 MiB with the working tree: keep the GPU tests only
        tests.retain(|t| {
            t.dist_name
                .split("__")
                .nth(1)
                .is_some_and(|target| target.starts_with("gpu_"))
        });
    }

    if dist.exists() {
        fs::remove_dir_all(&dist).with_context(|| format!("removing {}", dist.display()))?;
    }
    fs::create_dir_all(dist.join("tests"))?;

    let mut copied = Vec::new();
    if let Some(binary) = &binary {
        copied.push(copy_executable(binary, &dist.join("dbrmt"))?);
    }
    for test in &tests {
        copied.push(copy_executable(
            &test.executable,
            &dist.join("tests").join(&test.dist_name),
        )?);
    }
    let run_sh = dist.join("run.sh");
    fs::write(&run_sh, RUN_SH)?;
    make_executable(&run_sh)?;

    let strip = strip_available();
    if strip {
        for path in &copied {
            let status = Command::new("strip").arg(path).status()?;
            if !status.success() {
                bail!("strip {} failed ({status})", path.display());
            }
        }
    } else {
        println!("(no `strip` on PATH: executables left with their symbols)");
    }

    println!("\ndist/ ({} test executables):", tests.len());
    let mut total = 0;
    for path in copied.iter().chain([&run_sh]) {
        let size = fs::metadata(path)?.len();
        total += size;
        println!("  {:>10}  {}", human(size), path.strip_prefix(&root)?.display());
    }
    println!("  {:>10}  total", human(total));
    println!("\ncopy dist/ into a checkout of this repository on the GPU host, then: dist/run.sh");
    if let Some(size) = archive(&root)? {
        println!(
            "or carry dist.tar.xz ({}; ignored by git) and there: python3 -c \"import tarfile; \
             tarfile.open('dist.tar.xz').extractall()\" && dist/run.sh",
            human(size)
        );
    }
    Ok(())
}

/// `dist.tar.xz` beside `dist/`: what a device call carries — about a tenth of `dist/` (xz shares what the
/// executables share), which matters where the working tree and the carried files share one size limit. Python's
/// `tarfile` unpacks it on a host without `xz`. `None` (and a note) where `tar` cannot write xz here.
///
/// Written as `dist.tar.xz.partial` and renamed when complete, the old archive removed first: while a bundle is being
/// made there is no `dist.tar.xz` to copy, never a half-written one (session 18 carried an empty archive to the GPU
/// host by copying it mid-write).
fn archive(root: &Path) -> Result<Option<u64>> {
    let out = root.join("dist.tar.xz");
    let partial = root.join("dist.tar.xz.partial");
    let _ = fs::remove_file(&out);
    let _ = fs::remove_file(&partial);
    let made = Command::new("tar")
        .env("XZ_OPT", "-9 -T0")
        .args(["-cJf", "dist.tar.xz.partial", "dist"])
        .current_dir(root)
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        let _ = fs::remove_file(&partial);
        println!("(tar could not write xz here: no dist.tar.xz)");
        return Ok(None);
    }
    fs::rename(&partial, &out).with_context(|| format!("renaming {} to {}", partial.display(), out.display()))?;
    Ok(Some(fs::metadata(&out)?.len()))
}

/// A test executable and the name it gets in `dist/tests/`.
struct TestExecutable {
    executable: PathBuf,
    dist_name: String,
}

/// `-p NAME` / `--package NAME`, repeated.
fn parse_packages(args: &[String]) -> Result<Vec<String>> {
    let mut packages = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-p" | "--package" => packages.push(args.next().context("-p needs a package name")?.clone()),
            other => bail!("bundle: unknown argument `{other}` (usage: cargo xtask bundle [--gpu] [-p PACKAGE]...)"),
        }
    }
    Ok(packages)
}

fn build_cli() -> Result<PathBuf> {
    let messages = cargo::json_messages(&["build", "--release", "-p", "dbrmt-cli"])?;
    cargo::with_reason(&messages, "compiler-artifact")
        .filter(|m| m["target"]["name"] == "dbrmt")
        .filter_map(|m| m["executable"].as_str())
        .last()
        .map(PathBuf::from)
        .context("cargo built no `dbrmt` executable")
}

fn build_tests(packages: &[String]) -> Result<Vec<TestExecutable>> {
    let mut args = vec!["test", "--release", "--no-run"];
    if packages.is_empty() {
        args.push("--workspace");
    }
    for package in packages {
        args.extend(["-p", package.as_str()]);
    }
    let messages = cargo::json_messages(&args)?;
    let mut tests: Vec<TestExecutable> = cargo::with_reason(&messages, "compiler-artifact")
        .filter(|m| m["profile"]["test"] == true)
        .filter_map(|m| {
            let executable = m["executable"].as_str()?;
            let package = cargo::package_name(m)?;
            let target = m["target"]["name"].as_str()?;
            // A library's unit tests are named after the crate; call them `lib`.
            let kinds = m["target"]["kind"].as_array()?;
            let target = if kinds.iter().any(|k| k == "lib" || k == "rlib") {
                "lib"
            } else {
                target
            };
            Some(TestExecutable {
                executable: PathBuf::from(executable),
                dist_name: format!("{package}__{target}"),
            })
        })
        .collect();
    tests.sort_by(|a, b| a.dist_name.cmp(&b.dist_name));
    tests.dedup_by(|a, b| a.dist_name == b.dist_name);
    Ok(tests)
}

fn copy_executable(from: &Path, to: &Path) -> Result<PathBuf> {
    fs::copy(from, to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    make_executable(to)?;
    Ok(to.to_path_buf())
}

fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

fn strip_available() -> bool {
    Command::new("strip")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn human(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

const RUN_SH: &str = r#"#!/usr/bin/env bash
# Runs dbrmt's GPU tests on a host without cargo. Made by `cargo xtask bundle`.
#
# Copy dist/ into a checkout of the dbrmt repository on the GPU host, then:
#   dist/run.sh            GPU tests (the ignored tests of tests/gpu_*.rs), then `dbrmt selftest`
#   dist/run.sh all        every test, CPU and GPU, then `dbrmt selftest`
#   dist/run.sh selftest   only `dbrmt selftest`
#   dist/run.sh bench [OUT] [PART...]
#                          the benchmarks, JSON lines into OUT (default bench-results/): PARTs (default all)
#                          kernels (dbrmt bench kernels: every kernel beside cuBLAS / the copy bandwidth),
#                          matrix (dbrmt bench matrix), profile (the step profile of 1B T=1024 and 160M T=512),
#                          baselines (benches/python/baselines.py), attention
#                          (benches/python/sdpa_attention.py: SDPA and the same-run GEMM/copy ceilings), ceiling
#                          (benches/python/step_ceiling.py: a full step's products + attention with cuBLAS + SDPA,
#                          op by op and sustained, beside ours from the profile part), load
#                          (random 1B and 8B-shaped bf16 checkpoints written to /tmp, then loaded in a fresh
#                          process), requests (dbrmt bench requests, 1B T=1024: 16 × 8K and 4 × 32K prefills packed
#                          against one after another; decode tokens/s of 1, 4, 16, 64 concurrent requests), serve
#                          (benches/python/serve_load.py: dbrmt serve on a random 1B, 64 clients, 1,000 token-id
#                          prompts of 1K-64K tokens, a summary table at the end; SERVE_LOAD_ARGS adds options of
#                          serve_load.py; not in the default list). BENCH_FILTER=TEXT keeps only the rows
#                          whose id contains TEXT. Then, where the
#                          results land: cargo xtask bench-report OUT
# Any further arguments go to every test executable (e.g. a test name filter).
#
# Tests run from the repository root with DBRMT_REPO_ROOT set to it: the executables were built on
# another machine, so their compile-time CARGO_MANIFEST_DIR does not exist here.
set -uo pipefail

DIST="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$DIST/.." && pwd)"
cd "$ROOT"
export DBRMT_REPO_ROOT="$ROOT"

mode="${1:-gpu}"
[ $# -gt 0 ] && shift
if [ "$mode" = bench ]; then
  out="${1:-bench-results}"
  [ $# -gt 0 ] && shift
  parts=("$@")
  [ ${#parts[@]} -eq 0 ] && parts=(kernels attention ceiling matrix profile baselines load requests)
  mkdir -p "$out"
  filter=()
  [ -n "${BENCH_FILTER:-}" ] && filter=(--filter "$BENCH_FILTER")
  pyfilter=()
  [ -n "${BENCH_FILTER:-}" ] && pyfilter=(--filter "$BENCH_FILTER")
  status=0
  for part in "${parts[@]}"; do
    echo "=== bench $part" >&2
    case "$part" in
      matrix) "$DIST/dbrmt" bench matrix --out "$out/dbrmt.jsonl" "${filter[@]}" || status=1 ;;
      baselines) PYTHONUNBUFFERED=1 python3 benches/python/baselines.py --out "$out/torch.jsonl" "${pyfilter[@]}" || status=1 ;;
      attention) PYTHONUNBUFFERED=1 python3 benches/python/sdpa_attention.py --out "$out/torch.jsonl" || status=1 ;;
      ceiling) PYTHONUNBUFFERED=1 python3 benches/python/step_ceiling.py --out "$out/torch.jsonl" || status=1 ;;
      kernels) LD_LIBRARY_PATH="/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}" "$DIST/dbrmt" bench kernels --out "$out/dbrmt.jsonl" || status=1 ;;
      profile)
        "$DIST/dbrmt" bench profile --model llama-3.2-1b --segment 1024 --tokens 32768 --out "$out/dbrmt.jsonl" || status=1
        "$DIST/dbrmt" bench profile --model llama-160m --segment 512 --tokens 16384 --out "$out/dbrmt.jsonl" || status=1 ;;
      load)
        for model in llama-3.2-1b llama-3.1-8b; do
          dir="/tmp/dbrmt-bench-ckpt-$model"
          "$DIST/dbrmt" bench write-checkpoint --model "$model" --dir "$dir" &&
            "$DIST/dbrmt" bench load --dir "$dir" --out "$out/dbrmt.jsonl" || status=1
          rm -rf "$dir"
        done ;;
      requests)
        "$DIST/dbrmt" bench requests --requests 16 --tokens 8192 --out "$out/dbrmt.jsonl" || status=1
        "$DIST/dbrmt" bench requests --requests 4 --tokens 32768 --out "$out/dbrmt.jsonl" || status=1
        "$DIST/dbrmt" bench requests --requests 1,4,16,64 --tokens 128 --decode 64 --no-serial --out "$out/dbrmt.jsonl" || status=1 ;;
      serve) PYTHONUNBUFFERED=1 python3 benches/python/serve_load.py --dbrmt "$DIST/dbrmt" --preset llama-3.2-1b --out "$out/serve.jsonl" ${SERVE_LOAD_ARGS:-} || status=1 ;;
      *) echo "unknown bench part $part (kernels, matrix, profile, baselines, attention, ceiling, load, requests, serve)" >&2; status=2 ;;
    esac
  done
  exit $status
fi
case "$mode" in
  gpu) filter=(--ignored) ;;
  all) filter=(--include-ignored) ;;
  selftest) filter=() ;;
  *) echo "usage: dist/run.sh [gpu|all|selftest] [test args...] | dist/run.sh bench [OUT] [PART...]" >&2; exit 2 ;;
esac

passed=0
failed=0
failed_names=()
if [ "$mode" != selftest ]; then
  for test in "$DIST"/tests/*; do
    [ -x "$test" ] || continue
    name="$(basename "$test")"
    # the GPU tests are the tests/gpu_*.rs targets; other ignored tests need data (a fetched model) instead
    if [ "$mode" = gpu ] && [[ "$name" != *__gpu_* ]]; then continue; fi
    echo "=== $name"
    if "$test" "${filter[@]}" --test-threads=1 "$@"; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1))
      failed_names+=("$name")
    fi
  done
fi

if [ -x "$DIST/dbrmt" ] && "$DIST/dbrmt" --help 2>/dev/null | grep -qw selftest; then
  echo "=== dbrmt selftest"
  if "$DIST/dbrmt" selftest; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failed_names+=("dbrmt selftest")
  fi
fi

echo
echo "run.sh: $passed passed, $failed failed"
for name in "${failed_names[@]}"; do
  echo "  failed: $name"
done
[ "$failed" -eq 0 ]
"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// The archive appears whole or not at all: after `archive`, either `dist.tar.xz` holds `dist/` and no partial
    /// file is left, or (no xz here) neither exists; an old archive never survives a new bundle.
    #[test]
    fn the_archive_is_renamed_into_place_or_absent() {
        let scratch = crate::scratch::Scratch::new("bundle-archive").unwrap();
        let root = scratch.path();
        fs::create_dir_all(root.join("dist")).unwrap();
        fs::write(root.join("dist/run.sh"), "echo hi\n").unwrap();
        fs::write(root.join("dist.tar.xz"), "stale").unwrap();
        let made = archive(root).unwrap();
        let (out, partial) = (root.join("dist.tar.xz"), root.join("dist.tar.xz.partial"));
        assert!(!partial.exists(), "no partial archive left behind");
        match made {
            Some(len) => {
                assert_eq!(fs::metadata(&out).unwrap().len(), len);
                assert_ne!(fs::read(&out).unwrap(), b"stale", "the old archive was replaced");
            }
            None => assert!(
                !out.exists(),
                "no archive where tar cannot write one, not the stale one"
            ),
        }
    }
}
