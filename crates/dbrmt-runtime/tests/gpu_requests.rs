//! Many requests in one schedule on the GPU: each request's logits, tokens and final state are bitwise what it gets
//! alone on the same GPU (a prefill through `Engine::prefill`, a generation through a session), for fixed kinds of
//! mixes drawn from a fresh seed (printed): prefills of 1, partial and 64 segments and generations joining at random
//! steps; many decoding requests at once (more cells of one layer than a launch holds); a small and a tiny shape.
//! Ignored without a GPU (`cargo test -- --ignored` on one, or `dist/run.sh`).

#[path = "support/requests.rs"]
mod support;

use dbrmt_formats::{presets, random::random_weights, Model, ModelConfig, NameLayout};
use dbrmt_runtime::{Device, Engine, Generate, Request};
use support::{alone, ids, mix, run_packed, run_packed_with, Joining};

fn engine(config: ModelConfig, seed: u64) -> Engine {
    let model = Model {
        weights: random_weights(&config, seed).rounded_to_bf16(),
        config,
        layout: NameLayout::Hf,
        unused_tensors: Vec::new(),
        armt_seed: None,
    };
    Engine::from_model(model, Device::Cuda(0)).expect("the GPU engine")
}

fn seed() -> u64 {
    let seed = std::env::var("DBRMT_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("seed {seed} (DBRMT_TEST_SEED={seed} repeats it)");
    seed
}

fn assert_alone(engine: &Engine, mix: &[Joining], what: &str) {
    let (packed, occupancy) = run_packed(engine, mix);
    for (i, (j, got)) in mix.iter().zip(&packed).enumerate() {
        let want = alone(engine, &j.request);
        assert!(got == &want, "{what}: request {i} ({:?}) differs from alone", j.request);
    }
    println!(
        "{what}: {} requests bitwise as alone; {} steps, {} whole + {} open cells, slot occupancy {:.2}",
        mix.len(),
        occupancy.steps,
        occupancy.whole_cells,
        occupancy.open_cells,
        occupancy.slot_occupancy()
    );
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn random_mixes_are_bitwise_as_alone() {
    let seed = seed();
    for (k, config) in [presets::tiny(false), presets::tiny(true), presets::small()]
        .into_iter()
        .enumerate()
    {
        let engine = engine(config.clone(), seed ^ k as u64);
        for round in 0..2u64 {
            let (t, v) = (config.armt.segment_size, config.llama.vocab_size);
            let m = mix(seed.wrapping_add(97 * round + k as u64), 6, t, v, 64);
            assert_alone(&engine, &m, &format!("shape {k}, mix {round}"));
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn many_decoders_share_steps_bitwise() {
    let seed = seed();
    let config = presets::tiny(false);
    let engine = engine(config.clone(), seed);
    let mut rng = dbrmt_formats::rng::SplitMix64::new(seed);
    // 70 requests decoding together: 70 open cells of one layer per step, more than a launch's 64 groups
    let m: Vec<Joining> = (0..70)
        .map(|i| {
            let prompt = ids(&mut rng, 1 + (i * 7) % 45, config.llama.vocab_size);
            Joining {
                at_step: i % 3,
                request: Request::Generate(Generate::greedy(prompt, 4 + i % 5)),
            }
        })
        .collect();
    assert_alone(&engine, &m, "70 decoders");
}

/// Greedy tokens chosen on the device (`argmax_rows_f32`, tokens asked without their logits) are the host's argmax:
/// 70 decoders (more rows than one launch of the LM head holds) on two shapes, beside sampled requests, run three
/// ways — tokens with their logits (the host's argmax of the copied logits), without (the device's ids), and without
/// under `DBRMT_DEVICE_ARGMAX=off` (`Requests::device_argmax(false)`: the logits copied, the host's argmax) — give the
/// same tokens, reasons and states, and each request is what it is alone (a session's logits, the host's argmax).
#[test]
#[ignore = "needs a CUDA GPU"]
fn device_argmax_tokens_are_the_host_argmax() {
    let seed = seed();
    for (k, config) in [presets::tiny(false), presets::small()].into_iter().enumerate() {
        let engine = engine(config.clone(), seed ^ (k as u64 + 7));
        let mut rng = dbrmt_formats::rng::SplitMix64::new(seed ^ k as u64);
        let (t, v) = (config.armt.segment_size, config.llama.vocab_size);
        let make = |token_logits: bool, rng: &mut dbrmt_formats::rng::SplitMix64| -> Vec<Joining> {
            (0..70)
                .map(|i| {
                    // prompts and outputs that cross segment closings; every tenth request sampled
                    let mut g = Generate::greedy(ids(rng, 1 + (i * 13) % (2 * t), v), 3 + i % (t + 3));
                    g.token_logits = token_logits;
                    if i % 10 == 9 {
                        (g.temperature, g.top_p, g.seed) = (0.7, 0.95, i as u64);
                    }
                    Joining {
                        at_step: i % 4,
                        request: Request::Generate(g),
                    }
                })
                .collect()
        };
        let with = make(true, &mut rng.clone());
        let without = make(false, &mut rng);
        let (host, _) = run_packed(&engine, &with);
        let (device, occupancy) = run_packed_with(&engine, &without, |_| true, true);
        let (off, _) = run_packed_with(&engine, &without, |_| true, false);
        let mut tokens = 0;
        for (i, ((h, d), o)) in host.iter().zip(&device).zip(&off).enumerate() {
            assert_eq!(
                d.tokens, h.tokens,
                "shape {k}, request {i}: device ids vs the host's argmax"
            );
            assert_eq!((&d.reason, &d.state), (&h.reason, &h.state), "shape {k}, request {i}");
            assert!(d.token_logits.iter().all(Vec::is_empty), "no logits asked for");
            assert!(o == d, "shape {k}, request {i}: DBRMT_DEVICE_ARGMAX=off differs");
            tokens += d.tokens.len();
        }
        for (i, (j, got)) in without.iter().zip(&device).enumerate() {
            assert!(
                got == &alone(&engine, &j.request),
                "shape {k}, request {i} differs from alone"
            );
        }
        println!(
            "shape {k}: {tokens} tokens of 70 requests, device ids = host argmax; {} steps, {} open cells",
            occupancy.steps, occupancy.open_cells
        );
    }
}
