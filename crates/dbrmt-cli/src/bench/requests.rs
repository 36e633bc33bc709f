//! `dbrmt bench requests`: throughput of many requests in one packed schedule, on random weights of a matrix shape.
//!
//! * Prefill (`--decode 0`): `N` requests of `K` random tokens (LM head excluded, as in the matrix rows) admitted at
//!   once and run to the end (`packed`), against the same requests one after another through the same API
//!   (`serial`): the gain of filling the layer slots of one request's ramp-up and ramp-down with the others' segments.
//! * Decode (`--decode D`): `N` requests with prompts of `K` tokens, each generating `D` greedy tokens together; the
//!   generated tokens per second summed over the requests, timed from the step where the last prompt finished.
//!
//! Host wall-clock time around the steps (what a server sees: launches, the copies of logits and states, sampling),
//! median of `--iters` runs after one warm-up. One JSON line per method and request count, with the slot occupancy.

use std::time::Instant;

use anyhow::Context;
use dbrmt_formats::rng::SplitMix64;
use dbrmt_model::LogitsMode;
use dbrmt_runtime::{requests::Occupancy, Engine, Event, Generate, Limits, Request};
use serde_json::json;

use super::e2e::EngineCache;
use super::matrix::Matrix;
use super::{device_name, median, Out};

/// What `dbrmt bench requests` measures.
#[derive(Debug, Clone)]
pub struct Plan {
    pub model: String,
    pub segment: usize,
    pub requests: Vec<usize>,
    pub tokens: usize,
    pub decode: usize,
    pub iters: usize,
    pub serial: bool,
    pub seed: u64,
}

/// One timed run: milliseconds, the tokens it counts, occupancy, the most device bytes the set held.
struct Timed {
    ms: f64,
    tokens: usize,
    occupancy: Occupancy,
    bytes: usize,
}

pub fn requests(m: &Matrix, plan: &Plan, out: &mut Out) -> anyhow::Result<()> {
    let mut cache = EngineCache::default();
    let engine = cache.get(m, &plan.model, plan.segment, plan.seed)?;
    let vocab = engine.config().llama.vocab_size;
    let prompt = |r: usize| random_ids(plan.tokens, vocab, plan.seed ^ ((r as u64 + 1) * 0x9e37));
    // warm-up: kernels loaded, pools touched
    let warm: Vec<Request> = (0..2).map(|r| prefill(prompt(r))).collect();
    run(engine, warm, 0)?;
    for &n in &plan.requests {
        let methods: &[&str] = match (plan.decode, plan.serial) {
            (0, true) => &["packed", "serial"],
            _ => &["packed"],
        };
        for &method in methods {
            let mut runs = Vec::new();
            for _ in 0..plan.iters.max(1) {
                let make = |r: usize| match plan.decode {
                    0 => prefill(prompt(r)),
                    d => Request::Generate(Generate::greedy(prompt(r), d)),
                };
                let t = match method {
                    "packed" => run(engine, (0..n).map(make).collect(), plan.decode)?,
                    _ => serial(engine, (0..n).map(make).collect())?,
                };
                runs.push(t);
            }
            report(engine, plan, n, method, runs, out)?;
        }
    }
    Ok(())
}

fn prefill(ids: Vec<i64>) -> Request {
    Request::Prefill {
        ids,
        logits: LogitsMode::None,
    }
}

/// All requests admitted at once, stepped to the end. With `decode > 0`, only the tokens generated after every prompt
/// is done are counted and timed.
fn run(engine: &Engine, requests: Vec<Request>, decode: usize) -> anyhow::Result<Timed> {
    let limits = Limits {
        max_requests: requests.len().max(1),
        device_bytes: None,
    };
    let mut set = engine.requests(limits)?;
    let n = requests.len();
    let mut t0 = Instant::now();
    let mut tokens = 0;
    for r in requests {
        if let Request::Prefill { ids, .. } = &r {
            tokens += ids.len();
        }
        set.add(r).context("admitting a request")?;
    }
    let mut started = std::collections::HashSet::new();
    let (mut generated, mut bytes) = (0, 0);
    let mut decoding = decode == 0;
    let mut at_decode = Occupancy::default();
    while !set.is_idle() {
        for e in set.step()? {
            if let Event::Token { id, .. } = e {
                if decoding {
                    generated += 1;
                } else {
                    started.insert(id);
                }
            }
        }
        bytes = bytes.max(set.device_bytes());
        if !decoding && started.len() == n {
            // every prompt is done: time the decoding from here
            decoding = true;
            t0 = Instant::now();
            at_decode = set.occupancy();
        }
    }
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    let mut occupancy = set.occupancy();
    occupancy.steps -= at_decode.steps;
    occupancy.whole_cells -= at_decode.whole_cells;
    occupancy.open_cells -= at_decode.open_cells;
    let tokens = if decode > 0 { generated } else { tokens };
    Ok(Timed {
        ms,
        tokens,
        occupancy,
        bytes,
    })
}

/// The same requests one after another, each alone in the set.
fn serial(engine: &Engine, requests: Vec<Request>) -> anyhow::Result<Timed> {
    let (mut ms, mut tokens, mut bytes) = (0.0, 0, 0);
    let mut occupancy = Occupancy::default();
    for r in requests {
        let t = run(engine, vec![r], 0)?;
        ms += t.ms;
        tokens += t.tokens;
        bytes = bytes.max(t.bytes);
        occupancy.steps += t.occupancy.steps;
        occupancy.whole_cells += t.occupancy.whole_cells;
        occupancy.open_cells += t.occupancy.open_cells;
        occupancy.layers = t.occupancy.layers;
    }
    Ok(Timed {
        ms,
        tokens,
        occupancy,
        bytes,
    })
}

fn report(engine: &Engine, plan: &Plan, n: usize, method: &str, runs: Vec<Timed>, out: &mut Out) -> anyhow::Result<()> {
    let ms_runs: Vec<f64> = runs.iter().map(|t| t.ms).collect();
    let ms = median(&ms_runs);
    let last = runs.last().context("at least one run")?;
    let occupancy = Occupancy {
        layers: engine.config().llama.num_layers,
        ..last.occupancy
    };
    let tokens_per_s = last.tokens as f64 / ms * 1e3;
    let mode = if plan.decode > 0 { "decode" } else { "prefill" };
    eprintln!(
        "bench: requests {mode:<7} {n:>3} × {:>6} tokens{} {method:<6} {ms:>9.1} ms  {tokens_per_s:>9.0} tokens/s  \
         {} steps, slot occupancy {:.2}, {:.2} GiB",
        plan.tokens,
        if plan.decode > 0 {
            format!(" + {} new", plan.decode)
        } else {
            String::new()
        },
        occupancy.steps,
        occupancy.slot_occupancy(),
        last.bytes as f64 / (1u64 << 30) as f64
    );
    out.line(json!({
        "kind": "requests", "mode": mode, "method": method, "requests": n, "tokens": plan.tokens,
        "decode": plan.decode, "model": plan.model, "segment": plan.segment, "ms": ms, "ms_runs": ms_runs,
        "counted_tokens": last.tokens, "tokens_per_s": tokens_per_s, "steps": occupancy.steps,
        "whole_cells": occupancy.whole_cells, "open_cells": occupancy.open_cells, "layers": occupancy.layers,
        "slot_occupancy": occupancy.slot_occupancy(), "requests_gib": last.bytes as f64 / (1u64 << 30) as f64,
        "device": device_name(),
    }))
}

/// `n` random ids below `vocab`.
fn random_ids(n: usize, vocab: usize, seed: u64) -> Vec<i64> {
    let mut r = SplitMix64::new(seed);
    (0..n).map(|_| (r.next_u64() % vocab as u64) as i64).collect()
}
