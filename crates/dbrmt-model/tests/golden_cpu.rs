//! The CPU model against the golden cases of `testdata/fixtures` (fp64 PyTorch reference of the original ARMT
//! code): relative error ≤ 1e-5 on logits, final hidden states and every layer's A and z; and diagonal, packed and
//! sequential schedules bitwise identical.

use std::path::PathBuf;

use dbrmt_formats::{load_model, npy, LoadOptions, Model};
use dbrmt_model::{
    cpu::{CpuModel, RunOptions},
    input::validate_ids,
    LogitsMode, Output,
};
use dbrmt_schedule::{packed, Grid, Schedule};

const CASES: [&str; 4] = [
    "tiny-armt-names",
    "tiny-hf-tied-partial",
    "tiny-single-short",
    "small-bf16",
];
const TOL: f64 = 1e-5;

fn fixture(name: &str) -> PathBuf {
    let root = std::env::var_os("DBRMT_REPO_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")));
    root.join("testdata/fixtures").join(name)
}

fn rel_err(out: &[f32], reference: &[f32]) -> f64 {
    assert_eq!(out.len(), reference.len(), "length mismatch");
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (&o, &r) in out.iter().zip(reference) {
        num += (o as f64 - r as f64).powi(2);
        den += (r as f64).powi(2);
    }
    (num / den).sqrt()
}

fn load(name: &str) -> (Model, Vec<u32>) {
    let dir = fixture(name);
    let model = load_model(&dir, &LoadOptions::default()).expect("fixture loads");
    let ids = npy::read_ids(&dir.join("input_ids.npy")).expect("ids load");
    let ids = validate_ids(&ids, model.config.llama.vocab_size).expect("ids in range");
    (model, ids)
}

fn run(model: &Model, ids: &[u32], schedule: &Schedule, threads: usize) -> Output {
    let cpu = CpuModel::new(&model.config, &model.weights);
    let opts = RunOptions {
        logits: LogitsMode::All,
        keep_hidden: true,
        threads,
    };
    cpu.run(ids, schedule, &opts).expect("forward")
}

fn bytes(o: &Output) -> Vec<u8> {
    let mut b: Vec<u8> = o.logits.iter().flat_map(|x| x.to_le_bytes()).collect();
    b.extend(o.hidden.iter().flatten().flat_map(|x| x.to_le_bytes()));
    for l in &o.state.layers {
        b.extend(l.a.iter().chain(&l.z).flat_map(|x| x.to_le_bytes()));
    }
    b
}

#[test]
fn cpu_model_reproduces_every_golden_case() {
    for name in CASES {
        let (model, ids) = load(name);
        let cfg = &model.config;
        let out = run(
            &model,
            &ids,
            &Grid::new(cfg.llama.num_layers, cfg.segments_for(ids.len())).sequential(),
            1,
        );
        let dir = fixture(name);
        let (_, logits) = npy::read_f32(&dir.join("logits.npy")).unwrap();
        let (_, hidden) = npy::read_f32(&dir.join("final_hidden.npy")).unwrap();
        let (a_shape, a_ref) = npy::read_f32(&dir.join("mem_A.npy")).unwrap();
        let (_, z_ref) = npy::read_f32(&dir.join("mem_z.npy")).unwrap();
        assert_eq!(
            a_shape,
            vec![cfg.llama.num_layers, 1, cfg.d_key(), cfg.llama.hidden_size]
        );

        let e_logits = rel_err(&out.logits, &logits);
        let e_hidden = rel_err(out.hidden.as_ref().unwrap(), &hidden);
        println!("{name}: logits {e_logits:.2e}, final hidden {e_hidden:.2e}");
        assert!(e_logits <= TOL, "{name}: logits rel err {e_logits:.3e}");
        assert!(e_hidden <= TOL, "{name}: hidden rel err {e_hidden:.3e}");
        let (da, dz) = (cfg.d_key() * cfg.llama.hidden_size, cfg.d_key());
        for (l, st) in out.state.layers.iter().enumerate() {
            let ea = rel_err(&st.a, &a_ref[l * da..(l + 1) * da]);
            let ez = rel_err(&st.z, &z_ref[l * dz..(l + 1) * dz]);
            println!("{name}: layer {l} A {ea:.2e} z {ez:.2e}");
            assert!(ea <= TOL && ez <= TOL, "{name}: layer {l}: A {ea:.3e}, z {ez:.3e}");
        }
    }
}

#[test]
fn diagonal_and_sequential_are_bitwise_identical() {
    for name in CASES {
        let (model, ids) = load(name);
        let grid = Grid::new(model.config.llama.num_layers, model.config.segments_for(ids.len()));
        let seq = bytes(&run(&model, &ids, &grid.sequential(), 1));
        for threads in [1, 2, 4] {
            let diag = bytes(&run(&model, &ids, &grid.diagonal(), threads));
            assert!(
                seq == diag,
                "{name}: diagonal ({threads} threads) differs from sequential"
            );
        }
    }
}

#[test]
fn packed_requests_match_their_separate_runs_bitwise() {
    let (model, ids) = load("tiny-hf-tied-partial");
    let cfg = &model.config;
    let short: Vec<u32> = ids[..45].to_vec();
    let reqs: [&[u32]; 3] = [&ids, &short, &ids[7..]];
    let counts: Vec<usize> = reqs.iter().map(|r| cfg.segments_for(r.len())).collect();
    let cpu = CpuModel::new(cfg, &model.weights);
    let opts = RunOptions {
        logits: LogitsMode::All,
        keep_hidden: true,
        threads: 2,
    };
    let together = cpu
        .run_many(&reqs, &packed(cfg.llama.num_layers, &counts), &opts)
        .unwrap();
    for (r, ids) in reqs.iter().enumerate() {
        let alone = run(&model, ids, &Grid::new(cfg.llama.num_layers, counts[r]).sequential(), 1);
        assert!(bytes(&together[r]) == bytes(&alone), "request {r} differs when packed");
    }
}

#[test]
fn invalid_schedules_are_refused() {
    let (model, ids) = load("tiny-single-short");
    let cpu = CpuModel::new(&model.config, &model.weights);
    let mut bad = Grid::new(model.config.llama.num_layers, 1).sequential();
    bad.steps.swap(0, 1); // layer 1 before layer 0
    let err = cpu.run(&ids, &bad, &RunOptions::default()).unwrap_err();
    assert!(err.to_string().contains("before its dependencies"), "{err}");
    let mut short = Grid::new(model.config.llama.num_layers, 1).sequential();
    short.steps.pop();
    let err = cpu.run(&ids, &short, &RunOptions::default()).unwrap_err();
    assert!(err.to_string().contains("ends before every cell"), "{err}");
}

#[test]
fn last_logits_equal_the_last_row_of_all() {
    let (model, ids) = load("tiny-armt-names");
    let grid = Grid::new(model.config.llama.num_layers, model.config.segments_for(ids.len()));
    let cpu = CpuModel::new(&model.config, &model.weights);
    let all = run(&model, &ids, &grid.diagonal(), 2);
    let last = cpu
        .run(
            &ids,
            &grid.diagonal(),
            &RunOptions {
                logits: LogitsMode::Last,
                ..Default::default()
            },
        )
        .unwrap();
    let none = cpu
        .run(
            &ids,
            &grid.diagonal(),
            &RunOptions {
                logits: LogitsMode::None,
                ..Default::default()
            },
        )
        .unwrap();
    let v = model.config.llama.vocab_size;
    assert_eq!(last.logit_rows, 1);
    // the same row through a one-row product (dot products) instead of a many-row one: equal up to f32 rounding
    let e = rel_err(&last.logits, &all.logits[(ids.len() - 1) * v..]);
    assert!(e < 1e-6, "last vs all: {e:.2e}");
    assert_eq!((none.logit_rows, none.logits.len()), (0, 0));
    assert_eq!(none.state, all.state);
}
