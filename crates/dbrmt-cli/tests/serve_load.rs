//! The load-test client of `dbrmt serve` (`benches/python/serve_load.py`, run on the GPU host) on the tiny fixture:
//! it starts the server, sends every request, and its summary adds up — so the client works before it is carried
//! to a GPU. Needs `python3` (standard library only).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    std::env::var_os("DBRMT_REPO_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")))
}

#[test]
fn the_load_client_sends_every_request_and_reports() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("SKIPPED: no python3");
        return;
    }
    let out_path = std::env::temp_dir().join(format!("dbrmt-serve-load-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&out_path);
    let out = Command::new("python3")
        .arg(repo().join("benches/python/serve_load.py"))
        .args(["--dbrmt", env!("CARGO_BIN_EXE_dbrmt"), "--model"])
        .arg(repo().join("testdata/fixtures/tiny-armt-names"))
        .args([
            "--device",
            "cpu",
            "--requests",
            "24",
            "--clients",
            "6",
            "--max-concurrent",
            "4",
        ])
        .args([
            "--min-prompt",
            "8",
            "--max-prompt",
            "300",
            "--gen-tokens",
            "5",
            "--per-request",
            "--out",
        ])
        .arg(&out_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> = std::fs::read_to_string(&out_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    std::fs::remove_file(&out_path).unwrap();
    assert_eq!(lines.len(), 25);
    let summary = lines.last().unwrap();
    assert_eq!(summary["bench"], "serve_load");
    assert_eq!(
        (summary["ok"].as_u64(), summary["errors"].as_u64()),
        (Some(24), Some(0))
    );
    assert_eq!(summary["generated_tokens_total"], 24 * 5);
    let prompts: u64 = lines[..24].iter().map(|r| r["prompt_tokens"].as_u64().unwrap()).sum();
    assert_eq!(summary["prompt_tokens_total"].as_u64(), Some(prompts));
    // the server counted the same tokens
    let server = &summary["server_metrics"];
    assert_eq!(server["dbrmt_prompt_tokens_total"].as_f64(), Some(prompts as f64));
    assert_eq!(server["dbrmt_generation_tokens_total"].as_f64(), Some(24.0 * 5.0));
    assert!(summary["ttft_p50_s"].as_f64().unwrap() <= summary["ttft_p99_s"].as_f64().unwrap());
}
