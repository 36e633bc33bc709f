//! Plain LLaMA checkpoints (no ARMT tensors): the memory is initialised from `--armt-init SEED`, and only then.

mod checkpoint_support;

use checkpoint_support::{edited_fixture, fixture, fixture_config, fixture_tensors, is_armt_name, model_dir, Scratch};
use dbrmt_formats::{load_model, ArmtParams, FormatError, LoadOptions, Model};

/// `tiny-hf-tied-partial` without its ARMT tensors, with `config` as its config.json.
fn plain_llama(config: &str) -> Scratch {
    let mut tensors = fixture_tensors("tiny-hf-tied-partial");
    tensors.retain(|n, _| !is_armt_name(n));
    model_dir("plain", config, &tensors)
}

fn with_seed(seed: u64) -> LoadOptions {
    LoadOptions {
        armt_init: Some(seed),
        armt_init_when_missing: None,
        armt_file: None,
        armt_params: None,
    }
}

fn std_dev(x: &[f32]) -> f64 {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    (x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
}

#[test]
fn plain_llama_needs_a_seed() {
    let dir = plain_llama(&fixture_config("tiny-hf-tied-partial"));
    let err = load_model(dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, FormatError::NoArmtTensors { .. }), "{err:?}");
    assert!(
        err.to_string()
            .ends_with("no ARMT tensors found; pass --armt-init SEED to initialise the memory"),
        "{err}"
    );
}

#[test]
fn seed_initialises_the_memory_like_the_original() {
    let dir = plain_llama(&fixture_config("tiny-hf-tied-partial"));
    let m = load_model(dir.path(), &with_seed(7)).unwrap();
    let reference = load_model(&fixture("tiny-hf-tied-partial"), &LoadOptions::default()).unwrap();
    assert_eq!(m.armt_seed, Some(7));
    assert!(m.unused_tensors.is_empty());
    // The backbone is the checkpoint's.
    assert_eq!(m.weights.embed, reference.weights.embed);
    assert_eq!(m.weights.norm, reference.weights.norm);
    for (l, r) in m.weights.layers.iter().zip(&reference.weights.layers) {
        assert_eq!((&l.q, &l.down, &l.input_norm), (&r.q, &r.down, &r.input_norm));
    }
    let (d, dm) = (128, 16);
    let bound = 1.0 / (d as f32).sqrt();
    for l in &m.weights.layers {
        assert_eq!(
            (l.mem_q.len(), l.mem_k.len(), l.mem_v.len(), l.mem_beta.len()),
            (dm * d, dm * d, d * d, d)
        );
        // W_v = 0: the memory path adds nothing until trained weights are loaded.
        assert!(l.mem_v.iter().all(|&v| v == 0.0));
        assert!(l
            .mem_q
            .iter()
            .chain(&l.mem_k)
            .chain(&l.mem_beta)
            .all(|v| v.abs() <= bound));
        assert!(l.mem_beta_bias.abs() <= bound);
        assert_ne!(l.mem_q, l.mem_k);
    }
    assert_ne!(m.weights.layers[0].mem_q, m.weights.layers[1].mem_q);
    // memory = N(0, 1) · std(embedding): 1024 samples, so its std is within a few percent.
    assert_eq!(m.weights.memory.len(), 8 * d);
    let ratio = std_dev(&m.weights.memory) / std_dev(&m.weights.embed);
    assert!((ratio - 1.0).abs() < 0.1, "ratio {ratio}");
}

#[test]
fn same_seed_same_bits() {
    let dir = plain_llama(&fixture_config("tiny-hf-tied-partial"));
    let bits = |m: &Model| -> Vec<u32> {
        let w = &m.weights;
        let mut all: Vec<f32> = w.memory.clone();
        for l in &w.layers {
            all.extend(l.mem_q.iter().chain(&l.mem_k).chain(&l.mem_v).chain(&l.mem_beta));
            all.push(l.mem_beta_bias);
        }
        all.iter().map(|v| v.to_bits()).collect()
    };
    let a = load_model(dir.path(), &with_seed(42)).unwrap();
    let b = load_model(dir.path(), &with_seed(42)).unwrap();
    let c = load_model(dir.path(), &with_seed(43)).unwrap();
    assert_eq!(bits(&a), bits(&b));
    assert_eq!(a.weights, b.weights);
    assert_ne!(bits(&a), bits(&c));
}

#[test]
fn seed_with_stored_armt_tensors_is_ambiguous() {
    let err = load_model(&fixture("tiny-armt-names"), &with_seed(1)).unwrap_err();
    assert!(matches!(err, FormatError::ArmtInitConflict { .. }), "{err:?}");
    assert!(err.to_string().contains("drop --armt-init"), "{err}");
}

#[test]
fn some_armt_tensors_missing_is_an_error() {
    let dir = edited_fixture("tiny-hf-tied-partial", |t| {
        t.remove("model.layers.2.W_mv.weight").unwrap();
    });
    let err = load_model(dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(&err, FormatError::MissingTensor { name, .. } if name == "model.layers.2.W_mv.weight"),
        "{err}"
    );
    // A seed does not paper over a partial set either.
    let err = load_model(dir.path(), &with_seed(1)).unwrap_err();
    assert!(matches!(err, FormatError::ArmtInitConflict { .. }), "{err:?}");

    let dir = edited_fixture("tiny-armt-names", |t| {
        t.remove("memory_cell.memory").unwrap();
    });
    let err = load_model(dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(&err, FormatError::MissingTensor { name, .. } if name == "memory_cell.memory"),
        "{err}"
    );
}

#[test]
fn config_without_armt_takes_the_callers_parameters() {
    let mut config: serde_json::Value = serde_json::from_str(&fixture_config("tiny-hf-tied-partial")).unwrap();
    config.as_object_mut().unwrap().remove("armt");
    let dir = plain_llama(&config.to_string());

    let err = load_model(dir.path(), &with_seed(3)).unwrap_err();
    assert!(matches!(err, FormatError::Config { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("config.json: no `armt` object") && msg.contains("--armt-init"),
        "{msg}"
    );

    let params = ArmtParams {
        num_mem_tokens: 4,
        d_mem: 8,
        segment_size: 16,
        nu: 3,
        correction: true,
    };
    let m = load_model(
        dir.path(),
        &LoadOptions {
            armt_init: Some(3),
            armt_init_when_missing: None,
            armt_file: None,
            armt_params: Some(params),
        },
    )
    .unwrap();
    assert_eq!(m.config.armt, params);
    assert_eq!(m.weights.memory.len(), 4 * 128);
    assert_eq!(m.weights.layers[0].mem_q.len(), 8 * 128);

    // Parameters of size zero are refused, naming the field.
    let zero = ArmtParams { d_mem: 0, ..params };
    let err = load_model(
        dir.path(),
        &LoadOptions {
            armt_init: Some(3),
            armt_init_when_missing: None,
            armt_file: None,
            armt_params: Some(zero),
        },
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("ARMT parameter `d_mem` must be at least 1"),
        "{err}"
    );
}

#[test]
fn config_armt_object_wins_over_callers_parameters() {
    let dir = plain_llama(&fixture_config("tiny-hf-tied-partial"));
    let params = ArmtParams {
        num_mem_tokens: 4,
        d_mem: 8,
        segment_size: 16,
        nu: 3,
        correction: true,
    };
    let m = load_model(
        dir.path(),
        &LoadOptions {
            armt_init: Some(3),
            armt_init_when_missing: None,
            armt_file: None,
            armt_params: Some(params),
        },
    )
    .unwrap();
    assert_eq!(
        (
            m.config.armt.num_mem_tokens,
            m.config.armt.d_mem,
            m.config.armt.segment_size
        ),
        (8, 16, 32)
    );
}

#[test]
fn seed_when_missing_runs_a_plain_checkpoint_and_leaves_a_trained_one_alone() {
    let when_missing = |seed| LoadOptions {
        armt_init_when_missing: Some(seed),
        ..LoadOptions::default()
    };
    // a plain LLaMA checkpoint: initialised from that seed, the same weights as asking for it
    let dir = plain_llama(&fixture_config("tiny-hf-tied-partial"));
    let m = load_model(dir.path(), &when_missing(0)).unwrap();
    assert_eq!(m.armt_seed, Some(0));
    assert_eq!(m.weights, load_model(dir.path(), &with_seed(0)).unwrap().weights);
    // an explicit seed wins over it
    let explicit = LoadOptions {
        armt_init: Some(5),
        armt_init_when_missing: Some(0),
        armt_params: None,
        armt_file: None,
    };
    assert_eq!(load_model(dir.path(), &explicit).unwrap().armt_seed, Some(5));
    // a checkpoint with trained memory: loaded as it is, no conflict
    let trained = load_model(&fixture("tiny-hf-tied-partial"), &when_missing(0)).unwrap();
    assert_eq!(trained.armt_seed, None);
    let reference = load_model(&fixture("tiny-hf-tied-partial"), &LoadOptions::default()).unwrap();
    assert_eq!(trained.weights, reference.weights);
}
