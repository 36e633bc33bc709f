//! Many requests in one schedule on the CPU model: each request's logits, tokens and final state are bitwise what it
//! gets alone (random mixes of 1-segment, partial and 64-segment prefills and of generations, joining at random steps,
//! decoding interleaved with prefill); the limits and bad calls give errors, not panics.

#[path = "support/requests.rs"]
mod support;

use dbrmt_formats::{presets::armt, random::random_weights, LlamaConfig, Model, ModelConfig, NameLayout};
use dbrmt_model::LogitsMode;
use dbrmt_runtime::{Device, Engine, Event, FinishReason, Generate, Limits, Request, RequestError};
use proptest::prelude::*;
use support::{alone, mix, run_packed, Joining};

/// A model small enough that 64 segments run in milliseconds: 3 layers, T = 4, M = 2.
fn micro() -> ModelConfig {
    LlamaConfig {
        vocab_size: 61,
        hidden_size: 32,
        intermediate_size: 64,
        num_layers: 3,
        num_heads: 2,
        num_kv_heads: 1,
        head_dim: 16,
        rms_norm_eps: 1e-6,
        rope_theta: 10000.0,
        rope_scaling: None,
        tie_word_embeddings: false,
    }
    .with_armt(armt(4, 2, 4))
}

fn engine(seed: u64) -> Engine {
    let config = micro();
    let model = Model {
        weights: random_weights(&config, seed),
        config,
        layout: NameLayout::Hf,
        unused_tensors: Vec::new(),
        armt_initialised: false,
    };
    Engine::from_model(model, Device::Cpu).unwrap()
}

fn check_mix(engine: &Engine, mix: &[Joining]) -> Result<(), TestCaseError> {
    let (packed, occupancy) = run_packed(engine, mix);
    for (i, (j, got)) in mix.iter().zip(&packed).enumerate() {
        let want = alone(engine, &j.request);
        prop_assert_eq!(got, &want, "request {} of the mix ({:?}) differs from alone", i, j);
    }
    prop_assert!(occupancy.steps > 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn every_request_is_bitwise_what_it_is_alone(seed in any::<u64>(), count in 1usize..7) {
        let engine = engine(seed ^ 0x5eed);
        let cfg = engine.config().clone();
        check_mix(&engine, &mix(seed, count, cfg.armt.segment_size, cfg.llama.vocab_size, 64))?;
    }
}

#[test]
fn a_resumed_generation_and_a_cancelled_neighbour() {
    let engine = engine(3);
    // a state saved after a generation continues in the set as in a resumed session
    let first = Generate::greedy((0..9).collect(), 6);
    let mut set = engine.requests(Limits::default()).unwrap();
    set.add(Request::Generate(first)).unwrap();
    let mut saved = None;
    set.run_to_end(|e| {
        if let Event::Finished { state, .. } = e {
            saved = state
        }
    })
    .unwrap();
    let mut resumed = Generate::greedy(vec![5, 6, 7], 7);
    resumed.resume = saved;
    // beside it, a long prefill that is cancelled half way: the other request does not notice
    let joining = [
        Joining {
            at_step: 0,
            request: Request::Generate(resumed.clone()),
        },
        Joining {
            at_step: 1,
            request: Request::Prefill {
                ids: (0..40).map(|i| i % 61).collect(),
                logits: LogitsMode::All,
            },
        },
    ];
    check_mix(&engine, &joining[..1]).unwrap();
    let mut set = engine.requests(Limits::default()).unwrap();
    let a = set.add(Request::Generate(resumed.clone())).unwrap();
    set.step().unwrap();
    let b = set.add(joining[1].request.clone()).unwrap();
    let mut tokens = Vec::new();
    for step in 0.. {
        if step == 3 {
            set.cancel(b).unwrap();
            assert!(matches!(set.cancel(b), Err(RequestError::UnknownRequest(x)) if x == b));
        }
        for e in set.step().unwrap() {
            assert!(step < 3 || e.id() != b, "no event after the cancel");
            if let Event::Token { token, .. } = e {
                tokens.push(token);
            }
        }
        if set.is_idle() {
            break;
        }
    }
    assert_eq!(tokens, alone(&engine, &Request::Generate(resumed)).tokens);
    assert_eq!(a, 0);
}

#[test]
fn limits_and_bad_requests_are_errors() {
    let engine = engine(4);
    let limits = Limits {
        max_requests: 2,
        device_bytes: None,
    };
    let mut set = engine.requests(limits).unwrap();
    let prefill = |ids: Vec<i64>| Request::Prefill {
        ids,
        logits: LogitsMode::Last,
    };
    set.add(prefill(vec![1, 2, 3])).unwrap();
    set.add(prefill(vec![4; 9])).unwrap();
    let err = set.add(prefill(vec![5])).unwrap_err();
    assert!(
        matches!(err, RequestError::TooManyRequests { live: 2, limit: 2 }),
        "{err}"
    );
    assert!(err.to_string().contains("limit is 2"), "{err}");
    // bad input is refused before anything is admitted
    assert!(set.add(prefill(vec![])).unwrap_err().to_string().contains("no tokens"));
    let err = set.add(prefill(vec![1, 61])).unwrap_err();
    assert!(err.to_string().contains("outside the vocabulary"), "{err}");
    let err = set.add(Request::Generate(Generate::greedy(vec![1], 0))).unwrap_err();
    assert!(matches!(err, RequestError::Invalid(_)), "{err}");
    assert!(matches!(set.cancel(99), Err(RequestError::UnknownRequest(99))));
    assert_eq!(set.live(), 2);
    // finishing frees the slots at once
    let mut finished = Vec::new();
    set.run_to_end(|e| {
        if let Event::Finished { id, reason, .. } = e {
            finished.push((id, reason))
        }
    })
    .unwrap();
    assert_eq!(finished, [(0, FinishReason::Prefilled), (1, FinishReason::Prefilled)]);
    assert_eq!(set.live(), 0);
    assert!(set.step().unwrap().is_empty(), "an idle set steps to nothing");
    set.add(prefill(vec![5])).unwrap();
    let zero = Limits {
        max_requests: 0,
        device_bytes: None,
    };
    assert!(engine.requests(zero).is_err());
}

#[test]
fn states_are_copied_out_only_when_kept_and_time_is_split_by_phase() {
    let engine = engine(2);
    let request = || Request::Prefill {
        ids: (0..12).collect(),
        logits: LogitsMode::Last,
    };
    let finished_state = |keep: bool| {
        let mut set = engine.requests(Limits::default()).unwrap();
        set.keep_states(keep);
        set.add(request()).unwrap();
        let (mut state, mut logits) = (None, Vec::new());
        set.run_to_end(|e| match e {
            Event::Finished { state: s, .. } => state = Some(s),
            Event::Logits { logits: l, .. } => logits = l,
            _ => {}
        })
        .unwrap();
        set.synchronize().unwrap();
        let p = set.phases();
        assert!(p.admission > std::time::Duration::ZERO && p.steps > std::time::Duration::ZERO);
        assert_eq!(
            p.total(),
            p.admission + p.steps + p.state_start + p.state_take + p.device_wait
        );
        (state.expect("a Finished event"), logits, p)
    };
    let (kept, logits, _) = finished_state(true);
    let (dropped, same_logits, p) = finished_state(false);
    assert!(kept.is_some() && dropped.is_none());
    assert_eq!(
        p.state_start + p.state_take,
        std::time::Duration::ZERO,
        "nothing copied when states are dropped"
    );
    // the request's results do not depend on whether its state is kept
    assert_eq!(
        logits.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        same_logits.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
}
