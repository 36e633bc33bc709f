//! `dbrmt generate` on the GPU (prefill and decoding): it runs, says so, generates past two segment closings, and
//! the state it saves after the prefill is the CPU model's within the GPU tolerance.
//! Greedy tokens chosen on the device equal the host argmax of the same logits, alone and packed.

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

/// Greedy tokens chosen on the device are the host's argmax: `generate --device cuda` with one input (the session's
/// greedy-id mode) and with three (packed requests asking for ids only) prints the same tokens as under
/// `DBRMT_DEVICE_ARGMAX=off` (every token's logits copied to the host for its argmax), and each packed request's tokens
/// are the ones it gets alone.
#[test]
#[ignore = "needs a CUDA GPU"]
fn device_ids_are_the_host_argmax() {
    let model = repo().join("testdata/fixtures/tiny-armt-names");
    let dir = std::env::temp_dir().join(format!("dbrmt-gpu-generate-ids-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ids = dbrmt_formats::npy::read_ids(&model.join("input_ids.npy")).unwrap();
    // all 160 ids (5 segments), a partial segment, one short segment; 40 new tokens close a segment of 32
    let inputs: Vec<PathBuf> = [("whole", 160), ("partial", 77), ("short", 9)]
        .iter()
        .map(|&(name, n)| {
            let path = dir.join(format!("{name}.npy"));
            std::fs::write(&path, dbrmt_testkit::npy::ids_i64(&ids[..n])).unwrap();
            path
        })
        .collect();
    let bin = match repo().join("dist/dbrmt") {
        dist if dist.exists() => dist,
        _ => PathBuf::from(env!("CARGO_BIN_EXE_dbrmt")),
    };
    let generate = |inputs: &[&PathBuf], device_argmax: &str| -> String {
        let mut args = vec![
            "generate".to_string(),
            "--device".into(),
            "cuda".into(),
            "--model".into(),
            model.to_str().unwrap().into(),
            "--max-new-tokens".into(),
            "40".into(),
            "--input-ids".into(),
        ];
        args.extend(inputs.iter().map(|p| p.to_str().unwrap().to_string()));
        let out = Command::new(&bin)
            .args(&args)
            .env("DBRMT_DEVICE_ARGMAX", device_argmax)
            .output()
            .expect("dbrmt runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let all: Vec<&PathBuf> = inputs.iter().collect();
    let packed = generate(&all, "on");
    assert_eq!(packed, generate(&all, "off"), "packed: device ids vs the host's argmax");
    for (i, input) in inputs.iter().enumerate() {
        let alone = generate(&[input], "on");
        assert_eq!(
            alone,
            generate(&[input], "off"),
            "{input:?} alone: device ids vs the host's argmax"
        );
        assert_eq!(alone.split_whitespace().count(), 40);
        let stem = input.file_stem().unwrap().to_str().unwrap();
        let header = packed
            .lines()
            .position(|l| l.starts_with(&format!("=== [{i}] {stem}:")))
            .unwrap_or_else(|| panic!("no result for {stem}: {packed}"));
        let tokens = packed.lines().nth(header + 1).unwrap();
        assert_eq!(tokens.trim(), alone.trim(), "{stem}: packed tokens differ from alone");
    }
    println!("3 inputs × 40 greedy tokens: device ids = host argmax, packed = alone");
    let _ = std::fs::remove_dir_all(&dir);
}
