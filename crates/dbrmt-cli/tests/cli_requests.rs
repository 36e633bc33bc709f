//! `dbrmt run` and `dbrmt generate` with several inputs (one packed schedule, on the CPU model): each input's dumps
//! and tokens are byte for byte those of running it alone; clashing dump names are refused.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    dbrmt_testkit::paths::fixture(name)
}

fn dbrmt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dbrmt"))
        .args(args)
        .output()
        .expect("dbrmt runs")
}

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dbrmt-cli-requests-{}-{test}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes ids as a 1-D int64 .npy.
fn write_ids(path: &Path, ids: &[i64]) {
    let mut header = format!(
        "{{'descr': '<i8', 'fortran_order': False, 'shape': ({},), }}",
        ids.len()
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(ids.iter().flat_map(|x| x.to_le_bytes()));
    fs::write(path, bytes).unwrap();
}

/// Three inputs of the tiny case: all 160 ids (5 segments), a partial-segment prefix, a one-segment prefix.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let ids = dbrmt_formats::npy::read_ids(&fixture("tiny-armt-names").join("input_ids.npy")).unwrap();
    [("whole", 160), ("partial", 77), ("short", 9)]
        .iter()
        .map(|&(name, n)| {
            let path = dir.join(format!("{name}.npy"));
            write_ids(&path, &ids[..n]);
            path
        })
        .collect()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn run_with_several_inputs_dumps_what_each_dumps_alone() {
    let dir = scratch("run");
    let model = fixture("tiny-armt-names");
    let inputs = inputs(&dir);
    let (logits, states) = (dir.join("logits"), dir.join("states"));
    let mut args = vec![
        "run",
        "--device",
        "cpu",
        "--model",
        model.to_str().unwrap(),
        "--logits",
        "all",
    ];
    args.push("--input-ids");
    args.extend(inputs.iter().map(|p| p.to_str().unwrap()));
    args.extend([
        "--dump-logits",
        logits.to_str().unwrap(),
        "--dump-state",
        states.to_str().unwrap(),
    ]);
    let stdout = ok(&dbrmt(&args));
    assert!(
        stdout.contains("3 requests") && stdout.contains("[2] short: 9 tokens"),
        "{stdout}"
    );
    for input in &inputs {
        let stem = input.file_stem().unwrap().to_str().unwrap();
        let (l, s) = (
            dir.join(format!("{stem}-alone.npy")),
            dir.join(format!("{stem}-alone.st")),
        );
        ok(&dbrmt(&[
            "run",
            "--device",
            "cpu",
            "--model",
            model.to_str().unwrap(),
            "--logits",
            "all",
            "--input-ids",
            input.to_str().unwrap(),
            "--dump-logits",
            l.to_str().unwrap(),
            "--dump-state",
            s.to_str().unwrap(),
        ]));
        let packed_logits = fs::read(logits.join(format!("{stem}.npy"))).unwrap();
        assert!(
            packed_logits == fs::read(&l).unwrap(),
            "{stem}: logits differ from alone"
        );
        let packed_state = fs::read(states.join(format!("{stem}.safetensors"))).unwrap();
        assert!(
            packed_state == fs::read(&s).unwrap(),
            "{stem}: state differs from alone"
        );
    }
    // two inputs with one stem would overwrite each other's dumps
    let other = dir.join("again");
    fs::create_dir_all(&other).unwrap();
    let clash = other.join("short.npy");
    fs::copy(&inputs[2], &clash).unwrap();
    let out = dbrmt(&[
        "run",
        "--device",
        "cpu",
        "--model",
        model.to_str().unwrap(),
        "--input-ids",
        inputs[2].to_str().unwrap(),
        clash.to_str().unwrap(),
    ]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("file stem `short`"));
}

#[test]
fn generate_with_several_inputs_prints_what_each_generates_alone() {
    let dir = scratch("generate");
    let model = fixture("tiny-armt-names");
    let inputs = inputs(&dir);
    let common = [
        "generate",
        "--device",
        "cpu",
        "--model",
        model.to_str().unwrap(),
        "--max-new-tokens",
        "40",
    ];
    let mut args = common.to_vec();
    args.push("--input-ids");
    args.extend(inputs.iter().map(|p| p.to_str().unwrap()));
    let stdout = ok(&dbrmt(&args));
    for (i, input) in inputs.iter().enumerate() {
        let stem = input.file_stem().unwrap().to_str().unwrap();
        let mut one = common.to_vec();
        one.extend(["--input-ids", input.to_str().unwrap()]);
        let alone = ok(&dbrmt(&one));
        let header = stdout
            .lines()
            .position(|l| l.starts_with(&format!("=== [{i}] {stem}:")))
            .unwrap_or_else(|| panic!("no result for {stem}: {stdout}"));
        let packed = stdout.lines().nth(header + 1).unwrap();
        assert_eq!(packed.trim(), alone.trim(), "{stem}: tokens differ from alone");
        assert_eq!(packed.split_whitespace().count(), 40);
    }
}
