//! Generation sessions on the CPU model: prefill and token-by-token decoding agree with a full prefill of the same
//! text, across segment closings; a saved state continues bitwise as if never saved; forks are independent; a
//! state from another model is refused.

use std::path::PathBuf;

use dbrmt_formats::{identity::model_identity, load_model, npy, LoadOptions, Model, SavedState};
use dbrmt_model::{
    cpu::{CpuModel, RunOptions, Session},
    input::validate_ids,
    LogitsMode,
};
use dbrmt_schedule::Grid;

fn fixture(name: &str) -> PathBuf {
    let root = std::env::var_os("DBRMT_REPO_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")));
    root.join("testdata/fixtures").join(name)
}

fn load(name: &str) -> (Model, Vec<u32>) {
    let dir = fixture(name);
    let model = load_model(&dir, &LoadOptions::default()).unwrap();
    let ids = validate_ids(
        &npy::read_ids(&dir.join("input_ids.npy")).unwrap(),
        model.config.llama.vocab_size,
    )
    .unwrap();
    (model, ids)
}

/// Last-token logits of a full prefill (the reference for a session).
fn prefill_last(cpu: &CpuModel<'_>, ids: &[u32]) -> Vec<f32> {
    let cfg = cpu.config();
    let grid = Grid::new(cfg.llama.num_layers, cfg.segments_for(ids.len()));
    let opts = RunOptions {
        logits: LogitsMode::Last,
        keep_hidden: false,
        threads: 1,
    };
    cpu.run(ids, &grid.diagonal(), &opts).unwrap().logits
}

fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den).sqrt()
}

fn argmax(x: &[f32]) -> u32 {
    x.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
        .0 as u32
}

#[test]
fn decoding_across_segment_closings_matches_full_prefills() {
    let (model, ids) = load("tiny-armt-names"); // T = 32
    let cpu = CpuModel::new(&model.config, &model.weights);
    let mut s = Session::new(&cpu);
    let prompt = &ids[..40]; // one closed segment, 8 open tokens
    s.prefill(prompt).unwrap();
    assert_eq!((s.segments_closed(), s.open_tokens().len()), (1, 8));
    let mut text = prompt.to_vec();
    let e = rel_err(s.logits(), &prefill_last(&cpu, &text));
    assert!(e < 1e-5, "after prefill: {e:.2e}");
    // 70 more tokens (greedy), closing the open segment twice
    for step in 0..70 {
        let next = argmax(s.logits());
        s.push(next).unwrap();
        text.push(next);
        if step % 9 == 0 || step == 69 {
            let e = rel_err(s.logits(), &prefill_last(&cpu, &text));
            assert!(e < 1e-5, "step {step} ({} tokens): {e:.2e}", text.len());
        }
    }
    assert_eq!(s.segments_closed(), 3, "110 tokens = 3 closed segments of 32 + 14 open");
    assert_eq!(s.open_tokens().len(), 14);
}

#[test]
fn a_saved_state_continues_bitwise_and_forks_are_independent() {
    let (model, ids) = load("tiny-hf-tied-partial");
    let cpu = CpuModel::new(&model.config, &model.weights);
    let identity = model_identity(&model.config, &model.weights);
    let (a, b) = ids.split_at(77);

    let mut one_run = Session::new(&cpu);
    one_run.prefill(a).unwrap();
    one_run.prefill(b).unwrap();

    let mut first = Session::new(&cpu);
    first.prefill(a).unwrap();
    let path = std::env::temp_dir().join(format!("dbrmt-state-{}.safetensors", std::process::id()));
    first.saved().save(&path, &identity).unwrap();
    let cfg = &model.config;
    let loaded = SavedState::load(
        &path,
        &identity,
        cfg.llama.num_layers,
        cfg.d_key(),
        cfg.llama.hidden_size,
    )
    .unwrap();
    assert_eq!(loaded, first.saved());

    let mut resumed = Session::resume(&cpu, loaded.clone());
    resumed.prefill(b).unwrap();
    let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
    assert_eq!(
        bits(resumed.logits()),
        bits(one_run.logits()),
        "A, save, load, B differs from A then B"
    );
    assert_eq!(resumed.saved(), one_run.saved());

    // two forks of one state: independent, and identical when fed the same tokens
    let (mut f1, mut f2, mut f3) = (
        Session::resume(&cpu, loaded.clone()),
        Session::resume(&cpu, loaded.clone()),
        Session::resume(&cpu, loaded),
    );
    for t in [5u32, 9, 11] {
        f1.push(t).unwrap();
        f3.push(t).unwrap();
    }
    f2.push(400).unwrap();
    assert_eq!(bits(f1.logits()), bits(f3.logits()));
    assert_ne!(bits(f1.logits()), bits(f2.logits()));
    assert_eq!(f2.saved().open_ids.last(), Some(&400));
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_state_from_another_model_is_refused() {
    let (model, ids) = load("tiny-armt-names");
    let (other, _) = load("tiny-single-short");
    let cpu = CpuModel::new(&model.config, &model.weights);
    let mut s = Session::new(&cpu);
    s.prefill(&ids[..50]).unwrap();
    let path = std::env::temp_dir().join(format!("dbrmt-state-other-{}.safetensors", std::process::id()));
    s.saved()
        .save(&path, &model_identity(&model.config, &model.weights))
        .unwrap();
    let cfg = &other.config;
    let err = SavedState::load(
        &path,
        &model_identity(cfg, &other.weights),
        cfg.llama.num_layers,
        cfg.d_key(),
        cfg.llama.hidden_size,
    )
    .unwrap_err();
    assert!(err.to_string().contains("another model"), "{err}");
    let _ = std::fs::remove_file(path);
}

#[test]
fn bad_session_input() {
    let (model, _) = load("tiny-single-short");
    let cpu = CpuModel::new(&model.config, &model.weights);
    let mut s = Session::new(&cpu);
    assert!(s.prefill(&[]).unwrap_err().to_string().contains("no tokens"));
    assert!(s
        .prefill(&[512])
        .unwrap_err()
        .to_string()
        .contains("outside the vocabulary"));
    assert!(s.push(9999).is_err());
}

#[test]
fn chunked_prefill_is_bitwise_one_prefill() {
    let (model, ids) = load("tiny-armt-names"); // 160 tokens = 5 segments of 32
    let cpu = CpuModel::new(&model.config, &model.weights);
    let (mut whole, mut chunked) = (Session::new(&cpu), Session::new(&cpu));
    whole.prefill(&ids).unwrap();
    let mut seen = Vec::new();
    chunked.prefill_chunked(&ids, 1, |done| seen.push(done)).unwrap();
    let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
    assert_eq!(bits(whole.logits()), bits(chunked.logits()));
    assert_eq!(whole.saved(), chunked.saved());
    assert_eq!(seen, vec![32, 64, 96, 128, 160]);
}

/// `Session::generate_greedy` is the loop of the argmax of the logits and a push: the same ids and passes, stopped by
/// its callback (the refused id is the next call's first), across a segment closing (T = 32), and the same state after.
#[test]
fn greedy_generation_is_the_argmax_and_push_loop() {
    let (model, ids) = load("tiny-armt-names"); // T = 32
    let cpu = CpuModel::new(&model.config, &model.weights);
    let prompt = &ids[..20];
    let tokens = 30; // 20 + 29 pushes: the open segment closes once

    let mut by_hand = Session::new(&cpu);
    by_hand.prefill(prompt).unwrap();
    let mut expected = Vec::new();
    for i in 0..tokens {
        let id = argmax(by_hand.logits());
        expected.push(id);
        if i + 1 < tokens {
            by_hand.push(id).unwrap();
        }
    }

    let mut session = dbrmt_model::Session::Cpu(Session::new(&cpu));
    session.prefill(prompt).unwrap();
    let mut got = Vec::new();
    let stop = 7;
    let first = session
        .generate_greedy(tokens, |id| -> Result<bool, dbrmt_model::ModelError> {
            got.push(id);
            Ok(got.len() <= stop)
        })
        .unwrap();
    assert_eq!(first, stop, "passes before the refused id");
    assert_eq!(got, expected[..=stop], "ids up to the refused one");
    let rest = session
        .generate_greedy(tokens - stop, |id| -> Result<bool, dbrmt_model::ModelError> {
            got.push(id);
            Ok(true)
        })
        .unwrap();
    assert_eq!(first + rest, tokens - 1, "every id but the last was pushed");
    assert_eq!(
        got[stop + 1..],
        expected[stop..],
        "the second call goes on from the refused id"
    );
    assert_eq!(session.segments_closed(), 1);
    assert_eq!(
        session.saved().unwrap(),
        dbrmt_model::Session::Cpu(by_hand).saved().unwrap()
    );

    // nothing to generate from, and no tokens asked for
    let mut empty = dbrmt_model::Session::Cpu(Session::new(&cpu));
    assert!(empty
        .generate_greedy(3, |_| -> Result<bool, dbrmt_model::ModelError> { Ok(true) })
        .is_err());
    assert_eq!(
        session
            .generate_greedy(0, |_| -> Result<bool, dbrmt_model::ModelError> { Ok(true) })
            .unwrap(),
        0
    );
}

/// A prompt that ends a segment closes it in the prefill: the logits are the full prefill's, bitwise (they come from
/// the same run), the open segment is empty, and the next token continues exactly as from a prompt one token shorter
/// whose last token was pushed (whose full open segment that push's successor closes).
#[test]
fn a_prompt_that_ends_a_segment_closes_it() {
    let (model, ids) = load("tiny-armt-names"); // T = 32
    let cpu = CpuModel::new(&model.config, &model.weights);
    let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
    let mut eager = Session::new(&cpu);
    eager.prefill(&ids[..64]).unwrap();
    assert_eq!((eager.segments_closed(), eager.open_tokens().len()), (2, 0));
    assert_eq!(bits(eager.logits()), bits(&prefill_last(&cpu, &ids[..64])));

    let mut lazy = Session::new(&cpu);
    lazy.prefill(&ids[..63]).unwrap();
    lazy.push(ids[63]).unwrap();
    assert_eq!((lazy.segments_closed(), lazy.open_tokens().len()), (1, 32));
    assert!(rel_err(lazy.logits(), eager.logits()) < 1e-5);
    for &id in &ids[64..70] {
        let a = bits(eager.push(id).unwrap());
        assert_eq!(a, bits(lazy.push(id).unwrap()), "token {id}");
    }
    assert_eq!(eager.saved(), lazy.saved());

    // a saved state with an empty open segment continues
    let mut resumed = Session::resume(&cpu, eager.saved());
    let mut closed = Session::new(&cpu);
    closed.prefill(&ids[..64]).unwrap();
    let saved = closed.saved();
    assert!(saved.open_ids.is_empty());
    let mut from_saved = Session::resume(&cpu, saved);
    assert_eq!(
        bits(from_saved.push(ids[64]).unwrap()),
        bits(closed.push(ids[64]).unwrap())
    );
    assert!(resumed.push(ids[70]).is_ok());
}
