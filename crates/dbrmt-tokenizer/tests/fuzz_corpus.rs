//! The fuzz harnesses of `fuzz/` (included from `fuzz/src/lib.rs`) replayed on stable over the committed seed
//! corpus (`fuzz/corpus/<target>/`) and every crash the fuzzer found (`fuzz/regressions/<target>/`): each input
//! must end cleanly, so a crash once fixed stays fixed without a nightly toolchain.

#[path = "../../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod harness;

use std::path::{Path, PathBuf};

use dbrmt_formats::SavedState;

fn repo() -> PathBuf {
    dbrmt_testkit::paths::repo_root()
}

/// Every file of `fuzz/corpus/<target>` and `fuzz/regressions/<target>`, through `run`.
fn replay(target: &str, run: fn(&[u8])) -> usize {
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(repo().join("fuzz").join(dir).join(target)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let bytes = std::fs::read(&path).unwrap();
            eprintln!("{}", path.display());
            run(&bytes);
            n += 1;
        }
    }
    n
}

#[test]
fn safetensors_header() {
    assert!(replay("safetensors_header", harness::safetensors_header) >= 4);
}

#[test]
fn gguf() {
    assert!(replay("gguf", harness::gguf) >= 1);
}

#[test]
fn npy() {
    assert!(replay("npy", harness::npy) >= 4);
}

#[test]
fn config_json() {
    assert!(replay("config_json", harness::config_json) >= 4);
}

#[test]
fn saved_state() {
    assert!(replay("saved_state", harness::saved_state) >= 4);
}

#[test]
fn tokenizer() {
    assert!(replay("tokenizer", harness::tokenizer) >= 4);
}

/// The seeds are what they claim: the saved states load (their checksums are right, so the fuzzer starts past
/// the checksum), the one without a checksum with a warning.
#[test]
fn state_seeds_load() {
    let dir = repo().join("fuzz/corpus/saved_state");
    let load = |name: &str| {
        SavedState::from_bytes(
            Path::new(name),
            &std::fs::read(dir.join(name)).unwrap(),
            &harness::STATE_EXPECT,
        )
    };
    let closed = load("closed-3-open-2.safetensors").unwrap();
    assert_eq!(
        (closed.saved.segments, closed.saved.open_ids.clone(), closed.warning),
        (3, vec![1, 2], None)
    );
    assert!(load("fresh.safetensors").unwrap().warning.is_none());
    let old = load("no-checksum.safetensors").unwrap();
    assert!(old.warning.unwrap().contains("no checksum"));
}
