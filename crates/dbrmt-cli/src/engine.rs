//! Opening the engine for a `--device` choice, the one way every command loads a model to run it.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use dbrmt_formats::LoadOptions;
use dbrmt_runtime::{Device, Engine};

use crate::args::DeviceArg;

/// `--device cuda`: the GPU or an error; `auto`: the GPU when GPU 0 opens, else the CPU model; `cpu`: the CPU.
/// On the GPU the weights go from the checkpoint straight to device buffers. Prints the load time on stderr.
pub fn open_engine(device: DeviceArg, path: &Path, opts: &LoadOptions) -> anyhow::Result<Engine> {
    let t0 = Instant::now();
    let load = |device| Engine::load(path, opts, device).with_context(|| format!("loading {}", path.display()));
    let engine = match device {
        DeviceArg::Cpu => load(Device::Cpu)?,
        DeviceArg::Cuda => load(Device::Cuda(0)).context("on CUDA device 0")?,
        DeviceArg::Auto if !dbrmt_kernels::driver_present() || !dbrmt_kernels::cubins_built() => load(Device::Cpu)?,
        // probe first, so that a machine whose GPU does not open falls back before the checkpoint is read
        DeviceArg::Auto => match dbrmt_kernels::Gpu::new(0) {
            Ok(_) => load(Device::Cuda(0)).context("on CUDA device 0")?,
            Err(e) => {
                eprintln!("note: no usable GPU ({e}); running on the CPU model");
                load(Device::Cpu)?
            }
        },
    };
    let where_ = match engine.device() {
        Device::Cpu => "the CPU model (f32)".to_string(),
        Device::Cuda(i) => format!("GPU {i} (bf16)"),
    };
    eprintln!(
        "loaded {} onto {where_} in {:.2} s",
        path.display(),
        t0.elapsed().as_secs_f64()
    );
    if let Some(seed) = engine.info().armt_seed {
        eprintln!("{}", untrained_memory_note(path, seed));
    }
    if let Some(w) = engine.info().unused_tensors_warning() {
        eprintln!("warning: {}", crate::terminal_safe(&w));
    }
    Ok(engine)
}

/// The one line that says a plain LLaMA checkpoint runs with untrained memory.
pub fn untrained_memory_note(path: &Path, seed: u64) -> String {
    format!(
        "note: {} has no ARMT memory parameters (a plain LLaMA checkpoint): they are initialised as the original \
         does, untrained, from seed {seed} (--armt-init SEED picks another)",
        crate::terminal_safe(&path.display().to_string())
    )
}
