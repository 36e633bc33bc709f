//! `Engine`: a loaded model bound to a device.

use std::path::Path;
use std::str::FromStr;

use dbrmt_formats::{LoadOptions, Model, SavedState};
use dbrmt_model::{
    cpu::{self, CpuModel, Resume, RunOptions},
    gpu::GpuExecutor,
    input::validate_ids,
    LogitsMode, Output, Session,
};
use dbrmt_schedule::{Grid, Schedule};

use crate::error::EngineError;

/// Where a forward runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// The f32 CPU model (the oracle).
    Cpu,
    /// CUDA GPU `ordinal`.
    Cuda(usize),
}

/// Which order the grid of cells is walked in. Both give bitwise identical results on one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScheduleKind {
    /// Segment by segment, layer by layer: one cell per step (the original ARMT loop).
    Sequential,
    /// Anti-diagonals of the layers × segments grid: every cell with `l + s = i` in step `i`.
    #[default]
    Diagonal,
}

impl ScheduleKind {
    pub fn build(self, grid: Grid) -> Schedule {
        match self {
            ScheduleKind::Sequential => grid.sequential(),
            ScheduleKind::Diagonal => grid.diagonal(),
        }
    }
}

impl FromStr for ScheduleKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sequential" => Ok(Self::Sequential),
            "diagonal" => Ok(Self::Diagonal),
            _ => Err(format!("unknown schedule `{s}` (expected sequential or diagonal)")),
        }
    }
}

/// A loaded model bound to a device.
#[derive(Debug)]
pub struct Engine {
    model: Model,
    device: Device,
    gpu: Option<GpuExecutor>,
}

impl Engine {
    /// Loads `dir` (config.json + safetensors) for `device`. A GPU that is absent, or kernels that were not built,
    /// give an error here rather than at the first forward.
    pub fn load(dir: &Path, opts: &LoadOptions, device: Device) -> Result<Self, EngineError> {
        if let Device::Cuda(_) = device {
            // fail before reading a large checkpoint when there is no driver at all
            if !dbrmt_kernels::driver_present() {
                return Err(dbrmt_kernels::KernelError::NoGpu.into());
            }
        }
        Self::from_model(dbrmt_formats::load_model(dir, opts)?, device)
    }

    /// Binds an already loaded model to `device` (for CUDA: opens the GPU and uploads the weights).
    pub fn from_model(model: Model, device: Device) -> Result<Self, EngineError> {
        let gpu = match device {
            Device::Cpu => None,
            Device::Cuda(ordinal) => Some(GpuExecutor::new(ordinal, &model)?),
        };
        Ok(Self { model, device, gpu })
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// The GPU side of a CUDA engine.
    pub fn gpu_executor(&self) -> Option<&GpuExecutor> {
        self.gpu.as_ref()
    }

    /// Prefills `ids` (checked against the vocabulary) and returns logits and the final memory state.
    pub fn prefill(
        &self,
        ids: &[i64],
        schedule: ScheduleKind,
        logits: LogitsMode,
        keep_hidden: bool,
    ) -> Result<Output, EngineError> {
        Ok(self.prefill_timed(ids, schedule, logits, keep_hidden)?.0)
    }

    /// As [`Engine::prefill`], also returning the device time in milliseconds (CUDA events; `None` on the CPU).
    pub fn prefill_timed(
        &self,
        ids: &[i64],
        schedule: ScheduleKind,
        logits: LogitsMode,
        keep_hidden: bool,
    ) -> Result<(Output, Option<f32>), EngineError> {
        self.prefill_from(ids, schedule, logits, keep_hidden, None)
    }

    /// As [`Engine::prefill_timed`], continuing from `resume` (the memory state after earlier segments of the same
    /// request; the segments of `ids` are numbered on from there). Prefilling in pieces this way gives the same
    /// bits as one prefill.
    pub fn prefill_from(
        &self,
        ids: &[i64],
        schedule: ScheduleKind,
        logits: LogitsMode,
        keep_hidden: bool,
        resume: Option<&Resume>,
    ) -> Result<(Output, Option<f32>), EngineError> {
        let cfg = &self.model.config;
        let ids = validate_ids(ids, cfg.llama.vocab_size)?;
        let grid = Grid::new(cfg.llama.num_layers, cfg.segments_for(ids.len()));
        let plan = schedule.build(grid);
        match &self.gpu {
            None => {
                let cpu = self.cpu_model();
                let opts = RunOptions {
                    logits,
                    keep_hidden,
                    threads: 0,
                };
                let resume = resume.cloned().unwrap_or(Resume {
                    state: cpu.zero_state(),
                    segments_before: 0,
                });
                Ok((cpu.run_from(&ids, &plan, &opts, resume)?, None))
            }
            Some(gpu) => {
                let (out, timing) = gpu.prefill_from(&ids, &plan, logits, keep_hidden, resume)?;
                Ok((out, Some(timing.ms)))
            }
        }
    }
}

impl Engine {
    /// A new request on this engine's device.
    pub fn session(&self) -> Result<Session<'_>, EngineError> {
        match self.gpu_executor() {
            Some(gpu) => Ok(Session::Gpu(Box::new(gpu.session()?))),
            None => Ok(Session::Cpu(cpu::Session::new(&self.cpu_model()))),
        }
    }

    /// Continues from a saved state (checked against the model's shape; check its identity when loading it).
    pub fn resume(&self, saved: SavedState) -> Result<Session<'_>, EngineError> {
        match self.gpu_executor() {
            Some(gpu) => Ok(Session::Gpu(Box::new(gpu.resume(saved)?))),
            None => {
                let cfg = &self.model().config;
                saved
                    .state
                    .check_shape(cfg.llama.num_layers, cfg.d_key(), cfg.llama.hidden_size)
                    .map_err(dbrmt_model::ModelError::from)?;
                Ok(Session::Cpu(cpu::Session::resume(&self.cpu_model(), saved)))
            }
        }
    }

    fn cpu_model(&self) -> CpuModel<'_> {
        CpuModel::new(&self.model().config, &self.model().weights)
    }
}
