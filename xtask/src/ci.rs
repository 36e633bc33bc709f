//! `cargo xtask ci`: the checks CI runs, in order, stopping at the first failure.

use anyhow::Result;

use crate::cargo;

/// Formatting, lints with warnings as errors, then the whole test suite.
const STEPS: &[&[&str]] = &[
    &["fmt", "--all", "--", "--check"],
    &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"],
    &["test", "--workspace"],
];

pub fn run() -> Result<()> {
    for step in STEPS {
        cargo::run(step)?;
    }
    println!("xtask ci: fmt, clippy and tests passed");
    Ok(())
}
