//! `dbrmt generate` on the GPU (prefill and decoding): it runs, says so, generates past two segment closings, and
//! the state it saves after the prefill is the CPU model's within the GPU tolerance.

use std::path::PathBuf;
use std::process::{Command, Output};

fn repo() -> PathBuf {
    std::env::var_os("DBRMT_REPO_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")))
}

/// The binary: `dist/dbrmt` on a GPU host running a bundle, else the one cargo built with this test.
fn dbrmt(args: &[&str]) -> Output {
    let dist = repo().join("dist/dbrmt");
    let bin = if dist.exists() {
        dist
    } else {
        PathBuf::from(env!("CARGO_BIN_EXE_dbrmt"))
    };
    Command::new(bin).args(args).output().expect("dbrmt runs")
}

fn state_values(path: &std::path::Path, layers: usize) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    (0..layers)
        .flat_map(|i| [format!("layers.{i}.A"), format!("layers.{i}.z")])
        .flat_map(|name| {
            st.tensor(&name)
                .unwrap()
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect::<Vec<f32>>()
        })
        .collect()
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn generate_runs_on_the_gpu() {
    let dir = repo().join("testdata/fixtures/tiny-armt-names"); // 5 segments: 4 closed, 1 open
    let ids = dir.join("input_ids.npy");
    let tmp = std::env::temp_dir();
    let (gpu_state, cpu_state) = (
        tmp.join("dbrmt-gpu-state.safetensors"),
        tmp.join("dbrmt-cpu-state.safetensors"),
    );
    let run = |device: &str, state: &PathBuf| {
        let out = dbrmt(&[
            "generate",
            "--model",
            dir.to_str().unwrap(),
            "--input-ids",
            ids.to_str().unwrap(),
            "--max-new-tokens",
            "80", // T = 32: the open segment fills and closes twice while generating
            "--device",
            device,
            "--save-state",
            state.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{device}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let (g, c) = (run("cuda", &gpu_state), run("cpu", &cpu_state));
    let err = String::from_utf8_lossy(&g.stderr);
    assert!(err.contains("on the GPU"), "{err}");
    assert_eq!(String::from_utf8_lossy(&g.stdout).split_whitespace().count(), 80);
    let (a, b) = (state_values(&gpu_state, 4), state_values(&cpu_state, 4));
    let num: f64 = a.iter().zip(&b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    let rel = (num / den).sqrt();
    println!(
        "state after the GPU prefill vs the CPU's: {rel:.2e}; tokens GPU: {} CPU: {}",
        String::from_utf8_lossy(&g.stdout).trim(),
        String::from_utf8_lossy(&c.stdout).trim()
    );
    assert!(rel > 0.0 && rel <= 2e-2, "{rel}");
}
