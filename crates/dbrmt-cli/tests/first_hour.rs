//! A newcomer's first hour (issue 9), each item checked on the real binary: a plain LLaMA checkpoint runs as it
//! is, a GGUF is known by its magic, numeric flags get dbrmt's messages, a state of another model says what
//! differs, `run --dump-state` continues in `generate`, inputs and outputs are checked before the work, the decode
//! rate counts decode steps, prefills show progress in tokens — and (with SmolLM2) every command line of the README
//! and of each `--help` runs as written.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use dbrmt_testkit::gguf::{tiny_llama, VOCAB};
use dbrmt_testkit::Scratch;

fn repo() -> PathBuf {
    std::env::var_os("DBRMT_REPO_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")))
}

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_dbrmt")
}

/// `dbrmt args…` with stderr a pipe (not a terminal) and no `DBRMT_PROGRESS`.
fn dbrmt(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .env_remove("DBRMT_PROGRESS")
        .stdin(Stdio::null())
        .output()
        .expect("dbrmt runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Success; returns stderr.
fn ok(out: &Output) -> String {
    let err = text(&out.stderr);
    assert!(out.status.success(), "failed ({}): {err}", out.status);
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// Failure with exit code `code`, an `error:` line mentioning every needle, no panic; returns stderr.
fn fails(out: &Output, code: i32, needles: &[&str]) -> String {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.lines().any(|l| l.starts_with("error: ")), "no error line: {err}");
    for n in needles {
        assert!(err.contains(n), "the error does not mention `{n}`: {err}");
    }
    err
}

fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// Writes ids as a 1-D int32 .npy.
fn write_ids(path: &Path, ids: &[i32]) {
    fs::write(path, dbrmt_testkit::npy::ids_i32(ids)).unwrap();
}

/// `n` ids of the tiny model's vocabulary.
fn ids(n: usize, salt: usize) -> Vec<i32> {
    (0..n).map(|i| ((i * 7 + salt * 13 + 3) % VOCAB) as i32).collect()
}

/// The tiny plain LLaMA GGUF (no ARMT tensors) under `name`, and the ARMT shape flags it runs with (T = 8).
fn tiny_gguf(scratch: &Scratch, name: &str, seed: u64) -> PathBuf {
    scratch.write(name, tiny_llama(seed, false).gguf.bytes())
}

const SHAPE: [&str; 6] = ["--segment-size", "8", "--mem-tokens", "4", "--d-mem", "8"];

fn with_shape<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend_from_slice(&SHAPE);
    all.extend_from_slice(&["--device", "cpu"]);
    all
}

#[test]
fn a_plain_llama_checkpoint_runs_as_it_is_with_memory_from_seed_0() {
    let dir = Scratch::new("plain");
    let model = tiny_gguf(&dir, "tiny.gguf", 1);
    let input = dir.path().join("ids.npy");
    write_ids(&input, &ids(20, 0));

    let inspect = dbrmt(&["inspect", s(&model)]);
    let err = ok(&inspect);
    let all = format!("{}{err}", text(&inspect.stdout));
    assert!(all.contains("seed 0"), "{all}");
    let needs = text(&inspect.stdout);
    let needs = needs
        .lines()
        .find(|l| l.starts_with("needs "))
        .unwrap_or_else(|| panic!("{all}"));
    assert!(
        needs.contains("of host memory") && needs.contains("of device memory"),
        "{needs}"
    );

    let state = |name: &str, extra: &[&str]| {
        let path = dir.path().join(name);
        let mut args = with_shape(&["run", "--model", s(&model), "--input-ids", s(&input)]);
        args.extend_from_slice(&["--dump-state", s(&path)]);
        args.extend_from_slice(extra);
        let out = dbrmt(&args);
        let err = ok(&out);
        (fs::read(&path).unwrap(), err)
    };
    let (default, err) = state("default.safetensors", &[]);
    let notes: Vec<&str> = err.lines().filter(|l| l.starts_with("note: ")).collect();
    assert_eq!(notes.len(), 1, "one note line: {err}");
    assert!(
        notes[0].contains("untrained, from seed 0") && notes[0].contains("--armt-init"),
        "{err}"
    );
    let (zero, _) = state("zero.safetensors", &["--armt-init", "0"]);
    let (five, err5) = state("five.safetensors", &["--armt-init", "5"]);
    assert!(err5.contains("from seed 5"), "{err5}");
    assert!(default == zero, "the default memory is seed 0's");
    assert!(default != five, "another seed gives another memory");
}

#[test]
fn a_gguf_is_known_by_its_magic_and_a_file_that_is_no_model_says_so() {
    let dir = Scratch::new("magic");
    let model = tiny_gguf(&dir, "blob-3f9a", 1);
    let input = dir.path().join("ids.npy");
    write_ids(&input, &ids(9, 1));
    let link = dir.path().join("model-link");
    std::os::unix::fs::symlink(&model, &link).unwrap();
    for path in [&model, &link] {
        ok(&dbrmt(&with_shape(&[
            "run",
            "--model",
            s(path),
            "--input-ids",
            s(&input),
        ])));
        ok(&dbrmt(&["inspect", s(path)]));
    }
    let notes = dir.write("notes.gguf", "these are notes, not weights\n");
    fails(&dbrmt(&["inspect", s(&notes)]), 1, &["notes.gguf", "not a GGUF file"]);
    let notes = dir.write("notes.txt", "these are notes, not weights\n");
    let err = fails(&dbrmt(&["inspect", s(&notes)]), 1, &["notes.txt", "GGUF magic"]);
    assert!(!err.contains("Not a directory"), "{err}");
    let empty = dir.path().join("empty-dir");
    fs::create_dir(&empty).unwrap();
    fails(&dbrmt(&["inspect", s(&empty)]), 1, &["config.json"]);
}

#[test]
fn negative_and_malformed_numbers_get_dbrmts_own_messages() {
    let dir = Scratch::new("numbers");
    let model = tiny_gguf(&dir, "tiny.gguf", 1);
    let m = s(&model);
    let cases: [(&[&str], &str); 7] = [
        (
            &["generate", "--model", m, "--prompt", "hi", "--temperature", "-1"],
            "--temperature",
        ),
        (
            &["generate", "--model", m, "--prompt", "hi", "--max-new-tokens", "-5"],
            "--max-new-tokens",
        ),
        (
            &["generate", "--model", m, "--prompt", "hi", "--max-new-tokens", "0"],
            "--max-new-tokens",
        ),
        (
            &["generate", "--model", m, "--prompt", "hi", "--top-p", "-0.5"],
            "--top-p",
        ),
        (&["generate", "--model", m, "--prompt", "hi", "--seed", "-3"], "--seed"),
        (&["inspect", m, "--segment-size", "-8"], "--segment-size"),
        (&["inspect", m, "--armt-init", "x7"], "--armt-init"),
    ];
    for (args, flag) in cases {
        let err = fails(&dbrmt(args), 2, &[flag]);
        assert!(!err.contains("unexpected argument"), "{args:?}: {err}");
        assert!(
            err.contains("must be") || err.contains("a whole number"),
            "{args:?}: {err}"
        );
    }
}

/// `generate --input-ids` on the tiny model (it prints ids), with the shape flags and `extra`.
fn generate(model: &Path, input: &Path, extra: &[&str]) -> Output {
    let mut args = with_shape(&["generate", "--model", s(model), "--input-ids", s(input)]);
    args.extend_from_slice(extra);
    dbrmt(&args)
}

#[test]
fn a_state_of_another_model_says_what_differs() {
    let dir = Scratch::new("parts");
    let model = tiny_gguf(&dir, "tiny.gguf", 1);
    let other_weights = tiny_gguf(&dir, "other.gguf", 2);
    let input = dir.path().join("ids.npy");
    write_ids(&input, &ids(12, 2));
    let state = dir.path().join("state.safetensors");
    ok(&generate(
        &model,
        &input,
        &["--max-new-tokens", "1", "--save-state", s(&state)],
    ));
    ok(&generate(
        &model,
        &input,
        &["--max-new-tokens", "1", "--load-state", s(&state)],
    ));

    let load = |model: &Path, extra: &[&str]| {
        let mut args = vec![
            "generate",
            "--model",
            s(model),
            "--input-ids",
            s(&input),
            "--device",
            "cpu",
        ];
        args.extend_from_slice(&["--max-new-tokens", "1", "--load-state", s(&state)]);
        args.extend_from_slice(extra);
        dbrmt(&args)
    };
    let t = load(&model, &["--segment-size", "16", "--mem-tokens", "4", "--d-mem", "8"]);
    let err = fails(&t, 1, &["segment size T (--segment-size) 8 there, 16 here"]);
    assert!(!err.contains("dbrmt-id1:"), "no opaque hashes: {err}");
    let seed = load(
        &model,
        &[
            "--armt-init",
            "3",
            "--segment-size",
            "8",
            "--mem-tokens",
            "4",
            "--d-mem",
            "8",
        ],
    );
    fails(&seed, 1, &["untrained from seed 0 there, untrained from seed 3 here"]);
    let m_d = load(&model, &["--segment-size", "8", "--mem-tokens", "2", "--d-mem", "4"]);
    fails(
        &m_d,
        1,
        &[
            "memory tokens M (--mem-tokens) 4 there, 2 here",
            "d_mem (--d-mem) 8 there, 4 here",
        ],
    );
    let weights = load(
        &other_weights,
        &["--segment-size", "8", "--mem-tokens", "4", "--d-mem", "8"],
    );
    fails(&weights, 1, &["other weights"]);
}

#[test]
fn run_dump_state_continues_in_generate_as_if_never_stopped() {
    let dir = Scratch::new("dump");
    let model = tiny_gguf(&dir, "tiny.gguf", 1);
    let (first, rest) = (ids(16, 3), ids(5, 4));
    let (a, b, whole) = (
        dir.path().join("a.npy"),
        dir.path().join("b.npy"),
        dir.path().join("ab.npy"),
    );
    write_ids(&a, &first);
    write_ids(&b, &rest);
    write_ids(&whole, &[first.clone(), rest].concat());
    let state = dir.path().join("run.safetensors");
    let run = dbrmt(&with_shape(&[
        "run",
        "--model",
        s(&model),
        "--input-ids",
        s(&a),
        "--dump-state",
        s(&state),
    ]));
    ok(&run);
    assert!(text(&run.stdout).contains("after 2 segments"), "{}", text(&run.stdout));
    let resumed = generate(&model, &b, &["--max-new-tokens", "6", "--load-state", s(&state)]);
    ok(&resumed);
    let straight = generate(&model, &whole, &["--max-new-tokens", "6"]);
    ok(&straight);
    assert!(!text(&straight.stdout).trim().is_empty());
    assert_eq!(text(&resumed.stdout), text(&straight.stdout));
}

#[test]
fn inputs_and_outputs_are_checked_before_the_work() {
    let dir = Scratch::new("outputs");
    let model = tiny_gguf(&dir, "tiny.gguf", 1);
    let input = dir.path().join("ids.npy");
    write_ids(&input, &ids(10, 5));
    let missing = dir.path().join("no-such-folder");
    let logits = missing.join("logits.npy");
    let state = missing.join("state.safetensors");
    let cases: [(Vec<&str>, &str); 4] = [
        (
            with_shape(&[
                "run",
                "--model",
                s(&model),
                "--input-ids",
                s(&input),
                "--dump-logits",
                s(&logits),
            ]),
            "--dump-logits",
        ),
        (
            with_shape(&[
                "run",
                "--model",
                s(&model),
                "--input-ids",
                s(&input),
                "--dump-state",
                s(&state),
            ]),
            "--dump-state",
        ),
        (
            with_shape(&[
                "generate",
                "--model",
                s(&model),
                "--input-ids",
                s(&input),
                "--save-state",
                s(&state),
            ]),
            "--save-state",
        ),
        (
            with_shape(&[
                "generate",
                "--model",
                s(&model),
                "--input-ids",
                s(&input),
                "--save-state",
                s(dir.path()),
            ]),
            "is a folder",
        ),
    ];
    for (args, flag) in cases {
        let err = fails(&dbrmt(&args), 1, &[flag]);
        assert!(!err.contains("loaded "), "checked before the model loads: {err}");
        assert!(
            !err.contains(".tmp") && !err.contains("probe"),
            "names the path, not a temp file: {err}"
        );
    }
    let chat = dbrmt(&["generate", "--model", s(&model), "--input-ids", s(&input), "--chat"]);
    fails(&chat, 2, &["--chat", "--input-ids"]);
}

#[test]
fn decode_speed_counts_decode_steps_only() {
    let dir = Scratch::new("speed");
    let model = tiny_gguf(&dir, "tiny.gguf", 1);
    let input = dir.path().join("ids.npy");
    write_ids(&input, &ids(10, 6));
    let one = ok(&generate(&model, &input, &["--max-new-tokens", "1"]));
    let line = one.lines().find(|l| l.starts_with("prefill ")).expect("a speed line");
    assert!(line.contains("no decode step"), "{line}");
    assert_eq!(
        line.matches("tokens/s").count(),
        1,
        "only the prefill has a rate: {line}"
    );
    let three = ok(&generate(&model, &input, &["--max-new-tokens", "3"]));
    let line = three.lines().find(|l| l.starts_with("prefill ")).expect("a speed line");
    assert!(line.contains("3 tokens generated, 2 decode steps in "), "{line}");
}

/// The tiny model over `n` tokens (T = 8) with `DBRMT_PROGRESS` as given; returns stderr.
fn run_with_progress(n: usize, progress: Option<&str>) -> String {
    let dir = Scratch::new("progress");
    let model = tiny_gguf(&dir, "tiny.gguf", 1);
    let input = dir.path().join("ids.npy");
    write_ids(&input, &ids(n, 7));
    let mut cmd = Command::new(binary());
    cmd.args(with_shape(&[
        "run",
        "--model",
        s(&model),
        "--input-ids",
        s(&input),
        "--logits",
        "none",
    ]));
    match progress {
        Some(v) => cmd.env("DBRMT_PROGRESS", v),
        None => cmd.env_remove("DBRMT_PROGRESS"),
    };
    let out = cmd.output().unwrap();
    ok(&out)
}

#[test]
fn prefill_progress_is_in_tokens_with_a_whole_rate_and_quiet_in_a_pipe() {
    // with DBRMT_PROGRESS=always the line shows from the start, once a second (about 3 s in a dev build)
    let n = 24_000;
    let t0 = Instant::now();
    let shown = run_with_progress(n, Some("always"));
    let took = t0.elapsed();
    let lines: Vec<&str> = shown.lines().filter(|l| l.starts_with("prefill [")).collect();
    assert!(!lines.is_empty(), "no progress line: {shown}");
    if took > Duration::from_secs(2) {
        assert!(
            lines.iter().any(|l| l.contains("tokens/s, eta")),
            "a {took:?} prefill showed no rate: {shown}"
        );
    }
    for l in &lines {
        assert!(l.contains(&format!("/{} tokens", thousands(n))), "{l}");
        if let Some(rate) = l.split(", ").find(|p| p.ends_with(" tokens/s")) {
            let number = rate.trim_end_matches(" tokens/s").replace(',', "");
            assert!(number.parse::<u64>().is_ok(), "a whole rate, not `{rate}`: {l}");
        }
    }
    let quiet = run_with_progress(64, None);
    assert!(!quiet.contains("prefill ["), "no progress in a pipe: {quiet}");
}

fn thousands(n: usize) -> String {
    let d = n.to_string();
    let mut out = String::new();
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[test]
fn the_readme_says_where_the_binary_is_and_what_a_run_costs() {
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    for needle in [
        "cargo install --locked --path crates/dbrmt-cli",
        "target/release/dbrmt",
        "memory",
        "minutes",
        "On a GPU",
    ] {
        assert!(readme.contains(needle), "the README does not say `{needle}`");
    }
}

// ---- with SmolLM2: the README's and the `--help` examples' command lines, as written ----

fn smollm2() -> PathBuf {
    let path = repo().join("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "{} is missing: cargo xtask fetch-model smollm2",
        path.display()
    );
    path
}

/// A directory that looks like the repository to a command written for its root (models/, docs/, testdata/, train/
/// linked), where the commands' outputs land.
fn like_the_repo(label: &str) -> Scratch {
    let dir = Scratch::new(label);
    for sub in ["models", "docs", "testdata", "train"] {
        std::os::unix::fs::symlink(repo().join(sub), dir.path().join(sub)).unwrap();
    }
    dir
}

/// Runs `line` with `sh -c` in `dir`, `dbrmt` on PATH; it must succeed without a panic.
fn run_line(dir: &Path, line: &str) {
    let bin_dir = Path::new(binary()).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let t0 = Instant::now();
    let out = Command::new("sh")
        .args(["-c", line])
        .current_dir(dir)
        .env("PATH", path)
        .env_remove("DBRMT_PROGRESS")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "`{line}` failed ({}): {err}", out.status);
    assert!(
        !err.contains("panicked") && !err.contains("warning:"),
        "`{line}`: {err}"
    );
    eprintln!("ok in {:.1} s: {line}", t0.elapsed().as_secs_f64());
}

/// The example lines at the end of `dbrmt [COMMAND] --help`.
fn help_examples(command: Option<&str>) -> Vec<String> {
    let mut args: Vec<&str> = command.into_iter().collect();
    args.push("--help");
    let out = dbrmt(&args);
    ok(&out);
    let help = text(&out.stdout);
    let examples = help.split_once("\nExamples").map(|(_, e)| e).unwrap_or("");
    examples
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("dbrmt ") || l.starts_with("echo "))
        .map(str::to_string)
        .collect()
}

#[test]
#[ignore = "SmolLM2 on the CPU model: cargo xtask ci runs it in release (after cargo xtask fetch-model smollm2)"]
fn every_help_example_runs_as_written() {
    smollm2();
    for command in [None, Some("inspect"), Some("tokenize"), Some("run"), Some("generate")] {
        let lines = help_examples(command);
        assert!(!lines.is_empty(), "dbrmt {command:?} --help has no examples");
        let dir = like_the_repo("help");
        for line in lines {
            run_line(dir.path(), &line);
        }
    }
}

/// The runnable lines of the README: those of its ```sh blocks, comments cut.
fn readme_lines() -> Vec<String> {
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    let mut lines = Vec::new();
    let mut inside = false;
    for line in readme.lines() {
        match line.trim() {
            "```sh" => inside = true,
            "```" if inside => inside = false,
            l if inside && !l.is_empty() && !l.starts_with('#') => {
                let command = l.split_once("  #").map_or(l, |(c, _)| c).trim();
                lines.push(command.to_string());
            }
            _ => {}
        }
    }
    lines
}

#[test]
fn the_readmes_cargo_lines_name_what_exists() {
    let lines = readme_lines();
    assert!(lines.len() >= 5, "{lines:?}");
    let xtask = fs::read_to_string(repo().join("xtask/src/main.rs")).unwrap();
    for line in lines.iter().filter(|l| l.starts_with("cargo ")) {
        if line.starts_with("cargo install ") {
            let path = line
                .split_once("--path ")
                .map(|(_, p)| p.split_whitespace().next().unwrap_or(""));
            let path = path.unwrap_or_else(|| panic!("{line}: no --path"));
            let manifest = fs::read_to_string(repo().join(path).join("Cargo.toml")).unwrap();
            assert!(manifest.contains("name = \"dbrmt\""), "{line}: no dbrmt binary there");
        } else if let Some(rest) = line.strip_prefix("cargo xtask ") {
            let name = rest.split_whitespace().next().unwrap();
            assert!(xtask.contains(&format!("Some(\"{name}\")")), "{line}: no such xtask");
        } else {
            panic!("a cargo line this test does not know: {line}");
        }
    }
}

#[test]
#[ignore = "SmolLM2 on the CPU model: cargo xtask ci runs it in release (after cargo xtask fetch-model smollm2)"]
fn every_readme_command_runs_as_written() {
    smollm2();
    let dir = like_the_repo("readme");
    let mut ran = 0;
    // the cargo lines are CI's own steps (xtask ci runs the demo), checked by the test above
    for line in readme_lines().iter().filter(|l| !l.starts_with("cargo ")) {
        run_line(dir.path(), line);
        ran += 1;
    }
    assert!(ran >= 3, "the README's dbrmt lines ran: {ran}");
}

#[test]
#[ignore = "SmolLM2 on the CPU model: cargo xtask ci runs it in release (after cargo xtask fetch-model smollm2)"]
fn tokenize_reads_a_file_or_stdin_and_writes_what_run_takes() {
    let model = smollm2();
    let dir = Scratch::new("tokenize");
    let sentence = "The logbook's first entry: fair wind.";
    let file = dir.write("in.txt", sentence);
    let printed = dbrmt(&["tokenize", "--model", s(&model), "--text", sentence]);
    ok(&printed);
    let from_file = dbrmt(&["tokenize", "--model", s(&model), "--file", s(&file)]);
    ok(&from_file);
    assert_eq!(text(&printed.stdout), text(&from_file.stdout));

    let npy = dir.path().join("ids.npy");
    let mut child = Command::new(binary())
        .args(["tokenize", "--model", s(&model), "--file", "-", "--out", s(&npy)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(sentence.as_bytes()).unwrap();
    ok(&child.wait_with_output().unwrap());
    let bytes = fs::read(&npy).unwrap();
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let stored: Vec<String> = bytes[10 + header_len..]
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]).to_string())
        .collect();
    assert_eq!(stored.join(" "), text(&printed.stdout).trim());
    let run = dbrmt(&["run", "--model", s(&model), "--input-ids", s(&npy), "--device", "cpu"]);
    ok(&run);
    assert!(
        text(&run.stdout).contains(&format!("{} tokens", stored.len())),
        "{}",
        text(&run.stdout)
    );
}
