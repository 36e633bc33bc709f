//! `cargo xtask kernels`: build dbrmt-kernels and print what ptxas reported for each kernel.

use std::fs;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::{cargo, ptxas};

pub fn run() -> Result<()> {
    let out_dir = kernels_out_dir()?;
    let mut reports: Vec<PathBuf> = fs::read_dir(&out_dir)
        .with_context(|| format!("reading {}", out_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".ptxas.txt"))
        .collect();
    reports.sort();
    if reports.is_empty() {
        bail!(
            "no ptxas reports in {}: dbrmt-kernels was built without nvcc (see the build warning \
             above for how to get it)",
            out_dir.display()
        );
    }
    println!(
        "\n{:<16} {:<32} {:>5} {:>4} {:>9} {:>7} {:>11} {:>10}",
        "file", "kernel", "regs", "bar", "smem B", "stack B", "spill st B", "spill ld B"
    );
    let mut spilling = 0;
    for path in &reports {
        let file = path.file_name().unwrap().to_string_lossy();
        let file = file.trim_end_matches(".ptxas.txt");
        let text = fs::read_to_string(path)?;
        for f in ptxas::parse(&text) {
            spilling += usize::from(f.spills());
            println!(
                "{:<16} {:<32} {:>5} {:>4} {:>9} {:>7} {:>11} {:>10}{}",
                format!("{file}.cu"),
                f.name,
                f.registers,
                f.barriers,
                f.smem_bytes,
                f.stack_bytes,
                f.spill_store_bytes,
                f.spill_load_bytes,
                if f.spills() { "  <- local memory" } else { "" }
            );
        }
    }
    println!("\nfull reports: {}/*.ptxas.txt", out_dir.display());
    if spilling > 0 {
        println!("{spilling} kernel(s) use local memory (stack or spills)");
    }
    Ok(())
}

/// `OUT_DIR` of dbrmt-kernels' build script, from cargo's `build-script-executed` message.
fn kernels_out_dir() -> Result<PathBuf> {
    let messages = cargo::json_messages(&["build", "-p", "dbrmt-kernels"])?;
    cargo::with_reason(&messages, "build-script-executed")
        .filter(|m| cargo::package_name(m).as_deref() == Some("dbrmt-kernels"))
        .filter_map(|m| m["out_dir"].as_str())
        .last()
        .map(PathBuf::from)
        .context("cargo reported no build script run for dbrmt-kernels")
}
