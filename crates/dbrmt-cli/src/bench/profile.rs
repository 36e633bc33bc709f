//! The step profile: where the time of a full diagonal step goes (one grouped launch per op, its cells one per
//! layer), from CUDA events between the launches of a profiled prefill over random weights.

use anyhow::Context;
use dbrmt_formats::random::RandomModel;
use dbrmt_model::LogitsMode;
use dbrmt_runtime::{Device, Engine, ScheduleKind};
use serde_json::json;

use super::matrix::Matrix;
use super::{device_name, spread_ids, Out};

/// Profiles a prefill of `tokens` random ids of `model` with segments of `segment`: the mean time per step of each
/// launch over the steps with the most cells (all layers busy), printed as a table and written as one JSON line.
pub fn profile(m: &Matrix, model: &str, segment: usize, tokens: usize, out: &mut Out, seed: u64) -> anyhow::Result<()> {
    let cfg = m.config(model, segment)?;
    let engine = Engine::from_tensors(&RandomModel::new(cfg.clone(), seed), Device::Cuda(0))
        .with_context(|| format!("uploading random {model} weights"))?;
    let gpu = engine.gpu_executor().context("a CUDA engine")?;
    let ids = spread_ids(tokens, cfg.llama.vocab_size);
    // warm-up, then the profiled run
    engine.prefill_timed(&ids, ScheduleKind::Diagonal, LogitsMode::None, false)?;
    gpu.set_profiling(true);
    let (_, ms) = engine.prefill_timed(&ids, ScheduleKind::Diagonal, LogitsMode::None, false)?;
    gpu.set_profiling(false);
    let profile = gpu.take_profile().context("the profiled run left no profile")?;
    let cells = profile.widest();
    let parts = profile.summary(cells)?;
    let step_ms: f64 = parts.iter().map(|p| p.ms).sum();
    let (projections, attention, memory) = gpu.kernels();
    eprintln!(
        "bench: profile {model} T = {segment}, {tokens} tokens ({:.1} ms in all): {} steps of {cells} cells, {step_ms:.3} ms each \
         (projections {projections:?}, attention {attention:?}, memory {memory:?})",
        ms.unwrap_or(f32::NAN),
        profile.steps_of(cells)
    );
    for p in &parts {
        eprintln!("  {:<30} {:>8.3} ms  {:>5.1}%", p.label, p.ms, 100.0 * p.share);
    }
    // the whole run by step width: the full steps above, and the ramps' narrower steps (their share of the prefill)
    let widths = profile.widths()?;
    let all_ms: f64 = widths.iter().map(|w| w.total_ms).sum();
    eprintln!("  steps by width (cells: steps × mean ms = ms, share of the steps' time):");
    for w in &widths {
        eprintln!(
            "  {:>5}: {:>4} × {:>7.3} = {:>8.1}  {:>5.1}%",
            w.cells,
            w.steps,
            w.mean_ms,
            w.total_ms,
            100.0 * w.total_ms / all_ms.max(f64::MIN_POSITIVE)
        );
    }
    let widths_json: Vec<_> = widths
        .iter()
        .map(|w| json!({"cells": w.cells, "steps": w.steps, "mean_ms": w.mean_ms, "total_ms": w.total_ms}))
        .collect();
    let parts_json: Vec<_> = parts
        .iter()
        .map(|p| json!({"label": p.label, "ms": p.ms, "share": p.share}))
        .collect();
    out.line(json!({
        "kind": "profile", "model": model, "segment": segment, "tokens": tokens, "cells": cells,
        "steps": profile.steps_of(cells), "step_ms": step_ms, "prefill_ms": ms, "parts": parts_json, "widths": widths_json,
        "projections": format!("{projections:?}"), "attention": format!("{attention:?}"),
        "memory": format!("{memory:?}"), "device": device_name(),
    }))
}
