//! Compiles every `cuda/*.cu` of the repository to an sm_90a cubin in `OUT_DIR` and generates
//! `OUT_DIR/cubins.rs`, which embeds them (`include_bytes!`), one `pub const` [`Cubin`] per kernel file (its stem and
//! its bytes).
//!
//! nvcc is looked up through `NVCC`, then `$CUDA_HOME/bin/nvcc`, then `nvcc` on `PATH`. Without
//! nvcc the build still succeeds (so the workspace builds and its CPU tests run anywhere): the
//! consts are then empty, `cfg(dbrmt_has_cubins)` is not set and every kernel launch returns
//! `KernelError::NotBuilt`. `DBRMT_REQUIRE_NVCC=1` (set by CI) turns a missing nvcc into a build
//! error. A failing compile is always a build error, with nvcc's output shown.
//!
//! Each file's ptxas report (`-Xptxas -v`: registers, shared memory, stack, spills) is kept in
//! `OUT_DIR/<name>.ptxas.txt` (`cargo xtask kernels` prints them), and spills or a stack frame
//! raise a cargo warning.

use std::env;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The pinned nvcc wheels (`cuda/nvcc-wheels.txt`, one `name==version` per line; the list `.ci/run` installs).
const NVCC_WHEELS: &str = include_str!("../../cuda/nvcc-wheels.txt");

/// The wheels of [`NVCC_WHEELS`] on one line, separated by spaces.
fn nvcc_wheels() -> String {
    let wheels: Vec<&str> = NVCC_WHEELS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    wheels.join(" ")
}

/// How to get nvcc where no CUDA toolkit is installed (pinned: an unpinned nvvm breaks ptxas).
fn how_to_get_nvcc() -> String {
    format!(
        "python3 -m venv .nvcc && .nvcc/bin/pip install {} && \
         export NVCC=$PWD/.nvcc/lib/python3.11/site-packages/nvidia/cu13/bin/nvcc",
        nvcc_wheels()
    )
}

/// The only target, sm_90a: the version-1 kernels need nothing beyond sm_90, but the arch-specific instructions
/// (wgmma, TMA) that Hopper kernels of later versions are written with exist only in sm_90a, and a single real
/// target keeps nvcc from running a compute_90 PTX pass that such code fails.
const GENCODE: &str = "-gencode=arch=compute_90a,code=sm_90a";

fn main() {
    println!("cargo::rustc-check-cfg=cfg(dbrmt_has_cubins)");
    // For KernelError::NotBuilt's message.
    println!("cargo::rustc-env=DBRMT_NVCC_WHEELS={}", nvcc_wheels());
    for var in ["NVCC", "CUDA_HOME", "PATH", "DBRMT_REQUIRE_NVCC"] {
        println!("cargo::rerun-if-env-changed={var}");
    }

    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let cuda_dir = manifest_dir.join("../../cuda");
    let cuda_dir = cuda_dir.canonicalize().unwrap_or(cuda_dir);

    println!("cargo::rerun-if-changed={}", cuda_dir.display());
    for file in files_under(&cuda_dir) {
        println!("cargo::rerun-if-changed={}", file.display());
    }
    let kernels = kernel_sources(&cuda_dir);
    remove_previous_outputs(&out_dir);
    let require_nvcc = env::var("DBRMT_REQUIRE_NVCC").is_ok_and(|v| !v.is_empty() && v != "0");

    let Some(nvcc) = find_nvcc() else {
        if require_nvcc {
            panic!(
                "DBRMT_REQUIRE_NVCC is set but no nvcc was found (NVCC, $CUDA_HOME/bin/nvcc, PATH). \
                 Get one with: {}",
                how_to_get_nvcc()
            );
        }
        println!(
            "cargo::warning=dbrmt-kernels: no nvcc found (NVCC, $CUDA_HOME/bin/nvcc, PATH), so the \
             GPU kernels are not built and every launch will return KernelError::NotBuilt. \
             Get nvcc with: {}",
            how_to_get_nvcc()
        );
        println!("cargo::rustc-env=DBRMT_NVCC_USED=0");
        write_cubins_rs(&out_dir, &kernels, false);
        return;
    };

    let command = nvcc_command(&nvcc.path);
    compile_all(&command, &cuda_dir, &out_dir, &kernels);
    for kernel in &kernels {
        warn_on_spills(kernel, &out_dir);
    }
    write_cubins_rs(&out_dir, &kernels, true);
    println!("cargo::rustc-cfg=dbrmt_has_cubins");
    println!("cargo::rustc-env=DBRMT_NVCC_USED=1");
    println!("cargo::rustc-env=DBRMT_NVCC_VERSION={}", nvcc.version);
}

/// Deletes the cubins and reports of an earlier run, so that nothing stale (a kernel file since
/// removed, or everything after nvcc went away) is left for `cargo xtask kernels` to read.
fn remove_previous_outputs(out_dir: &Path) {
    let Ok(entries) = fs::read_dir(out_dir) else {
        return;
    };
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.ends_with(".cubin") || name.ends_with(".ptxas.txt") {
            let _ = fs::remove_file(&path);
        }
    }
}

/// One `cuda/<stem>.cu` file.
struct Kernel {
    /// File stem, e.g. `poison`; names the cubin and the ptxas report.
    stem: String,
    source: PathBuf,
}

/// The `.cu` files directly in `cuda/` (headers and helpers live in sub-folders), sorted so the
/// generated code does not depend on directory order.
fn kernel_sources(cuda_dir: &Path) -> Vec<Kernel> {
    let Ok(entries) = fs::read_dir(cuda_dir) else {
        return Vec::new();
    };
    let mut kernels: Vec<Kernel> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "cu"))
        .map(|source| Kernel {
            stem: source.file_stem().unwrap().to_string_lossy().into_owned(),
            source,
        })
        .collect();
    kernels.sort_by(|a, b| a.stem.cmp(&b.stem));
    kernels
}

/// Every file under `dir`, recursively (headers included), for `rerun-if-changed`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// An nvcc that ran `--version` successfully.
struct Nvcc {
    path: PathBuf,
    /// The release line of `nvcc --version`, e.g. `Cuda compilation tools, release 13.0, V13.0.88`.
    version: String,
}

/// `NVCC`, then `$CUDA_HOME/bin/nvcc`, then `nvcc` on `PATH`. An explicit `NVCC` that does not run
/// is an error rather than a reason to look elsewhere: the user asked for that one.
fn find_nvcc() -> Option<Nvcc> {
    if let Some(explicit) = env::var_os("NVCC").filter(|v| !v.is_empty()) {
        let path = PathBuf::from(&explicit);
        return match probe_nvcc(&path) {
            Some(nvcc) => Some(nvcc),
            None => panic!(
                "NVCC={} does not run (`{} --version` failed). Point NVCC at an nvcc \
                 executable, or unset it to search $CUDA_HOME/bin and PATH.",
                path.display(),
                path.display()
            ),
        };
    }
    let from_cuda_home = env::var_os("CUDA_HOME").map(|home| PathBuf::from(home).join("bin/nvcc"));
    let from_path = env::var_os("PATH").and_then(|paths| {
        env::split_paths(&paths)
            .map(|dir| dir.join("nvcc"))
            .find(|p| p.is_file())
    });
    from_cuda_home
        .into_iter()
        .chain(from_path)
        .filter(|p| p.is_file())
        .find_map(|p| probe_nvcc(&p))
}

/// Runs `nvcc --version`. The path is canonicalised first because nvcc locates its headers
/// through `nvcc.profile` next to the executable it was started as: started through a symlink
/// (the pip wheels' layout invites one) it cannot find `cuda_runtime.h`.
fn probe_nvcc(path: &Path) -> Option<Nvcc> {
    let path = path.canonicalize().ok()?;
    let output = Command::new(&path).arg("--version").output().ok()?;
    if !output.status.success() {
        return None;
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let version = stdout
        .lines()
        .find(|l| l.contains("release"))
        .or_else(|| stdout.lines().rfind(|l| !l.trim().is_empty()))
        .unwrap_or("unknown")
        .trim()
        .to_owned();
    Some(Nvcc { path, version })
}

/// nvcc as the `cc` crate configures it for this target and profile (`-ccbin` host compiler,
/// host flags, and the `rerun-if-env-changed` lines for `NVCC_PREPEND_FLAGS`,
/// `NVCC_APPEND_FLAGS`, `NVCC_CCBIN`, which nvcc itself reads), run as our `nvcc` path: cc on
/// its own only knows `NVCC` and `PATH`, not `CUDA_HOME`, so we keep its arguments and
/// environment and name the program ourselves. `debug(false)` because cc would otherwise add `-G`
/// (device debug code, no optimisation) in dev builds; `-lineinfo` gives profilers what they need.
fn nvcc_command(nvcc: &Path) -> NvccCommand {
    // cc runs the nvcc it finds (`NVCC`, else PATH) to detect the compiler family; point it at
    // ours, which may have come from CUDA_HOME. Still single-threaded here.
    env::set_var("NVCC", nvcc);
    let tool = cc::Build::new()
        .cuda(true)
        .cudart("none")
        .debug(false)
        .opt_level(3)
        .try_get_compiler();
    match tool {
        Ok(tool) => NvccCommand {
            program: nvcc.to_path_buf(),
            args: tool.args().to_vec(),
            envs: tool.get_envs().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
        },
        // cc could not work out a host compiler; nvcc finds its own (`c++` on PATH) for -cubin.
        Err(err) => {
            println!("cargo::warning=dbrmt-kernels: cc could not configure nvcc ({err}); running it plainly");
            NvccCommand {
                program: nvcc.to_path_buf(),
                args: Vec::new(),
                envs: Vec::new(),
            }
        }
    }
}

/// The nvcc invocation shared by every kernel file, before the per-file arguments.
struct NvccCommand {
    program: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
}

impl NvccCommand {
    fn cubin(&self, kernel: &Kernel, cuda_dir: &Path, out_dir: &Path) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .args(["-cubin", "-std=c++17", "-O3", "-lineinfo", GENCODE, "-Xptxas", "-v"])
            .arg("-I")
            .arg(cuda_dir)
            .arg("-o")
            .arg(cubin_path(out_dir, &kernel.stem))
            .arg(&kernel.source);
        cmd
    }
}

fn cubin_path(out_dir: &Path, stem: &str) -> PathBuf {
    out_dir.join(format!("{stem}.cubin"))
}

fn ptxas_report_path(out_dir: &Path, stem: &str) -> PathBuf {
    out_dir.join(format!("{stem}.ptxas.txt"))
}

/// Compiles the kernels on as many threads as cargo gives this build script (`NUM_JOBS`), saving
/// each ptxas report; panics after all have run if any failed, with each failure's output.
fn compile_all(command: &NvccCommand, cuda_dir: &Path, out_dir: &Path, kernels: &[Kernel]) {
    let jobs = env::var("NUM_JOBS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, kernels.len().max(1));
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::<String>::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                while let Some(kernel) = kernels.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if let Err(message) = compile_one(command, kernel, cuda_dir, out_dir) {
                        failures.lock().unwrap().push(message);
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    if !failures.is_empty() {
        panic!("nvcc failed:\n\n{}", failures.join("\n\n"));
    }
}

fn compile_one(command: &NvccCommand, kernel: &Kernel, cuda_dir: &Path, out_dir: &Path) -> Result<(), String> {
    let mut cmd = command.cubin(kernel, cuda_dir, out_dir);
    let output = cmd.output().map_err(|e| format!("could not run {cmd:?}: {e}"))?;
    // The report starts with the command, so what cc added to it can be seen. ptxas writes its
    // report to stderr; nvcc's own messages go to both streams.
    let mut report = format!("$ {cmd:?}\n");
    report.push_str(&String::from_utf8_lossy(&output.stdout));
    report.push_str(&String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        return Err(format!("{} ({}):\n{report}", kernel.source.display(), output.status));
    }
    fs::write(ptxas_report_path(out_dir, &kernel.stem), &report)
        .map_err(|e| format!("could not write the ptxas report of {}: {e}", kernel.stem))?;
    Ok(())
}

/// Reads a ptxas report and warns about each function with spills or a stack frame: local
/// memory in a hot kernel is almost always a performance bug worth seeing at build time.
fn warn_on_spills(kernel: &Kernel, out_dir: &Path) {
    let report = fs::read_to_string(ptxas_report_path(out_dir, &kernel.stem)).unwrap_or_default();
    let mut function = "?";
    for line in report.lines() {
        if let Some(name) = line.split("Function properties for ").nth(1) {
            function = name.trim();
        }
        // "    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads"
        if line.contains("bytes stack frame") {
            let numbers: Vec<u64> = line
                .split(',')
                .filter_map(|part| part.split_whitespace().next()?.parse().ok())
                .collect();
            if numbers.iter().any(|&n| n != 0) {
                println!(
                    "cargo::warning=dbrmt-kernels: {}.cu `{function}`: {}",
                    kernel.stem,
                    line.trim()
                );
            }
        }
    }
}

/// `poison` -> `POISON`, `rms_norm` -> `RMS_NORM`.
fn const_name(stem: &str) -> String {
    stem.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn write_cubins_rs(out_dir: &Path, kernels: &[Kernel], compiled: bool) {
    let mut code = String::from("// Generated by dbrmt-kernels/build.rs. Do not edit.\n\n");
    for kernel in kernels {
        let name = const_name(&kernel.stem);
        let bytes = if compiled {
            format!("include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{}.cubin\"))", kernel.stem)
        } else {
            "&[]".to_owned()
        };
        let state = if compiled {
            "an sm_90a cubin"
        } else {
            "empty: built without nvcc"
        };
        writeln!(
            code,
            "/// `cuda/{stem}.cu` ({state}).\npub const {name}: Cubin = Cubin {{\n    stem: \"{stem}\",\n    bytes: {bytes},\n}};\n",
            stem = kernel.stem
        )
        .unwrap();
    }
    code.push_str("/// Every kernel file.\npub const ALL: &[Cubin] = &[\n");
    for kernel in kernels {
        writeln!(code, "    {},", const_name(&kernel.stem)).unwrap();
    }
    code.push_str("];\n");
    fs::write(out_dir.join("cubins.rs"), code).expect("write OUT_DIR/cubins.rs");
}
