//! Random mixes of requests and what each one gives alone, for the many-requests tests on both devices.

use std::collections::BTreeMap;

use dbrmt_formats::{rng::SplitMix64, SavedState};
use dbrmt_model::{sampling::Sampler, LogitsMode};
use dbrmt_runtime::{Engine, Event, FinishReason, Generate, Limits, Request, RequestId, ScheduleKind};

/// One request of a mix and the step before which it joins.
#[derive(Debug, Clone)]
pub struct Joining {
    pub at_step: usize,
    pub request: Request,
}

/// What a request gave: its logits rows (prefill), tokens and their logits (generation), and its final state.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub logits: Vec<u32>,
    pub tokens: Vec<u32>,
    pub token_logits: Vec<Vec<u32>>,
    pub reason: Option<FinishReason>,
    pub state: Option<StateBits>,
}

/// A saved state compared bit for bit (random weights may drive a long request's state to NaN, which `==` on f32
/// would never call equal even when both runs made exactly the same bits).
#[derive(Debug, Clone, PartialEq)]
pub struct StateBits {
    pub shape: (usize, usize, usize),
    pub a: Vec<Vec<u32>>,
    pub z: Vec<Vec<u32>>,
    pub segments: usize,
    pub open_ids: Vec<u32>,
}

impl From<SavedState> for StateBits {
    fn from(s: SavedState) -> Self {
        let m = &s.state;
        StateBits {
            shape: (m.d_key, m.hidden, m.layers.len()),
            a: m.layers.iter().map(|l| bits(&l.a)).collect(),
            z: m.layers.iter().map(|l| bits(&l.z)).collect(),
            segments: s.segments,
            open_ids: s.open_ids,
        }
    }
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

/// Random ids below `vocab`.
pub fn ids(rng: &mut SplitMix64, n: usize, vocab: usize) -> Vec<i64> {
    (0..n).map(|_| (rng.next_u64() % vocab as u64) as i64).collect()
}

/// A mix of `count` requests from `seed`: prefills of 1 segment, of a partial last segment and of 64 segments, and
/// generations whose prompts and outputs cross segment closings, joining at random steps.
pub fn mix(seed: u64, count: usize, segment: usize, vocab: usize, long_segments: usize) -> Vec<Joining> {
    let mut rng = SplitMix64::new(seed);
    let mut below = |n: u64| (rng.next_u64() % n) as usize;
    let mut out = Vec::new();
    for _ in 0..count {
        let at_step = below(24);
        let kind = below(5);
        let tokens = match kind {
            0 => 1 + below(segment as u64),                                // one segment
            1 => segment * (1 + below(3)) + 1 + below(segment as u64 - 1), // partial last
            2 => segment * long_segments,                                  // many segments
            _ => 1 + below(3 * segment as u64),                            // a prompt
        };
        let seed = below(1 << 30) as u64;
        let mut r = SplitMix64::new(seed);
        let ids = ids(&mut r, tokens, vocab);
        let request = if kind < 3 {
            let logits = [LogitsMode::None, LogitsMode::Last, LogitsMode::All][below(3)];
            Request::Prefill { ids, logits }
        } else {
            // 0 new tokens reads the prompt only; the state keeps the last token or not
            let mut g = Generate::greedy(ids, below(segment as u64 + 4));
            g.keep_last_token = below(2) == 1;
            // tokens without their logits: a greedy one is chosen where the logits are (on a GPU, on the device)
            g.token_logits = below(2) == 1;
            if kind == 4 {
                g.temperature = 0.8;
                g.top_p = 0.9;
                g.seed = seed;
                g.stop = vec![below(vocab as u64) as u32];
            }
            Request::Generate(g)
        };
        out.push(Joining { at_step, request });
    }
    out
}

/// Runs the mix on one request set (each joining before its step), steps to the end, and gathers each request's
/// outcome in the order of `mix`.
pub fn run_packed(engine: &Engine, mix: &[Joining]) -> (Vec<Outcome>, dbrmt_runtime::requests::Occupancy) {
    run_packed_keeping(engine, mix, |_| true)
}

/// [`run_packed`] with the set dropping states (`keep_states(false)`) and only the requests `keep` picks (by their
/// index in `mix`) keeping theirs (`keep_state`): the others' outcomes have no state.
#[allow(dead_code)] // (used by the CPU tests only)
pub fn run_packed_keeping(
    engine: &Engine,
    mix: &[Joining],
    keep: impl Fn(usize) -> bool,
) -> (Vec<Outcome>, dbrmt_runtime::requests::Occupancy) {
    run_packed_with(engine, mix, keep, true)
}

/// [`run_packed_keeping`], greedy ids of tokens without logits chosen on the device or not
/// (`Requests::device_argmax`; no change on the CPU model).
pub fn run_packed_with(
    engine: &Engine,
    mix: &[Joining],
    keep: impl Fn(usize) -> bool,
    device_argmax: bool,
) -> (Vec<Outcome>, dbrmt_runtime::requests::Occupancy) {
    let limits = Limits {
        max_requests: mix.len().max(1),
        device_bytes: None,
    };
    let mut set = engine.requests(limits).expect("request set");
    set.device_argmax(device_argmax);
    set.keep_states(false);
    let mut ids: Vec<Option<RequestId>> = vec![None; mix.len()];
    let mut outcomes: BTreeMap<RequestId, Outcome> = BTreeMap::new();
    let mut step = 0;
    loop {
        for (i, j) in mix.iter().enumerate() {
            if j.at_step == step {
                let id = set.add(j.request.clone()).expect("admitted");
                set.keep_state(id, keep(i)).expect("live");
                ids[i] = Some(id);
                outcomes.insert(id, empty());
            }
        }
        if set.is_idle() && mix.iter().all(|j| j.at_step <= step) {
            break;
        }
        for event in set.step().expect("step") {
            let o = outcomes.get_mut(&event.id()).expect("known id");
            match event {
                Event::Progress { .. } => {}
                Event::Logits { logits, .. } => o.logits.extend(bits(&logits)),
                Event::Token { token, logits, .. } => {
                    o.tokens.push(token);
                    o.token_logits.push(bits(&logits));
                }
                Event::Finished { reason, state, .. } => {
                    o.reason = Some(reason);
                    o.state = state.map(Into::into);
                }
            }
        }
        step += 1;
    }
    let occupancy = set.occupancy();
    let out = ids
        .iter()
        .map(|id| outcomes.remove(&id.expect("joined")).expect("outcome"))
        .collect();
    (out, occupancy)
}

fn empty() -> Outcome {
    Outcome {
        logits: Vec::new(),
        tokens: Vec::new(),
        token_logits: Vec::new(),
        reason: None,
        state: None,
    }
}

/// What a request gives alone: a prefill through `Engine::prefill` (diagonal), a generation through a session and
/// the sampling loop of `dbrmt generate`.
pub fn alone(engine: &Engine, request: &Request) -> Outcome {
    let mut o = empty();
    match request {
        Request::Prefill { ids, logits } => {
            let out = engine
                .prefill(ids, ScheduleKind::Diagonal, *logits, false)
                .expect("prefill");
            o.logits = bits(&out.logits);
            o.reason = Some(FinishReason::Prefilled);
            o.state = Some(
                SavedState {
                    state: out.state,
                    segments: out.segments,
                    open_ids: Vec::new(),
                }
                .into(),
            );
        }
        Request::Generate(g) => {
            let mut session = match &g.resume {
                Some(saved) => engine.resume(saved.clone()).expect("resume"),
                None => engine.session().expect("session"),
            };
            let prompt: Vec<u32> = g.prompt.iter().map(|&x| x as u32).collect();
            session.prefill(&prompt).expect("prefill");
            let mut sampler = Sampler::new(g.temperature, g.top_p, g.seed).expect("sampler");
            o.reason = Some(FinishReason::Length);
            let mut last = None;
            for i in 0..g.max_new_tokens {
                let token = sampler.sample(session.logits());
                if g.stop.contains(&token) {
                    o.reason = Some(FinishReason::Stop(token));
                    last = Some(token);
                    break;
                }
                o.tokens.push(token);
                o.token_logits.push(match g.token_logits {
                    true => bits(session.logits()),
                    false => Vec::new(),
                });
                if i + 1 < g.max_new_tokens {
                    session.push(token).expect("push");
                } else {
                    last = Some(token);
                }
            }
            // with `keep_last_token` the last token (emitted or stop) is run as `push` runs it
            if let (true, Some(token)) = (g.keep_last_token, last) {
                session.push(token).expect("push");
            }
            o.state = Some(session.saved().expect("saved").into());
        }
    }
    o
}
