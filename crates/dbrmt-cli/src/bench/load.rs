//! Load benchmarks: write a random bf16 checkpoint of a published shape (`write-checkpoint`), then time loading it
//! onto the GPU in a fresh process (`load`): from the start of the load to the first launch, with the host's
//! anonymous memory (`RssAnon`) sampled throughout — the weights go from the memory-mapped file straight to device
//! buffers, so it must stay small whatever the model's size — and the logits compared bit for bit with the same
//! weights uploaded from memory.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use dbrmt_formats::checkpoint::writer::{write_safetensors, TensorSpec};
use dbrmt_formats::random::RandomModel;
use dbrmt_formats::{LoadOptions, NameLayout, TensorRead};
use dbrmt_model::LogitsMode;
use dbrmt_runtime::{Device, Engine, ScheduleKind};
use half::bf16;
use safetensors::Dtype;
use serde_json::json;

use super::matrix::Matrix;
use super::{device_name, Out};

/// Writes `dir/config.json` and `dir/model.safetensors`: random weights (seed `seed`) of `model`'s shape with
/// segments of `segment`, every tensor bf16 under its Hugging Face name (ARMT tensors included).
pub fn write_checkpoint(m: &Matrix, model: &str, segment: usize, dir: &Path, seed: u64) -> anyhow::Result<()> {
    let cfg = m.config(model, segment)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let random = RandomModel::new(cfg.clone(), seed).rounded_to_bf16();
    let ids: Vec<_> = random.tensor_ids().collect();
    let specs: Vec<TensorSpec> = ids
        .iter()
        .map(|&id| TensorSpec {
            name: NameLayout::Hf.name(id),
            dtype: Dtype::BF16,
            shape: dbrmt_formats::load::expected_shape(id, &cfg),
        })
        .collect();
    let t0 = Instant::now();
    let path = dir.join("model.safetensors");
    let mut staging: Vec<u8> = Vec::new();
    write_safetensors(&path, &specs, &[("format", "pt")], |i, out: &mut dyn Write| {
        random
            .read_pieces(ids[i], 1 << 24, |_, values| {
                staging.clear();
                staging.extend(values.iter().flat_map(|&x| bf16::from_f32(x).to_le_bytes()));
                out.write_all(&staging).map_err(|e| dbrmt_formats::FormatError::Io {
                    path: path.clone(),
                    source: e,
                })
            })
            .map_err(std::io::Error::other)
    })?;
    std::fs::write(dir.join("config.json"), cfg.to_json().to_string())?;
    let bytes: usize = specs.iter().map(TensorSpec::bytes).sum();
    eprintln!(
        "bench: wrote {} ({:.2} GB of bf16) in {:.1} s",
        dir.display(),
        bytes as f64 / 1e9,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Loads `dir` onto GPU 0 (run this in a fresh process, after `write_checkpoint`, so the page cache is warm but the
/// process has allocated nothing), times it to the first launch, samples `RssAnon`, and checks the logits against
/// the same random weights uploaded from memory (`seed` as written).
pub fn load(dir: &Path, seed: u64, out: &mut Out) -> anyhow::Result<()> {
    let sampler = RssSampler::start();
    let t0 = Instant::now();
    let engine = Engine::load(dir, &LoadOptions::default(), Device::Cuda(0))
        .with_context(|| format!("loading {}", dir.display()))?;
    let loaded_s = t0.elapsed().as_secs_f64();
    // the first launch: one segment of a tiny prefill
    let ids: Vec<i64> = (0..16)
        .map(|i| (i * 7919) % engine.config().llama.vocab_size as i64)
        .collect();
    let (streamed, _) = engine.prefill_timed(&ids, ScheduleKind::Diagonal, LogitsMode::All, false)?;
    let first_launch_s = t0.elapsed().as_secs_f64();
    let rss_anon_peak = sampler.stop();

    // the same weights from memory (rounded to bf16 by the upload exactly as the checkpoint stored them)
    let cfg = engine.config().clone();
    drop(engine);
    let reference = Engine::from_tensors(&RandomModel::new(cfg.clone(), seed).rounded_to_bf16(), Device::Cuda(0))?;
    let (want, _) = reference.prefill_timed(&ids, ScheduleKind::Diagonal, LogitsMode::All, false)?;
    let same = streamed.logits.len() == want.logits.len()
        && streamed
            .logits
            .iter()
            .zip(&want.logits)
            .all(|(a, b)| a.to_bits() == b.to_bits());
    let bytes = std::fs::metadata(dir.join("model.safetensors"))?.len();
    eprintln!(
        "bench: loaded {} ({:.2} GB) in {loaded_s:.2} s, first launch at {first_launch_s:.2} s, RssAnon peak {:.0} MB, \
         logits {}",
        dir.display(),
        bytes as f64 / 1e9,
        rss_anon_peak as f64 / 1e6,
        if same { "bitwise equal to the in-memory upload" } else { "DIFFER from the in-memory upload" }
    );
    out.line(json!({
        "kind": "load", "dir": dir.display().to_string(), "bytes": bytes, "layers": cfg.llama.num_layers,
        "hidden": cfg.llama.hidden_size, "load_s": loaded_s, "first_launch_s": first_launch_s,
        "rss_anon_peak_bytes": rss_anon_peak, "logits_bitwise_equal": same, "device": device_name(),
    }))?;
    anyhow::ensure!(same, "logits of the streamed load differ from the in-memory upload");
    Ok(())
}

/// Samples this process's `RssAnon` every 2 ms on a thread, keeping the largest value.
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_anon_bytes()));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_anon_bytes(), Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        });
        Self {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.fetch_max(rss_anon_bytes(), Ordering::Relaxed);
        self.peak.load(Ordering::Relaxed)
    }
}

/// `RssAnon` of /proc/self/status in bytes (0 where unavailable).
fn rss_anon_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("RssAnon:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
