//! `cargo xtask sass-diff [REV] [--file STEM]...`: which kernel entry points' machine code (SASS) a change to `cuda/`
//! changed. Compiles every `cuda/*.cu` (or the named stems) of git revision `REV` (default `HEAD`) and of the working
//! tree with `crates/dbrmt-kernels/build.rs`'s device flags, disassembles each cubin with `cuobjdump -sass`, and compares
//! every function's instructions (addresses and encodings left out), whole: a refactor that should not touch a kernel is
//! checked without a GPU, and a changed one is named with its instruction counts and the first differing instruction.
//!
//! Needs nvcc (`NVCC`, `$CUDA_HOME/bin`, or on `PATH`, as build.rs looks) and cuobjdump (`CUOBJDUMP`, next to nvcc, or on `PATH`; the PyPI wheel
//! `nvidia-cuda-cuobjdump` has it). The revision's disassembly is kept in `target/sass-diff/<commit>-<nvcc>/`, so
//! a second run against the same commit compiles only the working tree.

use std::collections::BTreeMap;
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::scratch::Scratch;

/// The device flags of `crates/dbrmt-kernels/build.rs` (host flags do not change device code).
const NVCC_FLAGS: [&str; 5] = [
    "-cubin",
    "-std=c++17",
    "-O3",
    "-lineinfo",
    "-gencode=arch=compute_90a,code=sm_90a",
];

pub fn run(args: &[String]) -> Result<()> {
    let (rev, stems) = parse_args(args)?;
    let root = crate::cargo::repo_root();
    let cuda_home = env::var_os("CUDA_HOME").map(|h| PathBuf::from(h).join("bin"));
    let nvcc = tool("NVCC", "nvcc", cuda_home.as_deref())?;
    let cuobjdump = tool("CUOBJDUMP", "cuobjdump", nvcc.parent())?;
    let commit = resolve(&root, &rev)?;
    let cache = cache_dir(&root, &commit, &nvcc)?;
    let scratch = Scratch::new("sass-diff")?;
    let work = scratch.path();
    let old_tree = work.join("old");
    fs::create_dir_all(&old_tree)?;
    export_cuda(&root, &commit, &old_tree)?;
    let new_cuda = root.join("cuda");
    let old_cuda = old_tree.join("cuda");
    let mut files: Vec<String> = kernel_stems(&new_cuda)?;
    for s in kernel_stems(&old_cuda)? {
        if !files.contains(&s) {
            files.push(s);
        }
    }
    if !stems.is_empty() {
        files.retain(|f| stems.contains(f));
        if files.is_empty() {
            bail!("no cuda/<stem>.cu for {stems:?} in the working tree or {rev}");
        }
    }
    println!(
        "compiling {} kernel file(s) of {rev} and of the working tree...",
        files.len()
    );
    // the files on as many threads as the machine has (nvcc is single-threaded; gemm_sm90.cu takes the longest,
    // so it goes first), each file's two trees one after the other
    let threads = std::thread::available_parallelism()
        .map_or(4, |n| n.get())
        .min(files.len())
        .max(1);
    files.sort_by_key(|f| std::cmp::Reverse(fs::metadata(new_cuda.join(format!("{f}.cu"))).map_or(0, |m| m.len())));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Result<FileDiff>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (nvcc, cuobjdump, files, next, cache) = (&nvcc, &cuobjdump, &files, &next, Some(cache.as_path()));
                let (old_cuda, new_cuda) = (&old_cuda, &new_cuda);
                scope.spawn(move || -> Vec<Result<FileDiff>> {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(stem) = files.get(i) else { return out };
                        let old = sass_of(nvcc, cuobjdump, old_cuda, stem, &work.join("old-cubins"), cache);
                        out.push(old.and_then(|old| {
                            let new = sass_of(nvcc, cuobjdump, new_cuda, stem, &work.join("new-cubins"), None)?;
                            Ok(FileDiff {
                                stem: stem.clone(),
                                functions: compare(&old, &new),
                            })
                        }));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec![Err(anyhow::anyhow!("a compile thread panicked"))])
            })
            .collect()
    });
    let mut diffs = results.into_iter().collect::<Result<Vec<FileDiff>>>()?;
    diffs.sort_by(|a, b| a.stem.cmp(&b.stem));
    let changed: usize = diffs.iter().map(FileDiff::report).sum();
    println!(
        "\n{changed} function(s) changed against {rev} (instructions compared whole, addresses and encodings left out)"
    );
    Ok(())
}

fn parse_args(args: &[String]) -> Result<(String, Vec<String>)> {
    let (mut rev, mut stems) = (None, Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--file" => stems.push(
                it.next()
                    .context("--file needs a kernel file's stem (e.g. gemm_sm90)")?
                    .trim_end_matches(".cu")
                    .to_owned(),
            ),
            s if s.starts_with('-') => bail!("unknown option {s} (usage: sass-diff [REV] [--file STEM]...)"),
            s if rev.is_none() => rev = Some(s.to_owned()),
            s => bail!("a second revision {s} (usage: sass-diff [REV] [--file STEM]...)"),
        }
    }
    Ok((rev.unwrap_or_else(|| "HEAD".into()), stems))
}

/// A tool from the environment variable `var`, else next to `beside`, else on PATH.
fn tool(var: &str, name: &str, beside: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = env::var_os(var) {
        return Ok(PathBuf::from(p));
    }
    if let Some(dir) = beside {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "{name} not found ({var}, beside nvcc or in CUDA_HOME/bin, PATH): nvcc comes with the CUDA toolkit or the nvidia-cuda-nvcc wheel, \
                 cuobjdump with nvidia-cuda-cuobjdump"
            )
        })
}

/// `cuda/` of revision `rev` into `dir/cuda` (`git archive | tar -x`).
fn export_cuda(root: &Path, rev: &str, dir: &Path) -> Result<()> {
    let status = Command::new("sh")
        .arg("-c")
        .arg(r#"git -C "$1" archive "$2" cuda | tar -x -C "$3""#)
        .arg("sh")
        .arg(root)
        .arg(rev)
        .arg(dir)
        .status()
        .context("running git archive")?;
    if !status.success() || !dir.join("cuda").is_dir() {
        bail!("could not export cuda/ of {rev} (git archive {rev} cuda)");
    }
    Ok(())
}

/// The stems of the kernel files `cuda_dir/*.cu` (not `dev/`).
fn kernel_stems(cuda_dir: &Path) -> Result<Vec<String>> {
    let mut stems = Vec::new();
    for e in fs::read_dir(cuda_dir).with_context(|| format!("reading {}", cuda_dir.display()))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "cu") {
            if let Some(s) = p.file_stem() {
                stems.push(s.to_string_lossy().into_owned());
            }
        }
    }
    Ok(stems)
}

/// The SASS of every function of `cuda_dir/stem.cu` (empty where the file does not exist in that tree).
/// With `cache` (the revision's side), the disassembly is read from `cache/stem.sass` when an earlier run left it there,
/// and left there otherwise.
fn sass_of(
    nvcc: &Path,
    cuobjdump: &Path,
    cuda_dir: &Path,
    stem: &str,
    out: &Path,
    cache: Option<&Path>,
) -> Result<Functions> {
    let source = cuda_dir.join(format!("{stem}.cu"));
    if !source.is_file() {
        return Ok(Functions::new());
    }
    let cached = cache.map(|dir| dir.join(format!("{stem}.sass")));
    if let Some(text) = cached.as_ref().and_then(|p| fs::read_to_string(p).ok()) {
        return Ok(parse_sass(&text));
    }
    fs::create_dir_all(out)?;
    let cubin = out.join(format!("{stem}.cubin"));
    let mut compile = Command::new(nvcc);
    compile
        .args(NVCC_FLAGS)
        .arg("-I")
        .arg(cuda_dir)
        .arg("-o")
        .arg(&cubin)
        .arg(&source);
    stdout_of(&mut compile, &source)?;
    let dump = stdout_of(Command::new(cuobjdump).arg("-sass").arg(&cubin), &cubin)?;
    let text = String::from_utf8_lossy(&dump);
    if let Some(path) = cached {
        // written whole, then renamed: a run stopped half-way leaves no half file for the next
        let part = path.with_extension(format!("part{}", std::process::id()));
        if fs::create_dir_all(path.parent().expect("a file in the cache directory")).is_ok()
            && fs::write(&part, text.as_bytes()).is_ok()
        {
            let _ = fs::rename(&part, &path);
        }
    }
    Ok(parse_sass(&text))
}

/// The full hash of the commit `rev` names, or an error saying it names none.
fn resolve(root: &Path, rev: &str) -> Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["rev-parse", "--verify", "--quiet"])
        .arg(format!("{rev}^{{commit}}"))
        .output()
        .context("running git rev-parse")?;
    if !out.status.success() {
        bail!("{rev} is not a commit of this repository");
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Where the disassembly of `commit` by this nvcc is kept between runs: `target/sass-diff/<commit>-<nvcc>`.
fn cache_dir(root: &Path, commit: &str, nvcc: &Path) -> Result<PathBuf> {
    let version = Command::new(nvcc)
        .arg("--version")
        .output()
        .context("running nvcc --version")?;
    Ok(root
        .join("target")
        .join("sass-diff")
        .join(format!("{commit}-{:016x}", fnv1a(&version.stdout))))
}

/// FNV-1a, 64 bits: a short name for a compiler's version text.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Runs `cmd` (on `input`) and returns its standard output, or an error with its standard error.
fn stdout_of(cmd: &mut Command, input: &Path) -> Result<Vec<u8>> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.output().with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} failed on {}:\n{}",
            input.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}

/// Function name → its instructions, in order.
type Functions = BTreeMap<String, Vec<String>>;

/// `cuobjdump -sass` output into each function's instructions: the text of every `/*ADDR*/  INSTR ;  /* ENC */`
/// line (any number of hex digits in the address: a function past 64 KB has five), without address or encoding.
fn parse_sass(dump: &str) -> Functions {
    let mut out = Functions::new();
    let mut current: Option<String> = None;
    for line in dump.lines() {
        if let Some(name) = line.split("Function : ").nth(1) {
            let name = name.trim().to_owned();
            out.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        let Some(f) = current.as_ref() else { continue };
        let t = line.trim_start();
        let Some(rest) = t.strip_prefix("/*") else { continue };
        let Some((addr, instr)) = rest.split_once("*/") else {
            continue;
        };
        if addr.is_empty() || !addr.chars().all(|c| c.is_ascii_hexdigit()) {
            continue;
        }
        let instr = instr
            .split(" /*")
            .next()
            .unwrap_or("")
            .trim()
            .trim_end_matches(';')
            .trim();
        if !instr.is_empty() {
            out.get_mut(f).expect("entry made above").push(instr.to_owned());
        }
    }
    out
}

/// How one function compares.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    Same(usize),
    /// Old and new instruction counts, and the index of the first differing instruction.
    Differs(usize, usize, usize),
    New(usize),
    Gone(usize),
}

fn compare(old: &Functions, new: &Functions) -> Vec<(String, Status)> {
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|n| {
            let status = match (old.get(n), new.get(n)) {
                (Some(a), Some(b)) if a == b => Status::Same(a.len()),
                (Some(a), Some(b)) => {
                    let first = a
                        .iter()
                        .zip(b)
                        .position(|(x, y)| x != y)
                        .unwrap_or(a.len().min(b.len()));
                    Status::Differs(a.len(), b.len(), first)
                }
                (None, Some(b)) => Status::New(b.len()),
                (Some(a), None) => Status::Gone(a.len()),
                (None, None) => unreachable!("the name came from one of them"),
            };
            (n.clone(), status)
        })
        .collect()
}

struct FileDiff {
    stem: String,
    functions: Vec<(String, Status)>,
}

impl FileDiff {
    /// Prints the file's line (and one per changed function); returns how many changed.
    fn report(&self) -> usize {
        let same = self
            .functions
            .iter()
            .filter(|(_, s)| matches!(s, Status::Same(_)))
            .count();
        let changed: Vec<&(String, Status)> = self
            .functions
            .iter()
            .filter(|(_, s)| !matches!(s, Status::Same(_)))
            .collect();
        println!(
            "{}.cu: {} function(s), {same} identical, {} changed",
            self.stem,
            self.functions.len(),
            changed.len()
        );
        for (name, status) in &changed {
            match status {
                Status::Differs(a, b, i) => {
                    println!("  differs  {name}: {a} -> {b} instructions, first difference at instruction {i}")
                }
                Status::New(b) => println!("  new      {name}: {b} instructions"),
                Status::Gone(a) => println!("  gone     {name}: {a} instructions"),
                Status::Same(_) => {}
            }
        }
        changed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compilers_apart() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_ne!(fnv1a(b"Build cuda_13.0"), fnv1a(b"Build cuda_13.1"));
    }

    const DUMP: &str = "
Fatbin elf code:
================
arch = sm_90a
	code for sm_90a
		Function : kernel_b
	.headerflags	@\"EF_CUDA_TEXMODE_UNIFIED\"
        /*0000*/                   LDC R1, c[0x0][0x28] ;                     /* 0x00000a00ff017b82 */
                                                                                   /* 0x000fe40000000800 */
        /*fff0*/                   NOP ;                                      /* 0x0000000000007918 */
        /*10000*/                  LDG.E.STRONG.GPU R0, desc[UR32][R2.64] ;   /* 0x0000002002007981 */
        /*10010*/              @!P0 BRA 0x10000 ;                             /* 0x000000000000794c */
		..........

		Function : kernel_a
        /*0000*/                   EXIT ;                                     /* 0x000000000000794d */
";

    #[test]
    fn parses_every_instruction_of_every_function_past_64_kb() {
        let f = parse_sass(DUMP);
        assert_eq!(f.len(), 2);
        assert_eq!(
            f["kernel_b"],
            [
                "LDC R1, c[0x0][0x28]",
                "NOP",
                "LDG.E.STRONG.GPU R0, desc[UR32][R2.64]",
                "@!P0 BRA 0x10000"
            ]
        );
        assert_eq!(f["kernel_a"], ["EXIT"]);
    }

    #[test]
    fn compares_whole_functions() {
        let old = parse_sass(DUMP);
        let mut new = old.clone();
        assert!(compare(&old, &new).iter().all(|(_, s)| matches!(s, Status::Same(_))));
        // a change past the first 64 KB of a function is seen
        new.get_mut("kernel_b").unwrap()[3] = "@!P1 BRA 0x10000".into();
        new.remove("kernel_a");
        new.insert("kernel_c".into(), vec!["EXIT".into()]);
        let got = compare(&old, &new);
        assert_eq!(
            got,
            [
                ("kernel_a".to_owned(), Status::Gone(1)),
                ("kernel_b".to_owned(), Status::Differs(4, 4, 3)),
                ("kernel_c".to_owned(), Status::New(1)),
            ]
        );
    }

    #[test]
    fn reads_a_revision_and_stems() {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(parse_args(&[]).unwrap(), ("HEAD".into(), vec![]));
        assert_eq!(
            parse_args(&a(&["3e73b7e", "--file", "gemm_sm90.cu", "--file", "rope"])).unwrap(),
            ("3e73b7e".into(), a(&["gemm_sm90", "rope"]))
        );
        assert!(parse_args(&a(&["a", "b"])).is_err());
        assert!(parse_args(&a(&["--file"])).is_err());
        assert!(parse_args(&a(&["--frobnicate"])).is_err());
    }
}
