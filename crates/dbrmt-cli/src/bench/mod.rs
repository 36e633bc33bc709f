//! `dbrmt bench`: the benchmark harness on a GPU host (no cargo needed). Every measurement is one JSON line
//! (schema in `benches/README.md`) appended to `--out`, with a progress line on stderr; `cargo xtask bench-report`
//! turns the lines of one run — ours and the PyTorch baselines' (`benches/python/`) — into `docs/BENCHMARKS.md`.
//!
//! * `matrix`: the end-to-end rows of `benches/matrix.toml` (prefill and decode) on random weights;
//! * `kernels`: every kernel beside its yardstick in the same run (cuBLAS for the products, the copy bandwidth);
//! * `profile`: the share of a full diagonal step each launch takes;
//! * `requests`: many requests in one packed schedule — prefill throughput packed against one after another, and
//!   decode tokens/s summed over concurrent requests;
//! * `streams`: independent prefills on their own streams at once, against one after another (the GPU's idle share);
//! * `write-checkpoint` / `load`: a random bf16 checkpoint written to disk, then loaded onto the GPU in a fresh
//!   process (load time, host anonymous memory, logits bitwise against the in-memory upload).

mod e2e;
mod load;
mod matrix;
mod profile;
mod requests;
mod streams;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};

use matrix::Matrix;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchCommand,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The end-to-end rows of the matrix (methods dbrmt-diagonal, dbrmt-sequential, and the decode rows).
    Matrix {
        /// The matrix file.
        #[arg(long, default_value = "benches/matrix.toml")]
        matrix: PathBuf,
        /// Append the JSON lines here.
        #[arg(long)]
        out: PathBuf,
        /// Only the rows whose id contains this text.
        #[arg(long)]
        filter: Option<String>,
        /// Seed of the random weights and ids.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Write a random bf16 checkpoint (config.json + model.safetensors) of a matrix model's shape.
    WriteCheckpoint {
        #[arg(long, default_value = "benches/matrix.toml")]
        matrix: PathBuf,
        /// A model of the matrix, e.g. llama-3.2-1b.
        #[arg(long)]
        model: String,
        #[arg(long, default_value_t = 1024)]
        segment: usize,
        /// The directory to write.
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Every kernel at the models' shapes beside its same-run yardstick (cuBLAS, the copy bandwidth).
    Kernels {
        #[arg(long)]
        out: PathBuf,
    },
    /// Where the time of a full diagonal step goes, launch by launch (CUDA events between launches).
    Profile {
        #[arg(long, default_value = "benches/matrix.toml")]
        matrix: PathBuf,
        #[arg(long)]
        model: String,
        #[arg(long)]
        segment: usize,
        /// Tokens of the profiled prefill (enough segments for full steps: at least layers × segment).
        #[arg(long)]
        tokens: usize,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Many requests in one packed schedule on random weights of a matrix shape: `--requests N` prefills of `--tokens
    /// K` packed and one after another, or with `--decode D`, `N` concurrent generations of `D` tokens after
    /// prompts of `K` (tokens/s summed). `--requests 1,4,16,64` runs each count.
    Requests {
        #[arg(long, default_value = "benches/matrix.toml")]
        matrix: PathBuf,
        #[arg(long, default_value = "llama-3.2-1b")]
        model: String,
        #[arg(long, default_value_t = 1024)]
        segment: usize,
        /// Concurrent requests (a comma list runs each).
        #[arg(long, value_delimiter = ',', default_value = "16")]
        requests: Vec<usize>,
        /// Tokens of each request (its prompt when decoding).
        #[arg(long)]
        tokens: usize,
        /// Tokens each request generates (0: prefill throughput).
        #[arg(long, default_value_t = 0)]
        decode: usize,
        /// Timed runs per measurement (the median is reported), after one warm-up.
        #[arg(long, default_value_t = 1)]
        iters: usize,
        /// Skip the one-after-another prefill.
        #[arg(long)]
        no_serial: bool,
        /// Copy every finished request's state to the host, as a caller that keeps them (the default drops them).
        #[arg(long)]
        keep_states: bool,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Independent diagonal prefills of `--tokens` on `--streams` streams at once (an engine and a host thread each),
    /// against the same prefills one after another: how much of a step leaves the GPU idle.
    Streams {
        #[arg(long, default_value = "benches/matrix.toml")]
        matrix: PathBuf,
        #[arg(long, default_value = "llama-160m")]
        model: String,
        #[arg(long, default_value_t = 512)]
        segment: usize,
        #[arg(long)]
        tokens: usize,
        #[arg(long, default_value_t = 2)]
        streams: usize,
        /// Timed rounds (the median is reported), after one warm-up.
        #[arg(long, default_value_t = 3)]
        iters: usize,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Load a checkpoint written by write-checkpoint onto GPU 0 and time it (run in a fresh process).
    Load {
        #[arg(long)]
        dir: PathBuf,
        /// The seed it was written with (for the bitwise check against the in-memory upload).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn bench(a: &BenchArgs) -> anyhow::Result<()> {
    match &a.what {
        BenchCommand::Matrix {
            matrix,
            out,
            filter,
            seed,
        } => {
            let m = Matrix::read(matrix)?;
            let mut out = Out::append(out)?;
            let keep = |id: &str| filter.as_deref().is_none_or(|f| id.contains(f));
            let mut cache = e2e::EngineCache::default();
            for row in m.row.iter().filter(|r| keep(&r.id)) {
                e2e::prefill_row(&m, row, &mut cache, &mut out, *seed)?;
            }
            for row in m.decode.iter().filter(|r| keep(&r.id)) {
                e2e::decode_row(&m, row, &mut cache, &mut out, *seed)?;
            }
            Ok(())
        }
        BenchCommand::WriteCheckpoint {
            matrix,
            model,
            segment,
            dir,
            seed,
        } => load::write_checkpoint(&Matrix::read(matrix)?, model, *segment, dir, *seed),
        BenchCommand::Requests {
            matrix,
            model,
            segment,
            requests,
            tokens,
            decode,
            iters,
            no_serial,
            keep_states,
            out,
            seed,
        } => {
            let plan = requests::Plan {
                model: model.clone(),
                segment: *segment,
                requests: requests.clone(),
                tokens: *tokens,
                decode: *decode,
                iters: *iters,
                serial: !no_serial,
                keep_states: *keep_states,
                seed: *seed,
            };
            requests::requests(&Matrix::read(matrix)?, &plan, &mut Out::append(out)?)
        }
        BenchCommand::Streams {
            matrix,
            model,
            segment,
            tokens,
            streams,
            iters,
            out,
            seed,
        } => {
            let plan = streams::Plan {
                model: model.clone(),
                segment: *segment,
                tokens: *tokens,
                streams: *streams,
                iters: *iters,
                seed: *seed,
            };
            streams::streams(&Matrix::read(matrix)?, &plan, &mut Out::append(out)?)
        }
        BenchCommand::Load { dir, seed, out } => load::load(dir, *seed, &mut Out::append(out)?),
        BenchCommand::Kernels { out } => kernels(&mut Out::append(out)?),
        BenchCommand::Profile {
            matrix,
            model,
            segment,
            tokens,
            out,
            seed,
        } => profile::profile(
            &Matrix::read(matrix)?,
            model,
            *segment,
            *tokens,
            &mut Out::append(out)?,
            *seed,
        ),
    }
}

/// `dbrmt bench kernels`: every kernel benchmark of `dbrmt_kernels::bench`, one JSON line each.
fn kernels(out: &mut Out) -> anyhow::Result<()> {
    let gpu = dbrmt_kernels::Gpu::new(0).context("opening GPU 0")?;
    let device = device_name();
    for m in dbrmt_kernels::bench::all(&gpu)? {
        eprintln!(
            "bench: {:<10} {:<22} {:<16} {:>9.4} ms  {:>7.1} TFLOP/s  {:>7.0} GB/s",
            m.op,
            m.shape,
            m.imp,
            m.ms,
            m.tflops(),
            m.gbps()
        );
        out.line(serde_json::json!({
            "kind": "kernel", "op": m.op, "shape": m.shape, "method": m.imp, "ms": m.ms,
            "tflops": m.tflops(), "gbps": m.gbps(), "device": device,
        }))?;
    }
    Ok(())
}

/// The JSON-lines output, appended and flushed line by line (a run cut short keeps what it measured).
pub struct Out {
    file: File,
    path: PathBuf,
}

impl Out {
    fn append(path: &Path) -> anyhow::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    fn line(&mut self, v: serde_json::Value) -> anyhow::Result<()> {
        writeln!(self.file, "{v}")
            .and_then(|()| self.file.flush())
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// `n` random ids below `vocab` (the matrix rows' and the request sets' prompts).
fn random_ids(n: usize, vocab: usize, seed: u64) -> Vec<i64> {
    let mut r = dbrmt_formats::rng::SplitMix64::new(seed);
    (0..n).map(|_| (r.next_u64() % vocab as u64) as i64).collect()
}

/// `n` ids spread over `vocab` by a fixed stride (the step profile's and `bench streams`' prefills).
fn spread_ids(n: usize, vocab: usize) -> Vec<i64> {
    (0..n as i64).map(|i| (i * 7919 + 13) % vocab as i64).collect()
}

/// The median of `xs` (NaN when empty).
fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

/// GPU 0's name.
fn device_name() -> String {
    cudarc::driver::CudaContext::new(0)
        .and_then(|c| c.name())
        .unwrap_or_else(|_| "unknown GPU".into())
}

/// Bytes in use on GPU 0 (its total minus its free memory).
fn gpu_used_bytes() -> anyhow::Result<usize> {
    let ctx = cudarc::driver::CudaContext::new(0).context("opening GPU 0")?;
    ctx.bind_to_thread()?;
    let (free, total) = cudarc::driver::result::mem_get_info()?;
    Ok(total - free)
}

#[cfg(test)]
mod tests {
    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(super::median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(super::median(&[]).is_nan());
    }
}
