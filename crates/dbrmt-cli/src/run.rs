//! `dbrmt run`: prefill token ids, print a summary, dump logits and state on request. Several input files run
//! together as requests of one packed schedule ([`run_many`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use dbrmt_formats::{npy, MemoryState, ModelConfig, SavedState};
use dbrmt_model::LogitsMode;
use dbrmt_runtime::{Engine, Event, Limits, ModelInfo, Request, ScheduleKind};

use crate::args::RunArgs;
use crate::engine::open_engine;
use crate::generate::segments_per_update;
use crate::outputs;
use crate::progress::{Basis, Progress};

pub fn run(a: &RunArgs) -> anyhow::Result<()> {
    if a.input_ids.len() > 1 {
        return run_many(a);
    }
    let ids = npy::read_ids(&a.input_ids[0]).with_context(|| "reading --input-ids")?;
    if let Some(path) = &a.dump_logits {
        outputs::check_file("--dump-logits", path)?;
    }
    if let Some(path) = &a.dump_state {
        outputs::check_file("--dump-state", path)?;
    }
    let engine = open_engine(a.device, &a.model, &a.armt.load_options())?;
    let cfg = engine.config();
    let schedule: ScheduleKind = a.schedule.into();
    let logits: LogitsMode = a.logits.into();

    // on the CPU model the prefill goes in pieces of a few segments, so that it can show its progress (the same
    // bits as one piece); a GPU takes it whole
    let on_gpu = engine.gpu_executor().is_some();
    let per_piece = if on_gpu { usize::MAX } else { segments_per_update(false) };
    let t0 = Instant::now();
    let progress = Progress::new("prefill", ids.len() as u64, Basis::Tokens);
    let (out, device_ms) = engine
        .prefill_with_progress(&ids, schedule, logits, per_piece, |done| {
            progress.set(done as u64, done as u64)
        })
        .with_context(|| format!("prefilling --input-ids {}", a.input_ids[0].display()))?;
    progress.finish();
    let secs = t0.elapsed().as_secs_f64();
    crate::generate::check_finite(&out.logits, out.tokens)?;

    print_model(&a.model, cfg);
    println!(
        "input     {} tokens in {}",
        out.tokens,
        crate::generate::plural(out.segments, "segment")
    );
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
        let saved = SavedState {
            state: out.state,
            segments: out.segments,
            open_ids: Vec::new(),
        };
        dump_state(path, &saved, engine.info(), cfg)?;
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
    if let Some(dir) = &a.dump_logits {
        outputs::check_dir("--dump-logits", dir)?;
    }
    if let Some(dir) = &a.dump_state {
        outputs::check_dir("--dump-state", dir)?;
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
            dump_state(&dir.join(format!("{stem}.safetensors")), &r.state, engine.info(), cfg)?;
        }
    }
    Ok(())
}

/// One request's results.
struct Prefilled {
    logits: Vec<f32>,
    state: SavedState,
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
    let total: usize = inputs.iter().map(Vec::len).sum();
    let progress = Progress::new("prefill", total as u64, Basis::Tokens);
    let mut done = vec![0usize; inputs.len()];
    let mut requests: Vec<Prefilled> = (0..inputs.len())
        .map(|_| Prefilled {
            logits: Vec::new(),
            state: SavedState::fresh(MemoryState::default()),
        })
        .collect();
    set.run_to_end(|e| {
        let Some(i) = ids.iter().position(|&id| id == e.id()) else {
            return;
        };
        match e {
            Event::Logits { logits, .. } => requests[i].logits.extend(logits),
            Event::Finished { state: Some(s), .. } => requests[i].state = s,
            Event::Progress { done: d, .. } => {
                done[i] = d;
                let all = done.iter().sum::<usize>() as u64;
                progress.set(all, all);
            }
            Event::Finished { state: None, .. } | Event::Token { .. } => {}
        }
    })?;
    // the device done too (nothing waits for it when no logits or states are copied out)
    set.synchronize()?;
    progress.finish();
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

/// The state after the run, in the format `generate --save-state` writes (the model's identity, the segments
/// consumed, a checksum), so that `generate --load-state` continues from it. A run closes every segment, the last
/// one too, so there are no open ids: what follows starts a fresh segment.
fn dump_state(path: &Path, saved: &SavedState, info: &ModelInfo, cfg: &ModelConfig) -> anyhow::Result<()> {
    saved
        .save_with_parts(path, &info.identity, &info.parts())
        .with_context(|| "writing --dump-state")?;
    println!(
        "state     {} layers of A [{}, {}], z [{}] after {} → {}",
        cfg.llama.num_layers,
        cfg.d_key(),
        cfg.llama.hidden_size,
        cfg.d_key(),
        crate::generate::plural(saved.segments, "segment"),
        path.display()
    );
    Ok(())
}
