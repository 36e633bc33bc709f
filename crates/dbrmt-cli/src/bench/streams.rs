//! `bench streams`: independent prefills on their own CUDA streams at once (one engine and one host thread each), against
//! the same prefills one after another. It measures how much of a diagonal step's time is latency that a second stream
//! could fill: where the concurrent prefills take much less than N times one, a step's launches leave the GPU idle
//! between them (the case for running a step's cells as two groups on two streams).

use std::sync::Barrier;
use std::time::Instant;

use anyhow::Context;
use dbrmt_formats::random::RandomModel;
use dbrmt_model::LogitsMode;
use dbrmt_runtime::{Device, Engine, ScheduleKind};
use serde_json::json;

use super::matrix::Matrix;
use super::{device_name, median, spread_ids, Out};

/// What `bench streams` runs.
pub struct Plan {
    pub model: String,
    pub segment: usize,
    pub tokens: usize,
    pub streams: usize,
    pub iters: usize,
    pub seed: u64,
}

/// `plan.streams` engines (random weights, one stream each) prefill `plan.tokens` ids each, diagonally: first one after
/// another, then all at once from host threads released together (wall clock from the release to the last finish).
pub fn streams(m: &Matrix, plan: &Plan, out: &mut Out) -> anyhow::Result<()> {
    anyhow::ensure!(plan.streams >= 1, "--streams must be at least 1");
    anyhow::ensure!(plan.iters >= 1, "--iters must be at least 1");
    let cfg = m.config(&plan.model, plan.segment)?;
    let engines: Vec<Engine> = (0..plan.streams)
        .map(|_| {
            Engine::from_tensors(&RandomModel::new(cfg.clone(), plan.seed), Device::Cuda(0))
                .with_context(|| format!("uploading random {} weights", plan.model))
        })
        .collect::<anyhow::Result<_>>()?;
    let ids = spread_ids(plan.tokens, cfg.llama.vocab_size);
    let prefill = |e: &Engine| -> anyhow::Result<f64> {
        let (_, ms) = e.prefill_timed(&ids, ScheduleKind::Diagonal, LogitsMode::None, false)?;
        Ok(f64::from(ms.unwrap_or(f32::NAN)))
    };
    for e in &engines {
        prefill(e)?; // warm-up: workspaces, modules
    }
    let (mut serial, mut together, mut device_each) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..plan.iters {
        let t0 = Instant::now();
        for e in &engines {
            prefill(e)?;
        }
        serial.push(t0.elapsed().as_secs_f64() * 1e3);
        let barrier = Barrier::new(plan.streams + 1);
        let (ms, each) = std::thread::scope(|s| -> anyhow::Result<(f64, Vec<f64>)> {
            let handles: Vec<_> = engines
                .iter()
                .map(|e| {
                    let (barrier, prefill) = (&barrier, &prefill);
                    s.spawn(move || {
                        barrier.wait();
                        prefill(e)
                    })
                })
                .collect();
            barrier.wait();
            let t0 = Instant::now();
            let mut each = Vec::new();
            for h in handles {
                each.push(h.join().map_err(|_| anyhow::anyhow!("a prefill thread panicked"))??);
            }
            Ok((t0.elapsed().as_secs_f64() * 1e3, each))
        })?;
        together.push(ms);
        device_each.extend(each);
    }
    let (serial_ms, together_ms) = (median(&serial), median(&together));
    eprintln!(
        "bench: streams {} T = {}, {} tokens: {} prefills one after another {serial_ms:.1} ms, at once on {} streams \
         {together_ms:.1} ms ({:.2} of the serial time; each prefill's own device time at once: median {:.1} ms)",
        plan.model,
        plan.segment,
        plan.tokens,
        plan.streams,
        plan.streams,
        together_ms / serial_ms,
        median(&device_each)
    );
    out.line(json!({
        "kind": "streams", "model": plan.model, "segment": plan.segment, "tokens": plan.tokens,
        "streams": plan.streams, "serial_ms": serial_ms, "together_ms": together_ms,
        "ratio": together_ms / serial_ms, "serial_runs": serial, "together_runs": together,
        "device_ms_each_together": device_each, "device": device_name(),
    }))
}
