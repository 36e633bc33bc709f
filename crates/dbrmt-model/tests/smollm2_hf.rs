//! SmolLM2-135M-Instruct (the Q4_1 GGUF, dequantised to f32) on the CPU model against HF transformers loading the
//! same GGUF in f32 (`testdata/smollm2`, made by its `make_reference.py`): logits at four positions of three
//! prompts of 346–397 tokens within 1e-4 (HF's own f32 noise floor is 7.5e-6), and greedy 32-token continuations
//! identical. The memory is initialised (`--armt-init`, `W_v = 0`) and the prompts fit one segment, so the ARMT
//! model computes exactly its LLaMA backbone here.

use std::path::PathBuf;

use dbrmt_formats::{load_model, npy, ArmtParams, LoadOptions};
use dbrmt_model::{
    cpu::{CpuModel, RunOptions, Session},
    sampling::argmax,
    LogitsMode,
};
use dbrmt_schedule::Grid;

fn repo() -> PathBuf {
    std::env::var_os("DBRMT_REPO_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")))
}

#[test]
#[ignore = "SmolLM2 on the CPU model: cargo xtask ci runs it in release (after cargo xtask fetch-model smollm2)"]
fn smollm2_matches_hf_transformers() {
    let root = repo();
    let armt = ArmtParams {
        num_mem_tokens: 16,
        d_mem: 64,
        segment_size: 1024,
        nu: 3,
        correction: true,
    };
    let opts = LoadOptions {
        armt_init: Some(0),
        armt_init_when_missing: None,
        armt_file: None,
        armt_params: Some(armt),
    };
    let model = load_model(&root.join("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"), &opts).expect("model");
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("testdata/smollm2/reference.json")).unwrap()).unwrap();
    let (shape, hf_logits) = npy::read_f32(&root.join("testdata/smollm2/logits.npy")).unwrap();
    let v = model.config.llama.vocab_size;
    assert_eq!(shape[2], v);

    let cpu = CpuModel::new(&model.config, &model.weights);
    for (p, prompt) in reference["prompts"].as_array().unwrap().iter().enumerate() {
        let ids: Vec<u32> = prompt["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert!(ids.len() >= 300 && ids.len() <= 1024);
        let opts = RunOptions {
            logits: LogitsMode::All,
            keep_hidden: false,
            threads: 0,
        };
        let out = cpu
            .run(&ids, &Grid::new(model.config.llama.num_layers, 1).diagonal(), &opts)
            .unwrap();
        for (i, pos) in prompt["positions"].as_array().unwrap().iter().enumerate() {
            let pos = pos.as_u64().unwrap() as usize;
            let ours = &out.logits[pos * v..(pos + 1) * v];
            let theirs = &hf_logits[(p * shape[1] + i) * v..(p * shape[1] + i + 1) * v];
            let max_ref = theirs.iter().fold(0.0f64, |m, &x| m.max((x as f64).abs()));
            let max_diff = ours
                .iter()
                .zip(theirs)
                .fold(0.0f64, |m, (&a, &b)| m.max((a as f64 - b as f64).abs()));
            let l2 = ours
                .iter()
                .zip(theirs)
                .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
                .sum::<f64>()
                .sqrt()
                / theirs.iter().map(|&b| (b as f64).powi(2)).sum::<f64>().sqrt();
            println!(
                "prompt {p} position {pos}: max|Δ|/max|ref| {:.2e}, ‖Δ‖/‖ref‖ {l2:.2e}",
                max_diff / max_ref
            );
            assert!(max_diff / max_ref <= 1e-4 && l2 <= 1e-4, "prompt {p} position {pos}");
        }
        // greedy continuation through a generation session (KV cache decoding)
        let mut s = Session::new(&cpu);
        s.prefill(&ids).unwrap();
        let mut greedy = Vec::new();
        for _ in 0..32 {
            let next = argmax(s.logits());
            greedy.push(next as u64);
            s.push(next).unwrap();
        }
        let want: Vec<u64> = prompt["greedy_32"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        assert_eq!(greedy, want, "prompt {p}: greedy continuation differs from HF");
    }
}
