//! `Engine`: a loaded model bound to a device.

use std::path::Path;
use std::str::FromStr;

use dbrmt_model::{
    cpu::{CpuModel, RunOptions},
    input::validate_ids,
    LogitsMode, Output,
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
    model: dbrmt_model::Model,
    device: Device,
}

impl Engine {
    /// Loads `dir` (config.json + safetensors) for `device`. A GPU that is absent, or kernels that were not built,
    /// give an error here rather than at the first forward.
    pub fn load(dir: &Path, opts: &dbrmt_model::LoadOptions, device: Device) -> Result<Self, EngineError> {
        if let Device::Cuda(ordinal) = device {
            crate::engine::gpu_unavailable(ordinal)?;
        }
        let model = dbrmt_model::load_model(dir, opts)?;
        Ok(Self { model, device })
    }

    /// Wraps an already loaded model.
    pub fn from_model(model: dbrmt_model::Model, device: Device) -> Result<Self, EngineError> {
        if let Device::Cuda(ordinal) = device {
            gpu_unavailable(ordinal)?;
        }
        Ok(Self { model, device })
    }

    pub fn model(&self) -> &dbrmt_model::Model {
        &self.model
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// Prefills `ids` (checked against the vocabulary) and returns logits and the final memory state.
    pub fn prefill(
        &self,
        ids: &[i64],
        schedule: ScheduleKind,
        logits: LogitsMode,
        keep_hidden: bool,
    ) -> Result<Output, EngineError> {
        let cfg = &self.model.config;
        let ids = validate_ids(ids, cfg.vocab_size)?;
        let grid = Grid::new(cfg.num_layers, cfg.segments_for(ids.len()));
        let plan = schedule.build(grid);
        match self.device {
            Device::Cpu => {
                let cpu = CpuModel::new(cfg, &self.model.weights);
                let opts = RunOptions { logits, keep_hidden, threads: 0 };
                Ok(cpu.run(&ids, &plan, &opts)?)
            }
            Device::Cuda(ordinal) => Err(gpu_unavailable(ordinal).err().unwrap_or_else(not_built_yet)),
        }
    }
}

fn not_built_yet() -> EngineError {
    EngineError::Gpu("the GPU engine is not built yet: use --device cpu".into())
}

/// Why `--device cuda` cannot run here: no driver, or (until the GPU engine lands) no GPU engine.
pub(crate) fn gpu_unavailable(_ordinal: usize) -> Result<(), EngineError> {
    Err(not_built_yet())
}
