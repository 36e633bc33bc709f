//! Kernel benchmarks, beside the checks (`bench/<op>.rs` mirrors `check/<op>.rs`): each op at the shapes of the
//! models, timed with CUDA events after warm-up with the L2 cache flushed before every repetition, the median of
//! the repetitions; each beside its yardstick measured in the same run — cuBLAS for the products (as one GEMM of the
//! same total rows and as a strided-batched GEMM of the cells), the device's copy bandwidth for the memory-bound row
//! kernels. PyTorch's SDPA for attention runs from `benches/python/sdpa_attention.py` at the same shape names.
//!
//! Inputs are random (never zeros: they can run faster than real data), filled on the device from a random host
//! block. `dbrmt bench kernels` runs [`all`] and writes one JSON line per [`Measured`].

pub mod attention;
pub mod gemm;
pub mod memory;
pub mod rows;

use std::sync::Arc;

use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{CudaSlice, CudaStream, DeviceRepr, ValidAsZeroBits};
use half::bf16;

use crate::{Gpu, KernelError};
use dbrmt_formats::rng::SplitMix64;

/// One measurement: an implementation of an op at a shape, and its yardstick in the same run.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// The op (`gemm`, `attention`, `rms_norm`, …).
    pub op: &'static str,
    /// The shape, named as the Python baselines name it where they have one (`1b-16x1152`).
    pub shape: String,
    /// Which implementation (`gemm_sm90`, `attention_sm90`, `cublas`, …).
    pub imp: String,
    pub ms: f64,
    /// Useful work: FLOPs (products, attention) or bytes moved (row kernels).
    pub flops: f64,
    pub bytes: f64,
}

impl Measured {
    pub fn tflops(&self) -> f64 {
        self.flops / (self.ms * 1e-3) / 1e12
    }

    pub fn gbps(&self) -> f64 {
        self.bytes / (self.ms * 1e-3) / 1e9
    }
}

/// Times `f` on `stream`: `warmup` untimed runs, then `reps` runs each after an L2 flush, each between two events;
/// returns the median in ms.
pub fn time(
    stream: &Arc<CudaStream>,
    flush: &mut CudaSlice<u8>,
    warmup: usize,
    reps: usize,
    mut f: impl FnMut() -> Result<(), KernelError>,
) -> Result<f64, KernelError> {
    for _ in 0..warmup {
        f()?;
    }
    let mut runs = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        // overwrite more than the 60 MB L2 with something else, so each run reads its operands from HBM
        stream.memset_zeros(flush)?;
        let start = stream.record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
        f()?;
        let end = stream.record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
        runs.push(f64::from(start.elapsed_ms(&end)?));
    }
    runs.sort_by(f64::total_cmp);
    Ok(runs[runs.len() / 2])
}

/// The buffer [`time`] flushes the L2 with (256 MB: four times the H200's L2).
pub fn l2_flusher(stream: &Arc<CudaStream>) -> Result<CudaSlice<u8>, KernelError> {
    Ok(stream.alloc_zeros::<u8>(256 << 20)?)
}

/// A device buffer of `n` random values (bf16 of N(0, std²)-ish uniform values), filled by copying one random host
/// block of at most 16M values over and over (fast for the GBs of the largest weights).
pub fn random_bf16(stream: &Arc<CudaStream>, n: usize, std: f32, seed: u64) -> Result<CudaSlice<bf16>, KernelError> {
    random(stream, n, seed, |r| bf16::from_f32(r.signed_unit() * std * 1.732))
}

/// As [`random_bf16`], f32.
pub fn random_f32(stream: &Arc<CudaStream>, n: usize, std: f32, seed: u64) -> Result<CudaSlice<f32>, KernelError> {
    random(stream, n, seed, |r| r.signed_unit() * std * 1.732)
}

fn random<T: DeviceRepr + ValidAsZeroBits + Copy>(
    stream: &Arc<CudaStream>,
    n: usize,
    seed: u64,
    draw: impl Fn(&mut SplitMix64) -> T,
) -> Result<CudaSlice<T>, KernelError> {
    let mut rng = SplitMix64::new(seed);
    // an odd block length, so that repeated blocks do not line up with rows
    let block: Vec<T> = (0..n.clamp(1, (1 << 24) - 1)).map(|_| draw(&mut rng)).collect();
    let mut dev = stream.alloc_zeros::<T>(n.max(1))?;
    let mut at = 0;
    while at < n {
        let len = block.len().min(n - at);
        stream.memcpy_htod(&block[..len], &mut dev.slice_mut(at..at + len))?;
        at += len;
    }
    Ok(dev)
}

/// Every kernel benchmark (about a minute on an H200).
pub fn all(gpu: &Gpu) -> Result<Vec<Measured>, KernelError> {
    let mut out = Vec::new();
    out.extend(rows::copy_bandwidth(gpu)?);
    out.extend(gemm::all(gpu)?);
    out.extend(memory::all(gpu)?);
    out.extend(attention::all(gpu)?);
    out.extend(rows::all(gpu)?);
    Ok(out)
}
