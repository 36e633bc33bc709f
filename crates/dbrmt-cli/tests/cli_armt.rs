//! `--armt FILE` end to end: `inspect` names the trained memory, `run` computes with it (its W_mv reaches the state:
//! the same file with W_mv zero leaves A at zero), and a file for another GGUF or given with `--armt-init` is refused
//! with an `error:` line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dbrmt_formats::armt_file::{metadata, sha256_hex, tensor_names};
use dbrmt_formats::names::{LayerTensor, TensorId};
use dbrmt_formats::ArmtParams;
use dbrmt_testkit::gguf::{tiny_llama, HIDDEN, LAYERS, VOCAB};
use dbrmt_testkit::{Scratch, SplitMix64};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

const PARAMS: ArmtParams = ArmtParams {
    num_mem_tokens: 4,
    d_mem: 8,
    segment_size: 8,
    nu: 3,
    correction: true,
};

fn dbrmt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dbrmt"))
        .args(args)
        .output()
        .expect("dbrmt runs")
}

/// The memory tensors (random, W_mv scaled by `wv`) as an `--armt` file for a GGUF of sha256 `sha`.
fn write_armt(dir: &Scratch, name: &str, sha: &str, wv: f32) -> PathBuf {
    let mut rng = SplitMix64::new(9);
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = TensorId::armt_tensors(LAYERS)
        .map(|id| {
            let (shape, scale) = match id {
                TensorId::Memory => (vec![PARAMS.num_mem_tokens, HIDDEN], 0.1),
                TensorId::Layer(_, LayerTensor::MemQ | LayerTensor::MemK) => (vec![PARAMS.d_mem, HIDDEN], 0.2),
                TensorId::Layer(_, LayerTensor::MemV) => (vec![HIDDEN, HIDDEN], 0.05 * wv),
                TensorId::Layer(_, LayerTensor::MemBeta) => (vec![1, HIDDEN], 0.1),
                _ => (vec![1], 0.1),
            };
            let n: usize = shape.iter().product();
            let bytes = (0..n).flat_map(|_| (rng.signed_unit() * scale).to_le_bytes()).collect();
            (tensor_names(id).0, shape, bytes)
        })
        .collect();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, s, b)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), b).unwrap()))
        .collect();
    let meta: HashMap<String, String> = metadata(&PARAMS, sha).into_iter().collect();
    dir.write(name, safetensors::serialize(views, Some(meta)).unwrap())
}

/// A 1-D int32 `.npy` of `ids`.
fn write_ids(dir: &Scratch, ids: &[i32]) -> PathBuf {
    let mut header = format!(
        "{{'descr': '<i4', 'fortran_order': False, 'shape': ({},), }}",
        ids.len()
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend(ids.iter().flat_map(|x| x.to_le_bytes()));
    dir.write("ids.npy", bytes)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Largest |A| over every layer of a dumped state.
fn max_abs_a(state: &Path) -> f32 {
    let bytes = std::fs::read(state).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    (0..LAYERS)
        .flat_map(|i| {
            let t = st.tensor(&format!("layers.{i}.A")).unwrap();
            t.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()).abs())
                .collect::<Vec<_>>()
        })
        .fold(0.0, f32::max)
}

#[test]
fn trained_memory_is_applied_and_reported() {
    let dir = Scratch::new("cli-armt");
    let bytes = tiny_llama(4, true).gguf.bytes();
    let sha = sha256_hex(&bytes);
    let gguf = dir.write("tiny.gguf", &bytes);
    let armt = write_armt(&dir, "armt.safetensors", &sha, 1.0);

    let out = dbrmt(&["inspect", s(&gguf), "--armt", s(&armt)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("trained memory from --armt"), "{text}");
    assert!(
        text.contains("T = 8 text tokens per segment, M = 4 memory tokens, d_mem = 8"),
        "{text}"
    );

    let ids: Vec<i32> = (0..30).map(|i| (i * 7 % VOCAB) as i32).collect();
    let ids = write_ids(&dir, &ids);
    let mut a_max = Vec::new();
    for (file, label) in [
        (armt.clone(), "trained"),
        (write_armt(&dir, "zero.safetensors", &sha, 0.0), "zero"),
    ] {
        let state = dir.path().join(format!("{label}.safetensors"));
        let out = dbrmt(&[
            "run",
            "--model",
            s(&gguf),
            "--armt",
            s(&file),
            "--input-ids",
            s(&ids),
            "--device",
            "cpu",
            "--dump-state",
            s(&state),
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        a_max.push(max_abs_a(&state));
    }
    assert!(a_max[0] > 0.0, "the trained W_mv writes into A");
    assert_eq!(a_max[1], 0.0, "W_mv = 0 leaves A at zero");
}

#[test]
fn a_file_for_another_gguf_or_with_armt_init_is_refused() {
    let dir = Scratch::new("cli-armt-refused");
    let bytes = tiny_llama(4, true).gguf.bytes();
    let gguf = dir.write("tiny.gguf", &bytes);
    let other = sha256_hex(b"another model");
    let armt = write_armt(&dir, "armt.safetensors", &other, 1.0);
    let out = dbrmt(&["inspect", s(&gguf), "--armt", s(&armt)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("error: ") && err.contains(&other) && err.contains(&sha256_hex(&bytes)),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let out = dbrmt(&["inspect", s(&gguf), "--armt", s(&armt), "--armt-init", "0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot be used with"), "{err}");
}
