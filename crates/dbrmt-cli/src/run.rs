//! `dbrmt run`: prefill token ids, print a summary, dump logits and state on request. Several input files run
//! together as requests of one packed schedule ([`run_many`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use dbrmt_formats::{npy, MemoryState, ModelConfig};
use dbrmt_model::LogitsMode;
use dbrmt_runtime::{Engine, Event, Limits, Request, ScheduleKind};

use crate::args::RunArgs;
use crate::engine::open_engine;

pub fn run(a: &RunArgs) -> anyhow::Result<()> {
    if a.input_ids.len() > 1 {
        return run_many(a);
    }
    let ids = npy::read_ids(&a.input_ids[0]).with_context(|| "reading --input-ids")?;
    let engine = open_engine(a.device, &a.model, &a.armt.load_options())?;
    let cfg = engine.config();
    let schedule: ScheduleKind = a.schedule.into();
    let logits: LogitsMode = a.logits.into();

    let t0 = Instant::now();
    let (out, device_ms) = engine
        .prefill_timed(&ids, schedule, logits, false)
        .with_context(|| format!("prefilling --input-ids {}", a.input_ids[0].display()))?;
    let secs = t0.elapsed().as_secs_f64();
    crate::generate::check_finite(&out.logits, out.tokens)?;

    print_model(&a.model, cfg);
    println!("input     {} tokens in {} segments", out.tokens, out.segments);
    println!(
        "run       {schedule:?} on {:?}: {secs:.3} s, {:.0} tokens/s",
        engine.device(),
        out.tokens as f64 / secs
    );
    if let Some(ms) = device_ms {
        println!("device    {ms:.2} ms between the first and last launch (CUDA events)");
    }
    print_top(&out.logits, out.logit_rows, cfg.llama.vocab_size);
    if let Some(path) = &a.dump_logits {
        dump_logits(path, &out.logits, out.logit_rows, cfg)?;
    }
    if let Some(path) = &a.dump_state {
        dump_state(path, &out.state, cfg)?;
    }
    Ok(())
}

/// Several inputs: one request each, all admitted at once into one packed schedule; per-request results in the order
/// of the inputs.
fn run_many(a: &RunArgs) -> anyhow::Result<()> {
    let stems = stems(&a.input_ids)?;
    let inputs: Vec<Vec<i64>> = a
        .input_ids
        .iter()
        .map(|p| npy::read_ids(p).with_context(|| format!("reading {}", p.display())))
        .collect::<anyhow::Result<_>>()?;
    for dir in [&a.dump_logits, &a.dump_state].into_iter().flatten() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let engine = open_engine(a.device, &a.model, &a.armt.load_options())?;
    let cfg = engine.config();
    let logits: LogitsMode = a.logits.into();
    let results = run_requests(&engine, &inputs, logits, a.dump_state.is_some())?;

    print_model(&a.model, cfg);
    let tokens: usize = inputs.iter().map(Vec::len).sum();
    println!(
        "run       {} requests, {tokens} tokens, packed on {:?}: {:.3} s, {:.0} tokens/s; {} steps, layer slot \
         occupancy {:.2}",
        inputs.len(),
        engine.device(),
        results.secs,
        tokens as f64 / results.secs,
        results.steps,
        results.occupancy
    );
    let v = cfg.llama.vocab_size;
    for (i, (stem, r)) in stems.iter().zip(&results.requests).enumerate() {
        println!(
            "[{i}] {stem}: {} tokens in {} segments",
            inputs[i].len(),
            cfg.segments_for(inputs[i].len())
        );
        let rows = r.logits.len() / v;
        crate::generate::check_finite(&r.logits, inputs[i].len()).with_context(|| stem.clone())?;
        print_top(&r.logits, rows, v);
        if let Some(dir) = &a.dump_logits {
            dump_logits(&dir.join(format!("{stem}.npy")), &r.logits, rows, cfg)?;
        }
        if let Some(dir) = &a.dump_state {
            dump_state(&dir.join(format!("{stem}.safetensors")), &r.state, cfg)?;
        }
    }
    Ok(())
}

/// One request's results.
struct Prefilled {
    logits: Vec<f32>,
    state: MemoryState,
}

struct Results {
    requests: Vec<Prefilled>,
    secs: f64,
    steps: usize,
    occupancy: f64,
}

/// Runs every input as a prefill request of one set, to the end; the final states are copied out when `states`.
fn run_requests(engine: &Engine, inputs: &[Vec<i64>], logits: LogitsMode, states: bool) -> anyhow::Result<Results> {
    let limits = Limits {
        max_requests: inputs.len(),
        device_bytes: None,
    };
    let mut set = engine.requests(limits)?;
    set.keep_states(states);
    let t0 = Instant::now();
    let mut ids = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let id = set
            .add(Request::Prefill {
                ids: input.clone(),
                logits,
            })
            .with_context(|| format!("input {i}"))?;
        ids.push(id);
    }
    let mut requests: Vec<Prefilled> = (0..inputs.len())
        .map(|_| Prefilled {
            logits: Vec::new(),
            state: MemoryState::default(),
        })
        .collect();
    set.run_to_end(|e| {
        let Some(i) = ids.iter().position(|&id| id == e.id()) else {
            return;
        };
        match e {
            Event::Logits { logits, .. } => requests[i].logits.extend(logits),
            Event::Finished { state: Some(s), .. } => requests[i].state = s.state,
            Event::Finished { state: None, .. } | Event::Progress { .. } | Event::Token { .. } => {}
        }
    })?;
    // the device done too (nothing waits for it when no logits or states are copied out)
    set.synchronize()?;
    let occupancy = set.occupancy();
    Ok(Results {
        requests,
        secs: t0.elapsed().as_secs_f64(),
        steps: occupancy.steps,
        occupancy: occupancy.slot_occupancy(),
    })
}

/// The file stems of the inputs, which name their dumps: they must differ.
fn stems(paths: &[PathBuf]) -> anyhow::Result<Vec<String>> {
    let stems: Vec<String> = paths
        .iter()
        .map(|p| {
            p.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .with_context(|| format!("{} has no file name", p.display()))
        })
        .collect::<anyhow::Result<_>>()?;
    for (i, s) in stems.iter().enumerate() {
        if stems[..i].contains(s) {
            bail!("two inputs have the file stem `{s}`: their dumps would overwrite each other");
        }
    }
    Ok(stems)
}

fn print_model(path: &Path, cfg: &ModelConfig) {
    println!(
        "model     {} ({} layers, hidden {}, vocab {}, T={}, M={}, d_mem={})",
        path.display(),
        cfg.llama.num_layers,
        cfg.llama.hidden_size,
        cfg.llama.vocab_size,
        cfg.armt.segment_size,
        cfg.armt.num_mem_tokens,
        cfg.armt.d_mem
    );
}

/// The top-5 token ids after the last logit row.
fn print_top(logits: &[f32], rows: usize, v: usize) {
    if rows == 0 {
        return;
    }
    let last = &logits[(rows - 1) * v..];
    let mut top: Vec<(usize, f32)> = last.iter().copied().enumerate().collect();
    top.sort_by(|x, y| y.1.total_cmp(&x.1));
    let shown: Vec<String> = top.iter().take(5).map(|(i, l)| format!("{i} ({l:.3})")).collect();
    println!("next      top-5 token ids after the last token: {}", shown.join(", "));
}

fn dump_logits(path: &Path, logits: &[f32], rows: usize, cfg: &ModelConfig) -> anyhow::Result<()> {
    npy::write_f32(path, &[rows, cfg.llama.vocab_size], logits).with_context(|| "writing --dump-logits")?;
    println!("logits    [{rows}, {}] → {}", cfg.llama.vocab_size, path.display());
    Ok(())
}

fn dump_state(path: &Path, state: &MemoryState, cfg: &ModelConfig) -> anyhow::Result<()> {
    state.save_safetensors(path).with_context(|| "writing --dump-state")?;
    println!(
        "state     {} layers of A [{}, {}], z [{}] → {}",
        cfg.llama.num_layers,
        cfg.d_key(),
        cfg.llama.hidden_size,
        cfg.d_key(),
        path.display()
    );
    Ok(())
}
