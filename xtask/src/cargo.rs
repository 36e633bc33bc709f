//! Running cargo from xtask: the same cargo binary, at the repository root, echoing each command.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// The repository root (the parent of `xtask/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ has a parent")
        .to_path_buf()
}

/// A `cargo` command (the cargo that started xtask, if any) run from the repository root.
pub fn cargo(args: &[&str]) -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(repo_root());
    cmd
}

/// Runs `cargo <args>` with inherited output; fails if it exits non-zero.
pub fn run(args: &[&str]) -> Result<()> {
    println!("$ cargo {}", args.join(" "));
    let status = cargo(args)
        .status()
        .with_context(|| format!("could not start cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Runs `cargo <args> --message-format=json` (stderr shown as it comes) and returns the JSON
/// messages cargo printed; fails if cargo exits non-zero.
pub fn json_messages(args: &[&str]) -> Result<Vec<Value>> {
    let mut all: Vec<&str> = args.to_vec();
    all.push("--message-format=json-render-diagnostics");
    println!("$ cargo {}", all.join(" "));
    let output = cargo(&all)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not start cargo {}", all.join(" ")))?;
    if !output.status.success() {
        bail!("`cargo {}` failed ({})", all.join(" "), output.status);
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect())
}

/// The messages with `"reason": reason`.
pub fn with_reason<'a>(messages: &'a [Value], reason: &'a str) -> impl Iterator<Item = &'a Value> {
    messages.iter().filter(move |m| m["reason"] == reason)
}

/// The package name in a message's `package_id`: `path+file:///…/dbrmt-kernels#0.1.0` (name =
/// last path segment) or `…#name@version` (name given).
pub fn package_name(message: &Value) -> Option<String> {
    let id = message["package_id"].as_str()?;
    let (url, fragment) = id.split_once('#')?;
    Some(match fragment.split_once('@') {
        Some((name, _version)) => name.to_owned(),
        None => url.rsplit('/').next()?.to_owned(),
    })
}
