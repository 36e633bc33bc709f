//! Many requests in one schedule on the CPU model: each request's logits, tokens and final state are bitwise what it
//! gets alone (random mixes of 1-segment, partial and 64-segment prefills and of generations, joining at random steps,
//! decoding interleaved with prefill); the limits and bad calls give errors, not panics.

#[path = "support/requests.rs"]
mod support;

use dbrmt_formats::{presets::armt, random::random_weights, LlamaConfig, Model, ModelConfig, NameLayout};
use dbrmt_model::{sampling::argmax, LogitsMode};
use dbrmt_runtime::{Device, Engine, Event, FinishReason, Generate, Limits, Request, RequestError};
use proptest::prelude::*;
use support::{alone, mix, run_packed, run_packed_keeping, run_packed_with, Joining};

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
        armt_seed: None,
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

    /// With the set dropping states and some requests keeping theirs (`keep_state`), every request still gets what
    /// it gets alone — the kept states too, their `Finished` a step later than the dropped ones'.
    #[test]
    fn requests_that_keep_their_state_beside_ones_that_drop_it(seed in any::<u64>(), count in 1usize..7) {
        let engine = engine(seed ^ 0xd20b);
        let cfg = engine.config().clone();
        let mix = mix(seed, count, cfg.armt.segment_size, cfg.llama.vocab_size, 64);
        let keep = |i: usize| (i as u64 ^ seed).is_multiple_of(2);
        let (packed, _) = run_packed_keeping(&engine, &mix, keep);
        for (i, (j, got)) in mix.iter().zip(&packed).enumerate() {
            let mut want = alone(&engine, &j.request);
            if !keep(i) {
                want.state = None;
            }
            prop_assert_eq!(got, &want, "request {} of the mix ({:?}) differs from alone", i, j);
        }
    }
}

/// A greedy generation whose tokens come without their logits (`token_logits: false`, as the CLI and the server ask)
/// gives the tokens of one that carries them, each the host's argmax of those logits, beside a sampled neighbour; its
/// events carry no logits; on the CPU model the device switch changes nothing.
#[test]
fn tokens_without_logits_are_the_argmax_of_their_logits() {
    let engine = engine(11);
    // 9 prompt tokens and 10 new ones: segments of 4 close while decoding
    let with = Generate::greedy((0..9).collect(), 10);
    let without = Generate {
        token_logits: false,
        ..with.clone()
    };
    let mut sampled = Generate::greedy((20..27).collect(), 8);
    (sampled.temperature, sampled.seed, sampled.token_logits) = (0.9, 5, false);
    let mix = |g: &Generate| {
        [g, &sampled].map(|g| Joining {
            at_step: 0,
            request: Request::Generate(g.clone()),
        })
    };
    let (a, _) = run_packed(&engine, &mix(&with));
    let (b, _) = run_packed_with(&engine, &mix(&without), |_| true, true);
    let (c, _) = run_packed_with(&engine, &mix(&without), |_| true, false);
    assert_eq!(a[0].tokens.len(), 10);
    for (token, logits) in a[0].tokens.iter().zip(&a[0].token_logits) {
        let logits: Vec<f32> = logits.iter().map(|&b| f32::from_bits(b)).collect();
        assert_eq!(*token, argmax(&logits));
    }
    assert_eq!(b[0].tokens, a[0].tokens);
    assert_eq!((&b[0].reason, &b[0].state), (&a[0].reason, &a[0].state));
    assert!(b[0].token_logits.iter().all(Vec::is_empty) && b[0].token_logits.len() == 10);
    assert_eq!(b, c);
    assert_eq!(a[1], b[1], "the sampled neighbour (no logits either way)");
    for (j, got) in mix(&without).iter().zip(&b) {
        assert_eq!(got, &alone(&engine, &j.request));
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
    let mut cold = Generate::greedy(vec![1], 3);
    cold.temperature = -1.0;
    let err = set.add(Request::Generate(cold)).unwrap_err();
    assert!(err.to_string().contains("temperature"), "{err}");
    // an empty prompt needs a state with open tokens to continue
    let err = set.add(Request::Generate(Generate::greedy(vec![], 3))).unwrap_err();
    assert!(err.to_string().contains("no tokens"), "{err}");
    // only a live generation can be ended
    assert!(matches!(set.end(99), Err(RequestError::UnknownRequest(99))));
    assert!(matches!(set.end(0), Err(RequestError::Invalid(_))));
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

/// A generation ended by the caller after its fifth token finishes with `Ended` and a state holding those five tokens
/// (the state a session has after pushing them); a request continuing that state with no new prompt token gives what
/// a resumed session gives; a neighbour in the same steps does not notice either.
#[test]
fn an_ended_generation_keeps_every_emitted_token() {
    let engine = engine(5);
    let prompt: Vec<i64> = (0..7).map(|i| (i * 13 + 2) % 61).collect();
    let mut sampled = Generate::greedy(prompt.clone(), 40);
    (sampled.temperature, sampled.top_p, sampled.seed) = (0.9, 0.95, 77);
    let neighbour = Request::Generate(Generate::greedy((0..30).collect(), 12));
    let mut set = engine.requests(Limits::default()).unwrap();
    let a = set.add(Request::Generate(sampled.clone())).unwrap();
    let b = set.add(neighbour.clone()).unwrap();
    let (mut tokens, mut other, mut finished) = (Vec::new(), Vec::new(), None);
    while !set.is_idle() {
        for e in set.step().unwrap() {
            match e {
                Event::Token { id, token, .. } if id == a => {
                    tokens.push(token);
                    if tokens.len() == 5 {
                        set.end(a).unwrap();
                        set.end(a).unwrap();
                    }
                }
                Event::Token { id, token, .. } if id == b => other.push(token),
                Event::Finished { id, reason, state } if id == a => finished = Some((reason, state)),
                _ => {}
            }
        }
    }
    assert_eq!(other, alone(&engine, &neighbour).tokens);
    let mut whole = sampled.clone();
    whole.max_new_tokens = 5;
    whole.keep_last_token = true;
    let want = alone(&engine, &Request::Generate(whole));
    assert_eq!(tokens, want.tokens);
    let (reason, state) = finished.expect("finished");
    let state = state.expect("states are kept by default");
    assert_eq!(reason, FinishReason::Ended);
    assert_eq!(Some(support::StateBits::from(state.clone())), want.state);
    // the 12 tokens cross a segment closing (T = 4): the open segment holds the last of them
    assert_eq!(state.segments * 4 + state.open_ids.len(), 7 + 5);
    let mut resumed = Generate::greedy(Vec::new(), 6);
    resumed.resume = Some(state);
    check_mix(
        &engine,
        &[Joining {
            at_step: 0,
            request: Request::Generate(resumed),
        }],
    )
    .unwrap();
}

/// A request that has finished but whose `Finished` has not come yet (its state is being copied out) can still be
/// ended (nothing changes: it finishes as it did) and cancelled (no event comes, ever); one that drops its state
/// finishes in the step of its last token; `keep_state` is refused once a request has finished.
#[test]
fn a_finished_request_whose_state_is_on_its_way() {
    let engine = engine(6);
    let g = |n| Request::Generate(Generate::greedy((0..9).collect(), n));
    for cancel in [false, true] {
        let mut set = engine.requests(Limits::default()).unwrap();
        let (kept, dropped) = (set.add(g(3)).unwrap(), set.add(g(3)).unwrap());
        set.keep_state(dropped, false).unwrap();
        let (mut events, mut checked) = (Vec::new(), false);
        while !set.is_idle() {
            let step = set.step().unwrap();
            let tokens = |of: u64, events: &[Event]| {
                events
                    .iter()
                    .filter(|e| matches!(e, Event::Token { id, .. } if *id == of))
                    .count()
            };
            let finished = |of: u64, events: &[Event]| {
                events
                    .iter()
                    .any(|e| matches!(e, Event::Finished { id, .. } if *id == of))
            };
            // the dropped state's `Finished` comes with the last token, the kept one's a step later
            if tokens(dropped, &step) == 1 && tokens(dropped, &events) == 2 {
                assert!(step
                    .iter()
                    .any(|e| matches!(e, Event::Finished { id, state: None, .. } if *id == dropped)));
            }
            let last_of_kept = tokens(kept, &step) == 1 && tokens(kept, &events) == 2;
            events.extend(step);
            if last_of_kept {
                checked = true;
                assert!(!finished(kept, &events) && !set.is_idle());
                assert!(matches!(
                    set.keep_state(kept, false),
                    Err(RequestError::UnknownRequest(_))
                ));
                set.end(kept).unwrap();
                if cancel {
                    set.cancel(kept).unwrap();
                    assert!(matches!(set.cancel(kept), Err(RequestError::UnknownRequest(_))));
                    assert!(matches!(set.end(kept), Err(RequestError::UnknownRequest(_))));
                }
            }
        }
        assert!(checked);
        assert!(events
            .iter()
            .any(|e| matches!(e, Event::Finished { id, state: None, .. } if *id == dropped)));
        let finished: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::Finished { id, reason, state } if *id == kept => Some((*reason, state.clone())),
                _ => None,
            })
            .collect();
        if cancel {
            assert!(finished.is_empty(), "no event after the cancel");
        } else {
            let want = alone(&engine, &g(3)).state;
            assert_eq!(finished.len(), 1);
            assert_eq!(finished[0].0, FinishReason::Length);
            assert_eq!(finished[0].1.clone().map(support::StateBits::from), want);
        }
        assert_eq!(set.live(), 0);
    }
}
