//! `dbrmt bench requests`: throughput of many requests in one packed schedule, on random weights of a matrix shape.
//!
//! * Prefill (`--decode 0`): `N` requests of `K` random tokens (LM head excluded, as in the matrix rows) admitted at
//!   once and run to the end (`packed`), against the same requests one after another through the same API
//!   (`serial`): the gain of filling the layer slots of one request's ramp-up and ramp-down with the others' segments.
//! * Decode (`--decode D`): `N` requests with prompts of `K` tokens, each generating `D` greedy tokens together; the
//!   generated tokens per second summed over the requests, timed from the step where the last prompt finished.
//!
//! Host wall-clock time around the steps (what a server sees: launches, the copies of logits, sampling) until the
//! device is done, median of `--iters` runs after one warm-up; finished requests' states are not copied out (nothing
//! reads them) unless `--keep-states`, and each set's pool is allocated before the timing. "serial" runs the requests one after another
//! through one set. One JSON line per method and request count, with the slot occupancy and the host time by phase
//! (admission, steps, waits for the device; `DBRMT_MERGE_ROWS=off` turns off the merged decode rows, to compare).
//! Decoding asks for the tokens only, so greedy ids are chosen on the device (4 bytes per row copied out);
//! `DBRMT_DEVICE_ARGMAX=off` copies every row's logits to the host for its argmax instead, to compare.

use std::time::Instant;

use anyhow::Context;
use dbrmt_kernels::switches;
use dbrmt_model::LogitsMode;
use dbrmt_runtime::{
    requests::{Occupancy, Phases},
    Engine, Event, Generate, Limits, Request, Requests,
};
use serde_json::json;

use super::e2e::EngineCache;
use super::matrix::Matrix;
use super::{device_name, median, random_ids, Out};

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
    /// Finished requests' states copied to the host (else dropped).
    pub keep_states: bool,
    pub seed: u64,
}

/// One timed run: milliseconds, the tokens it counts, occupancy, the most device bytes the set held, and the host
/// time by phase.
struct Timed {
    ms: f64,
    tokens: usize,
    occupancy: Occupancy,
    bytes: usize,
    phases: Phases,
}

/// A greedy generation whose tokens come without their logits, as `dbrmt generate` and the server ask for them (the
/// ids chosen on the device unless `DBRMT_DEVICE_ARGMAX=off`).
fn ids_only(prompt: Vec<i64>, tokens: usize) -> Request {
    Request::Generate(Generate {
        token_logits: false,
        ..Generate::greedy(prompt, tokens)
    })
}

pub fn requests(m: &Matrix, plan: &Plan, out: &mut Out) -> anyhow::Result<()> {
    let mut cache = EngineCache::default();
    let engine = cache.get(m, &plan.model, plan.segment, plan.seed)?;
    let vocab = engine.config().llama.vocab_size;
    let prompt = |r: usize| random_ids(plan.tokens, vocab, plan.seed ^ ((r as u64 + 1) * 0x9e37));
    // warm-up: kernels loaded (prefill, decode, the merged rows' moves), pools touched
    let mut warm: Vec<Request> = (0..2).map(|r| prefill(prompt(r))).collect();
    warm.extend((0..2).map(|r| ids_only(prompt(r).into_iter().take(16).collect(), 2)));
    run(engine, warm, 0, true)?;
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
                    d => ids_only(prompt(r), d),
                };
                let t = match method {
                    "packed" => run(engine, (0..n).map(make).collect(), plan.decode, plan.keep_states)?,
                    _ => serial(engine, (0..n).map(make).collect(), plan.keep_states)?,
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

/// A set for `n` requests at once (its pool allocated now, outside the timing), keeping or dropping finished requests'
/// states.
fn new_set(engine: &Engine, n: usize, keep_states: bool) -> anyhow::Result<Requests<'_>> {
    let limits = Limits {
        max_requests: n.max(1),
        device_bytes: None,
    };
    let mut set = engine.requests(limits)?;
    set.keep_states(keep_states);
    Ok(set)
}

/// All requests admitted at once, stepped to the end, in a set of their own.
fn run(engine: &Engine, requests: Vec<Request>, decode: usize, keep_states: bool) -> anyhow::Result<Timed> {
    let mut set = new_set(engine, requests.len(), keep_states)?;
    drive(&mut set, requests, decode)
}

/// All requests admitted at once into `set`, stepped until it is idle and the device is done. With `decode > 0`,
/// only the tokens generated after every prompt is done are counted and timed.
fn drive(set: &mut Requests, requests: Vec<Request>, decode: usize) -> anyhow::Result<Timed> {
    let n = requests.len();
    let mut t0 = Instant::now();
    let (mut at_start, mut phases_at_start) = (set.occupancy(), set.phases());
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
            set.synchronize()?;
            decoding = true;
            t0 = Instant::now();
            (at_start, phases_at_start) = (set.occupancy(), set.phases());
        }
    }
    set.synchronize()?;
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    let end = set.occupancy();
    let occupancy = Occupancy {
        steps: end.steps - at_start.steps,
        whole_cells: end.whole_cells - at_start.whole_cells,
        open_cells: end.open_cells - at_start.open_cells,
        layers: end.layers,
        request_steps: end.request_steps - at_start.request_steps,
        // (a maximum: over the whole run, prompts included)
        max_step_requests: end.max_step_requests,
    };
    let tokens = if decode > 0 { generated } else { tokens };
    Ok(Timed {
        ms,
        tokens,
        occupancy,
        bytes,
        phases: minus(set.phases(), phases_at_start),
    })
}

/// The same requests one after another, each alone in one set (as a server with one request at a time runs them).
fn serial(engine: &Engine, requests: Vec<Request>, keep_states: bool) -> anyhow::Result<Timed> {
    let mut set = new_set(engine, 1, keep_states)?;
    let (mut ms, mut tokens, mut bytes) = (0.0, 0, 0);
    let mut occupancy = Occupancy::default();
    let mut phases = Phases::default();
    for r in requests {
        let t = drive(&mut set, vec![r], 0)?;
        ms += t.ms;
        tokens += t.tokens;
        bytes = bytes.max(t.bytes);
        occupancy.steps += t.occupancy.steps;
        occupancy.whole_cells += t.occupancy.whole_cells;
        occupancy.open_cells += t.occupancy.open_cells;
        occupancy.layers = t.occupancy.layers;
        occupancy.request_steps += t.occupancy.request_steps;
        occupancy.max_step_requests = occupancy.max_step_requests.max(t.occupancy.max_step_requests);
        phases = plus(phases, t.phases);
    }
    Ok(Timed {
        ms,
        tokens,
        occupancy,
        bytes,
        phases,
    })
}

fn minus(a: Phases, b: Phases) -> Phases {
    Phases {
        admission: a.admission.saturating_sub(b.admission),
        steps: a.steps.saturating_sub(b.steps),
        state_start: a.state_start.saturating_sub(b.state_start),
        state_take: a.state_take.saturating_sub(b.state_take),
        device_wait: a.device_wait.saturating_sub(b.device_wait),
        copy_wait: a.copy_wait.saturating_sub(b.copy_wait),
    }
}

fn plus(a: Phases, b: Phases) -> Phases {
    Phases {
        admission: a.admission + b.admission,
        steps: a.steps + b.steps,
        state_start: a.state_start + b.state_start,
        state_take: a.state_take + b.state_take,
        device_wait: a.device_wait + b.device_wait,
        copy_wait: a.copy_wait + b.copy_wait,
    }
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
         {} steps, slot occupancy {:.2}, {:.2} GiB{}",
        plan.tokens,
        if plan.decode > 0 {
            format!(" + {} new", plan.decode)
        } else {
            String::new()
        },
        occupancy.steps,
        occupancy.slot_occupancy(),
        last.bytes as f64 / (1u64 << 30) as f64,
        if plan.keep_states { ", states kept" } else { "" }
    );
    // where the host's time went (the last run): launches are asynchronous, so device time shows up in `steps` only
    // where a step waits for it (logits copied out), else in the final wait for the device
    let ph = &last.phases;
    let msf = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let other = last.ms - msf(ph.total());
    eprintln!(
        "bench:   phases (ms): admission {:.1}, steps {:.1} (of which waiting for the GPU at the copy-out {:.1}), \
         state start {:.1}, state take {:.1}, device wait {:.1}, other {other:.1}",
        msf(ph.admission),
        msf(ph.steps),
        msf(ph.copy_wait),
        msf(ph.state_start),
        msf(ph.state_take),
        msf(ph.device_wait)
    );
    let phase_ms = json!({
        "admission": msf(ph.admission), "steps": msf(ph.steps), "copy_wait": msf(ph.copy_wait),
        "state_start": msf(ph.state_start), "state_take": msf(ph.state_take), "device_wait": msf(ph.device_wait),
        "other": other,
    });
    out.line(json!({
        "kind": "requests", "mode": mode, "method": method, "requests": n, "tokens": plan.tokens,
        "decode": plan.decode, "model": plan.model, "segment": plan.segment, "ms": ms, "ms_runs": ms_runs,
        "counted_tokens": last.tokens, "tokens_per_s": tokens_per_s, "steps": occupancy.steps,
        "whole_cells": occupancy.whole_cells, "open_cells": occupancy.open_cells, "layers": occupancy.layers,
        "slot_occupancy": occupancy.slot_occupancy(), "requests_gib": last.bytes as f64 / (1u64 << 30) as f64,
        "phase_ms": phase_ms, "keep_states": plan.keep_states, "merge_rows": switches::state(switches::MERGE_ROWS),
        "device_argmax": switches::state(switches::DEVICE_ARGMAX),
        "device": device_name(),
    }))
}
