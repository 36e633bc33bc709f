//! SmolLM2-135M-Instruct on the GPU (bf16; needs the model on the GPU host, so not in `cargo xtask bundle --gpu`:
//! run `dist/tests/dbrmt-runtime__smollm2_gpu --ignored` from a full bundle) against the CPU model (f32) on the fixture prompts of
//! `testdata/smollm2`: logits within 2e-2, and greedy continuations decoded on the GPU (a GPU session: KV cache, one
//! row per token) against HF's, step by step, wherever HF's choice is resolvable in bf16, and free-running against
//! the GPU's oracle (the f32 CPU model on the same bf16-rounded weights).

use std::path::PathBuf;

use dbrmt_formats::{load_model, ArmtParams, LoadOptions, Model};
use dbrmt_model::{
    cpu::{CpuModel, RunOptions, Session},
    sampling::argmax,
    LogitsMode,
};
use dbrmt_runtime::{Device, Engine, ScheduleKind};
use dbrmt_schedule::Grid;

fn repo() -> PathBuf {
    std::env::var_os("DBRMT_REPO_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")))
}

fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den).sqrt()
}

/// The SmolLM2 engine on GPU 0, the fixture prompts, and their CPU-model logits (all positions).
/// The GPU engine (weights streamed from the GGUF to the device), the CPU model of the same file, the fixture
/// prompts and the CPU model's logits on them.
fn setup() -> (Engine, Model, Vec<serde_json::Value>, Vec<Vec<f32>>) {
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
    let path = root.join("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} is missing: `cargo xtask fetch-model smollm2` (on a GPU host: copy it there, see docs/KERNELS.md)",
        path.display()
    );
    let model = load_model(&path, &opts).expect("model");
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("testdata/smollm2/reference.json")).unwrap()).unwrap();
    let prompts = reference["prompts"].as_array().unwrap().clone();
    let cpu = CpuModel::new(&model.config, &model.weights);
    let cpu_logits = prompts
        .iter()
        .map(|p| {
            let o = RunOptions {
                logits: LogitsMode::All,
                keep_hidden: false,
                threads: 0,
            };
            cpu.run(
                &ids(p).iter().map(|&x| x as u32).collect::<Vec<u32>>(),
                &Grid::new(model.config.llama.num_layers, 1).diagonal(),
                &o,
            )
            .unwrap()
            .logits
        })
        .collect();
    (
        Engine::load(&path, &opts, Device::Cuda(0)).expect("gpu"),
        model,
        prompts,
        cpu_logits,
    )
}

fn ids(prompt: &serde_json::Value) -> Vec<i64> {
    prompt["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

#[test]
#[ignore = "needs a CUDA GPU and models/smollm2 (cargo xtask fetch-model smollm2)"]
fn smollm2_gpu_logits_are_within_2e_2_of_the_cpu_model() {
    let (engine, _, prompts, cpu_logits) = setup();
    for (p, prompt) in prompts.iter().enumerate() {
        let ids = ids(prompt);
        let gpu = engine
            .prefill(&ids, ScheduleKind::Diagonal, LogitsMode::All, false)
            .unwrap();
        let e = rel_err(&gpu.logits, &cpu_logits[p]);
        println!(
            "prompt {p}: GPU vs CPU logits over all {} positions: {e:.2e}",
            ids.len()
        );
        assert!(e <= 2e-2, "prompt {p}: {e}");
    }
}

/// HF's greedy continuation of a fixture prompt.
fn hf_greedy(prompt: &serde_json::Value) -> Vec<u32> {
    prompt["greedy_32"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// A GPU session and a CPU session on `cpu`, both after prefilling the prompt.
fn prefilled_pair<'a>(
    engine: &'a Engine,
    cpu: &CpuModel<'a>,
    prompt: &serde_json::Value,
) -> (dbrmt_runtime::Session<'a>, Session<'a>) {
    let ids: Vec<u32> = ids(prompt).iter().map(|&x| x as u32).collect();
    let mut gpu = engine.session().expect("session");
    let mut reference = Session::new(cpu);
    gpu.prefill(&ids).unwrap();
    reference.prefill(&ids).unwrap();
    (gpu, reference)
}

/// HF's top-2 margin below which bf16 may pick either token. The GPU's logits move by ≈ 1e-2 relative here; at
/// prompt 0's first step HF's margin is 0.0105 and the GPU's is −0.0069 (the other token), an error of 0.017 in the
/// difference. HF transformers itself in bf16 ties that step (8.125 vs 8.125) and misses 4 of the 96 steps; see
/// docs/KERNELS.md.
const BF16_RESOLUTION: f32 = 0.05;

/// Greedy decoding on the GPU (a [`dbrmt_runtime::Session`] on the device: prefill, then one row per token over the
/// KV cache), teacher-forced on HF's continuation, step by step against HF's choice: equal wherever HF's own top-2
/// margin (from the f32 CPU model, which matches HF to 3.4e-6) is at least [`BF16_RESOLUTION`]; the near-ties below
/// it are printed with the choice made.
#[test]
#[ignore = "needs a CUDA GPU and models/smollm2 (cargo xtask fetch-model smollm2)"]
fn smollm2_gpu_greedy_continuations_equal_hf() {
    let (engine, model, prompts, _) = setup();
    let cpu = CpuModel::new(&model.config, &model.weights);
    let mut wrong = 0;
    for (p, prompt) in prompts.iter().enumerate() {
        let want = hf_greedy(prompt);
        let (mut gpu, mut reference) = prefilled_pair(&engine, &cpu, prompt);
        let (mut same, mut notes) = (0, Vec::new());
        for (i, &hf) in want.iter().enumerate() {
            let ours = argmax(gpu.logits());
            let r = reference.logits();
            assert_eq!(
                argmax(r),
                hf,
                "prompt {p} step {i}: the f32 CPU model's choice is not HF's"
            );
            let runner_up = r
                .iter()
                .enumerate()
                .filter(|&(t, _)| t != hf as usize)
                .map(|(_, &x)| x)
                .fold(f32::NEG_INFINITY, f32::max);
            let margin = r[hf as usize] - runner_up;
            if ours == hf {
                same += 1;
            }
            if margin < BF16_RESOLUTION {
                notes.push(format!(
                    "step {i}: HF margin {margin:.4}, GPU {}",
                    if ours == hf { "same" } else { "other" }
                ));
            } else if ours != hf {
                wrong += 1;
                notes.push(format!(
                    "step {i}: HF margin {margin:.4} but the GPU chose {ours} over {hf}"
                ));
            }
            gpu.push(hf).unwrap();
            reference.push(hf).unwrap();
        }
        println!(
            "prompt {p}: the GPU's greedy choice equals HF's at {same} of 32 steps; {}",
            notes.join("; ")
        );
    }
    assert_eq!(
        wrong, 0,
        "the GPU chose differently where HF's margin is at least {BF16_RESOLUTION}"
    );
}

/// Free-running greedy decoding, 32 tokens, on the GPU (session: KV-cache decoding) against the oracle the GPU is
/// built to match (docs/ARCHITECTURE.md, numerics): the f32 CPU model on the same bf16-rounded weights. HF's
/// continuation is printed beside them.
#[test]
#[ignore = "needs a CUDA GPU and models/smollm2 (cargo xtask fetch-model smollm2)"]
fn smollm2_gpu_greedy_equals_the_cpu_oracle_on_bf16_weights() {
    let (engine, model, prompts, _) = setup();
    let rounded = model.weights.rounded_to_bf16();
    let oracle = CpuModel::new(&model.config, &rounded);
    let mut all_same = true;
    for (p, prompt) in prompts.iter().enumerate() {
        let hf = hf_greedy(prompt);
        let (mut gpu, mut cpu) = prefilled_pair(&engine, &oracle, prompt);
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..32 {
            let (a, b) = (argmax(gpu.logits()), argmax(cpu.logits()));
            ours.push(a);
            theirs.push(b);
            gpu.push(a).unwrap();
            cpu.push(b).unwrap();
        }
        let same = ours.iter().zip(&theirs).take_while(|(a, b)| a == b).count();
        let hf_same = theirs.iter().zip(&hf).take_while(|(a, b)| a == b).count();
        println!(
            "prompt {p}: GPU greedy = oracle's for the first {same} of 32 tokens (the oracle = HF's for {hf_same})"
        );
        all_same &= same == 32;
    }
    assert!(all_same, "a GPU greedy continuation differs from the oracle's");
}
