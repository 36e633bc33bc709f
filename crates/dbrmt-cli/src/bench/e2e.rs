//! The end-to-end rows of the matrix on our engine: a prefill of random ids through a random-weight model of a
//! published shape (weights streamed to the GPU, never held on the host), timed with CUDA events between the first
//! and last launch, after warm-up, median of the runs; and decode rows (a prompt, then one token at a time).

use std::time::Instant;

use anyhow::Context;
use dbrmt_formats::random::RandomModel;
use dbrmt_model::LogitsMode;
use dbrmt_runtime::{Device, Engine, ScheduleKind};
use serde_json::json;

use super::matrix::{DecodeRow, Matrix, Row};
use super::{device_name, gpu_used_bytes, median, random_ids, Out};

/// The engine of the last row, kept while the next row needs the same model and segment size.
#[derive(Default)]
pub struct EngineCache {
    key: Option<(String, usize)>,
    engine: Option<Engine>,
    /// GPU bytes in use before the engine was made (the engine's footprint is measured against it).
    base_bytes: usize,
}

impl EngineCache {
    pub fn get(&mut self, m: &Matrix, model: &str, segment: usize, seed: u64) -> anyhow::Result<&Engine> {
        let key = (model.to_string(), segment);
        if self.key.as_ref() != Some(&key) {
            self.engine = None; // free the previous model first
            self.base_bytes = gpu_used_bytes()?;
            let cfg = m.config(model, segment)?;
            let t0 = Instant::now();
            let engine = Engine::from_tensors(&RandomModel::new(cfg, seed), Device::Cuda(0))
                .with_context(|| format!("uploading random {model} weights"))?;
            eprintln!(
                "bench: {model} (T = {segment}) on the GPU in {:.1} s",
                t0.elapsed().as_secs_f64()
            );
            self.engine = Some(engine);
            self.key = Some(key);
        }
        self.engine.as_ref().context("engine just made")
    }
}

/// The dbrmt methods of prefill `row`.
pub fn prefill_row(m: &Matrix, row: &Row, cache: &mut EngineCache, out: &mut Out, seed: u64) -> anyhow::Result<()> {
    let logits = match row.logits.as_str() {
        "none" => LogitsMode::None,
        "last" => LogitsMode::Last,
        other => anyhow::bail!("row {}: logits `{other}` (expected none or last)", row.id),
    };
    let warmup = row.warmup.unwrap_or(m.defaults.warmup);
    let iters = row.iters.unwrap_or(m.defaults.iters).max(1);
    for method in &row.methods {
        let schedule = match method.as_str() {
            "dbrmt-diagonal" => ScheduleKind::Diagonal,
            "dbrmt-sequential" => ScheduleKind::Sequential,
            "dbrmt-session" | "dbrmt-session-pieces8" => {
                session_prefill(m, row, cache, out, seed, method, warmup, iters)?;
                continue;
            }
            _ => continue,
        };
        let engine = cache.get(m, &row.model, row.segment, seed)?;
        let ids = random_ids(row.tokens, engine.config().llama.vocab_size, seed ^ 0x1d5);
        let mut runs = Vec::with_capacity(iters);
        for i in 0..warmup + iters {
            let (_, ms) = engine
                .prefill_timed(&ids, schedule, logits, false)
                .with_context(|| format!("row {} {method}", row.id))?;
            if i >= warmup {
                runs.push(f64::from(ms.unwrap_or(f32::NAN)));
            }
        }
        let ms = median(&runs);
        let peak = gpu_used_bytes()?.saturating_sub(cache.base_bytes);
        eprintln!(
            "bench: {:<22} {method:<17} {ms:>9.1} ms  ({:.0} tokens/s, {:.2} GiB)",
            row.id,
            row.tokens as f64 / ms * 1e3,
            gib(peak)
        );
        out.line(json!({
            "kind": "e2e", "row": row.id, "method": method, "ms": ms, "ms_runs": runs,
            "peak_gib": gib(peak), "tokens": row.tokens, "segment": row.segment, "model": row.model,
            "logits": row.logits, "warmup": warmup, "iters": iters, "device": device_name(),
            "state_dtype": "fp32",
        }))?;
    }
    Ok(())
}

/// A generation session's prefill of `row`'s ids (what `dbrmt generate` runs before it decodes), timed on the host
/// up to its last row's logits on the host: "dbrmt-session" as the CLI asks for it (progress every 8 segments: one
/// diagonal run on the GPU), "dbrmt-session-pieces8" as pieces of 8 segments, one `prefill` each (a diagonal run a
/// piece, as the GPU session ran `prefill_chunked` until session 22).
#[allow(clippy::too_many_arguments)]
fn session_prefill(
    m: &Matrix,
    row: &Row,
    cache: &mut EngineCache,
    out: &mut Out,
    seed: u64,
    method: &str,
    warmup: usize,
    iters: usize,
) -> anyhow::Result<()> {
    let engine = cache.get(m, &row.model, row.segment, seed)?;
    let ids: Vec<u32> = random_ids(row.tokens, engine.config().llama.vocab_size, seed ^ 0x1d5)
        .into_iter()
        .map(|x| x as u32)
        .collect();
    let mut runs = Vec::with_capacity(iters);
    for i in 0..warmup + iters {
        let mut session = engine.session()?;
        let t0 = Instant::now();
        let done = match method {
            "dbrmt-session" => session.prefill_chunked(&ids, 8, |_| {}),
            _ => ids.chunks(8 * row.segment).try_for_each(|piece| session.prefill(piece)),
        };
        done.with_context(|| format!("row {} {method}", row.id))?;
        if i >= warmup {
            runs.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    let ms = median(&runs);
    eprintln!(
        "bench: {:<22} {method:<17} {ms:>9.1} ms  ({:.0} tokens/s)",
        row.id,
        row.tokens as f64 / ms * 1e3
    );
    out.line(json!({
        "kind": "e2e", "row": row.id, "method": method, "ms": ms, "ms_runs": runs, "tokens": row.tokens,
        "segment": row.segment, "model": row.model, "logits": "last", "warmup": warmup, "iters": iters,
        "device": device_name(), "state_dtype": "fp32", "timer": "host",
    }))
}

/// The dbrmt method of decode `row`: prefill `prompt` tokens, then push `new_tokens` one at a time (each a forward
/// of one row per layer over the KV cache, its logits copied back), timed on the host around the pushes.
pub fn decode_row(
    m: &Matrix,
    row: &DecodeRow,
    cache: &mut EngineCache,
    out: &mut Out,
    seed: u64,
) -> anyhow::Result<()> {
    if !row.methods.iter().any(|x| x == "dbrmt") {
        return Ok(());
    }
    let base_bytes = cache.base_bytes;
    let engine = cache.get(m, &row.model, row.segment, seed)?;
    let vocab = engine.config().llama.vocab_size;
    let ids: Vec<u32> = random_ids(row.prompt + row.new_tokens, vocab, seed ^ 0xdec)
        .into_iter()
        .map(|x| x as u32)
        .collect();
    let mut session = engine.session()?;
    let t0 = Instant::now();
    session
        .prefill(&ids[..row.prompt])
        .with_context(|| format!("row {}", row.id))?;
    let prefill_ms = t0.elapsed().as_secs_f64() * 1e3;
    let t1 = Instant::now();
    for &id in &ids[row.prompt..] {
        session.push(id)?;
    }
    let decode_ms = t1.elapsed().as_secs_f64() * 1e3;
    let per_token = decode_ms / row.new_tokens.max(1) as f64;
    let peak = gpu_used_bytes()?.saturating_sub(base_bytes);
    eprintln!(
        "bench: {:<22} dbrmt             {per_token:>9.3} ms/token ({:.0} tokens/s), prefill {prefill_ms:.1} ms",
        row.id,
        1e3 / per_token
    );
    out.line(json!({
        "kind": "decode", "row": row.id, "method": "dbrmt", "ms": prefill_ms + decode_ms, "prefill_ms": prefill_ms,
        "ms_per_token": per_token, "tokens_per_s": 1e3 / per_token, "prompt": row.prompt,
        "new_tokens": row.new_tokens, "segment": row.segment, "model": row.model, "peak_gib": gib(peak),
        "device": device_name(), "attention": "armt-open-segment",
    }))?;
    // greedy generation after the same prompt: each id chosen on the device and handed to the next pass there, one
    // pass ahead of the host ("dbrmt-greedy"), and with a wait for each id before the next pass ("-wait")
    let mut runs: Vec<Vec<u32>> = Vec::new();
    for (method, ahead) in [("dbrmt-greedy", true), ("dbrmt-greedy-wait", false)] {
        let was = dbrmt_model::gpu::decode_ahead_enabled();
        dbrmt_model::gpu::set_decode_ahead(ahead);
        let mut session = engine.session()?;
        let t0 = Instant::now();
        session.prefill(&ids[..row.prompt])?;
        let prefill_ms = t0.elapsed().as_secs_f64() * 1e3;
        let mut got = Vec::with_capacity(row.new_tokens + 1);
        let t1 = Instant::now();
        // new_tokens + 1 ids: the first comes from the prompt's pass, each of the others from a pass of its own
        let passes = session.generate_greedy(row.new_tokens + 1, |id| -> anyhow::Result<bool> {
            got.push(id);
            Ok(true)
        });
        let decode_ms = t1.elapsed().as_secs_f64() * 1e3;
        dbrmt_model::gpu::set_decode_ahead(was);
        let passes = passes.with_context(|| format!("row {} {method}", row.id))?;
        let per_token = decode_ms / passes.max(1) as f64;
        let same = runs.first().is_none_or(|first| *first == got);
        runs.push(got);
        eprintln!(
            "bench: {:<22} {method:<17} {per_token:>9.3} ms/token ({:.0} tokens/s), prefill {prefill_ms:.1} ms{}",
            row.id,
            1e3 / per_token,
            if same { "" } else { ", ids differ from the first run" }
        );
        out.line(json!({
            "kind": "decode", "row": row.id, "method": method, "ms": prefill_ms + decode_ms,
            "prefill_ms": prefill_ms, "ms_per_token": per_token, "tokens_per_s": 1e3 / per_token,
            "prompt": row.prompt, "new_tokens": passes, "segment": row.segment, "model": row.model,
            "device": device_name(), "attention": "armt-open-segment", "same_ids": same,
        }))?;
    }
    Ok(())
}

fn gib(bytes: usize) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}
