//! The trained SmolLM2 memory (`train/armt-smollm2-135m.safetensors`, applied with `--armt`) on the CPU model:
//! a held-out fact in the first segment of a three-segment document (`testdata/trained/three-segments.txt`, made by
//! `train/make_demo.py`) is answered from the memory at the document's end; the same file with `W_mv` zeroed (the
//! memory then carries nothing across a segment) does not answer it; diagonal and sequential write the same bytes.
//!
//! They need `models/smollm2` (`cargo xtask fetch-model smollm2`): ignored in a plain `cargo test`, run in release
//! by `cargo xtask ci`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dbrmt_testkit::Scratch;

const GGUF: &str = "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
const MEMORY: &str = "train/armt-smollm2-135m.safetensors";
const DOCUMENT: &str = "testdata/trained/three-segments.txt";

fn repo() -> PathBuf {
    std::env::var_os("DBRMT_REPO_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")))
}

fn dbrmt(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_dbrmt"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("dbrmt runs");
    assert!(
        out.status.success(),
        "dbrmt {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The number the document states for the name its last words ask about ("… for NAME is").
fn expected_answer(text: &str) -> String {
    let name = text.rsplit("for ").next().unwrap().strip_suffix(" is").unwrap();
    let fact = format!("for {name} is ");
    let at = text.find(&fact).expect("the document states the fact") + fact.len();
    text[at..].chars().take_while(char::is_ascii_digit).collect()
}

/// The memory file with every `W_mv` zeroed: A stays 0, the read is exactly 0, nothing crosses a segment.
fn zeroed_wv(dir: &Scratch) -> PathBuf {
    let raw = std::fs::read(repo().join(MEMORY)).unwrap();
    let n = u64::from_le_bytes(raw[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&raw[8..8 + n]).unwrap();
    let mut out = raw.clone();
    let mut zeroed = 0;
    for (name, info) in header.as_object().unwrap() {
        if name.contains(".W_mv.") {
            let range = &info["data_offsets"];
            let (a, b) = (range[0].as_u64().unwrap() as usize, range[1].as_u64().unwrap() as usize);
            out[8 + n + a..8 + n + b].fill(0);
            zeroed += 1;
        }
    }
    assert_eq!(zeroed, 30, "one W_mv per layer");
    let path = dir.path().join("zeroed-wv.safetensors");
    std::fs::write(&path, out).unwrap();
    path
}

fn answer(memory: &str) -> String {
    let out = dbrmt(&[
        "generate",
        "--model",
        GGUF,
        "--armt",
        memory,
        "--file",
        DOCUMENT,
        "--max-new-tokens",
        "5",
        "--device",
        "cpu",
    ]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
#[ignore = "needs models/smollm2 (cargo xtask fetch-model smollm2); run by cargo xtask ci"]
fn the_trained_memory_answers_a_fact_two_segments_back_and_the_zeroed_one_does_not() {
    let text = std::fs::read_to_string(repo().join(DOCUMENT)).unwrap();
    let want = expected_answer(&text);
    assert_eq!(want.len(), 4);
    assert_eq!(answer(MEMORY), want, "the trained memory's answer");
    let dir = Scratch::new("trained-zeroed");
    let control = zeroed_wv(&dir);
    let got = answer(s(&control));
    assert_ne!(
        got, want,
        "with W_mv zeroed nothing crosses a segment, yet the answer was right"
    );
}

#[test]
#[ignore = "needs models/smollm2 (cargo xtask fetch-model smollm2); run by cargo xtask ci"]
fn diagonal_and_sequential_write_the_same_bytes_with_the_trained_memory() {
    let dir = Scratch::new("trained-schedules");
    let ids = dir.path().join("ids.npy");
    dbrmt(&["tokenize", "--model", GGUF, "--file", DOCUMENT, "--out", s(&ids)]);
    let mut dumps = Vec::new();
    for schedule in ["diagonal", "sequential"] {
        let logits = dir.path().join(format!("{schedule}.npy"));
        let state = dir.path().join(format!("{schedule}.safetensors"));
        dbrmt(&[
            "run",
            "--model",
            GGUF,
            "--armt",
            MEMORY,
            "--input-ids",
            s(&ids),
            "--device",
            "cpu",
            "--schedule",
            schedule,
            "--logits",
            "last",
            "--dump-logits",
            s(&logits),
            "--dump-state",
            s(&state),
        ]);
        dumps.push((std::fs::read(logits).unwrap(), std::fs::read(state).unwrap()));
    }
    assert!(
        dumps[0].0 == dumps[1].0,
        "last-token logits differ between the schedules"
    );
    assert!(dumps[0].1 == dumps[1].1, "memory states differ between the schedules");
    // the state is the trained memory's: A is not zero (W_mv = 0 would leave it exactly 0)
    let st = safetensors::SafeTensors::deserialize(&dumps[0].1).unwrap();
    let a = st.tensor("layers.29.A").unwrap();
    assert!(a
        .data()
        .chunks_exact(4)
        .any(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) != 0.0));
}
