//! `Engine`: a loaded model bound to a device.

use std::path::Path;
use std::str::FromStr;

use dbrmt_formats::{
    identity::model_identity, identity_parts::ModelParts, load::unused_tensors_warning, memory, source::read_weights,
    LoadOptions, Model, ModelConfig, ModelSource, NameLayout, SavedState, TensorRead, Weights,
};
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

/// What is known of a loaded model besides its weights.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub config: ModelConfig,
    /// What saved states record ([`dbrmt_formats::identity`]).
    pub identity: String,
    /// The tensor-name layout found in the checkpoint.
    pub layout: NameLayout,
    /// Checkpoint tensors the model does not use, sorted.
    pub unused_tensors: Vec<String>,
    /// The seed the ARMT memory was initialised from (a plain LLaMA checkpoint); `None` when it was loaded.
    pub armt_seed: Option<u64>,
}

impl ModelInfo {
    /// A one-line warning listing the unused checkpoint tensors, if there are any.
    pub fn unused_tensors_warning(&self) -> Option<String> {
        unused_tensors_warning(&self.unused_tensors)
    }

    /// The readable parts of the identity, which saved states record to say what differs from another model.
    pub fn parts(&self) -> ModelParts {
        ModelParts::new(&self.config, self.armt_seed)
    }
}

/// Where the weights live.
#[derive(Debug)]
enum Backend {
    /// f32 host weights for the CPU model.
    Cpu(Weights),
    /// bf16 device weights; no host copy.
    Gpu(Box<GpuExecutor>),
}

/// A loaded model bound to a device.
#[derive(Debug)]
pub struct Engine {
    info: ModelInfo,
    backend: Backend,
    device: Device,
}

impl Engine {
    /// Loads the model at `path` for `device`. On a GPU the weights go from the memory-mapped checkpoint straight to
    /// bf16 device buffers (stored bf16 copied as is, anything else converted in bounded pieces), so no f32 host
    /// copy is made; on the CPU they become the CPU model's f32 weights. A GPU that is absent, or kernels that were
    /// not built, give an error before the checkpoint is read.
    pub fn load(path: &Path, opts: &LoadOptions, device: Device) -> Result<Self, EngineError> {
        match device {
            Device::Cpu => Self::from_model(dbrmt_formats::load_model(path, opts)?, device),
            Device::Cuda(ordinal) => {
                if !dbrmt_kernels::driver_present() {
                    return Err(dbrmt_kernels::KernelError::NoGpu.into());
                }
                let source = ModelSource::open(path, opts)?;
                let (gpu, identity) = GpuExecutor::new(ordinal, &source)?;
                let info = ModelInfo {
                    identity,
                    armt_seed: source.armt_seed(),
                    config: source.config,
                    layout: source.layout,
                    unused_tensors: source.unused_tensors,
                };
                Ok(Self {
                    info,
                    backend: Backend::Gpu(Box::new(gpu)),
                    device,
                })
            }
        }
    }

    /// Binds a model held in memory to `device` (for CUDA: opens the GPU and uploads the weights, which are then
    /// dropped from the host).
    pub fn from_model(model: Model, device: Device) -> Result<Self, EngineError> {
        let mut info = ModelInfo {
            config: model.config.clone(),
            identity: String::new(),
            layout: model.layout,
            unused_tensors: model.unused_tensors.clone(),
            armt_seed: model.armt_seed,
        };
        let backend = match device {
            Device::Cpu => {
                info.identity = model_identity(&model.config, &model.weights);
                Backend::Cpu(model.weights)
            }
            Device::Cuda(ordinal) => {
                let (gpu, identity) = GpuExecutor::new(ordinal, &model)?;
                info.identity = identity;
                Backend::Gpu(Box::new(gpu))
            }
        };
        Ok(Self { info, backend, device })
    }

    /// Binds a model served tensor by tensor — random weights of a published shape for benchmarks, say — to
    /// `device`; on a GPU the tensors stream to the device without a host copy.
    pub fn from_tensors(src: &impl TensorRead, device: Device) -> Result<Self, EngineError> {
        match device {
            Device::Cpu => Self::from_model(
                Model {
                    config: src.config().clone(),
                    weights: read_weights(src)?,
                    layout: NameLayout::Hf,
                    unused_tensors: Vec::new(),
                    armt_seed: None,
                },
                device,
            ),
            Device::Cuda(ordinal) => {
                let (gpu, identity) = GpuExecutor::new(ordinal, src)?;
                let info = ModelInfo {
                    config: src.config().clone(),
                    identity,
                    layout: NameLayout::Hf,
                    unused_tensors: Vec::new(),
                    armt_seed: None,
                };
                Ok(Self {
                    info,
                    backend: Backend::Gpu(Box::new(gpu)),
                    device,
                })
            }
        }
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn config(&self) -> &ModelConfig {
        &self.info.config
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// The GPU side of a CUDA engine.
    pub fn gpu_executor(&self) -> Option<&GpuExecutor> {
        match &self.backend {
            Backend::Gpu(gpu) => Some(gpu),
            Backend::Cpu(_) => None,
        }
    }

    /// The f32 weights of a CPU engine.
    pub fn cpu_weights(&self) -> Option<&Weights> {
        match &self.backend {
            Backend::Cpu(w) => Some(w),
            Backend::Gpu(_) => None,
        }
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
        let cfg = self.config();
        let ids = validate_ids(ids, cfg.llama.vocab_size)?;
        self.check_prefill_memory(ids.len(), logits, keep_hidden)?;
        let grid = Grid::new(cfg.llama.num_layers, cfg.segments_for(ids.len()));
        let plan = schedule.build(grid);
        match &self.backend {
            Backend::Cpu(weights) => {
                let cpu = CpuModel::new(cfg, weights);
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
            Backend::Gpu(gpu) => {
                let (out, timing) = gpu.prefill_from(&ids, &plan, logits, keep_hidden, resume)?;
                Ok((out, Some(timing.ms)))
            }
        }
    }
}

impl Engine {
    /// As [`Engine::prefill_timed`], in pieces of `segments_per_piece` segments, each continuing from the state
    /// the one before left (the same bits as one prefill), with `progress(tokens done)` after each: a long prefill
    /// on the CPU model can say how far it is. The device times of the pieces are summed.
    pub fn prefill_with_progress(
        &self,
        ids: &[i64],
        schedule: ScheduleKind,
        logits: LogitsMode,
        segments_per_piece: usize,
        mut progress: impl FnMut(usize),
    ) -> Result<(Output, Option<f32>), EngineError> {
        let piece = self
            .config()
            .armt
            .segment_size
            .saturating_mul(segments_per_piece.max(1));
        if ids.len() <= piece {
            return self.prefill_timed(ids, schedule, logits, false);
        }
        // the whole input is checked before the first piece: a bad id at its end, or logits of every token that
        // do not fit, are refused now rather than after minutes of work
        validate_ids(ids, self.config().llama.vocab_size)?;
        self.check_prefill_memory(ids.len(), logits, false)?;
        let mut out: Option<Output> = None;
        let mut device_ms: Option<f32> = None;
        for (k, chunk) in ids.chunks(piece).enumerate() {
            let last = (k + 1) * piece >= ids.len();
            // only the last piece's last row is the input's last row
            let rows = match (logits, last) {
                (LogitsMode::Last, false) => LogitsMode::None,
                (mode, _) => mode,
            };
            let resume = out.as_ref().map(|o| Resume {
                state: o.state.clone(),
                segments_before: o.segments,
            });
            let (part, ms) = self.prefill_from(chunk, schedule, rows, false, resume.as_ref())?;
            device_ms = match (device_ms, ms) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            };
            out = Some(match out {
                None => part,
                Some(mut o) => {
                    o.tokens += part.tokens;
                    o.segments += part.segments;
                    o.logits.extend(part.logits);
                    o.logit_rows += part.logit_rows;
                    o.state = part.state;
                    o
                }
            });
            progress(out.as_ref().map_or(0, |o| o.tokens));
        }
        let out = out.ok_or(EngineError::Model(dbrmt_model::ModelError::EmptyInput))?;
        Ok((out, device_ms))
    }
}

/// Worker threads of the CPU model (one per core).
fn cpu_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Engine {
    /// Refuses, before anything is allocated, a prefill whose host memory (the CPU model's activations, or the
    /// logits, hidden rows and state a GPU run returns) the machine cannot hold — `--logits all` over 50K ids is
    /// 10 GB of logits for a 50K vocabulary.
    fn check_prefill_memory(&self, tokens: usize, logits: LogitsMode, keep_hidden: bool) -> Result<(), EngineError> {
        let cfg = self.config();
        let logit_rows = logits.rows(tokens).1;
        let shape = memory::PrefillShape {
            tokens,
            logit_rows,
            keep_hidden,
            threads: cpu_threads(),
        };
        let needed = match &self.backend {
            Backend::Cpu(_) => memory::cpu_prefill_bytes(cfg, shape),
            Backend::Gpu(_) => {
                let (v, d) = (cfg.llama.vocab_size, cfg.llama.hidden_size);
                let out = memory::mul_bytes(&[logit_rows, v, 4]);
                let hidden = if keep_hidden {
                    memory::mul_bytes(&[tokens, d, 4])
                } else {
                    0
                };
                out.saturating_add(hidden)
                    .saturating_add(memory::state_bytes(cfg).saturating_mul(2))
            }
        };
        let what = format!(
            "prefilling {tokens} tokens ({} logits rows of {} ids)",
            logit_rows, cfg.llama.vocab_size
        );
        memory::check_host(&what, needed)?;
        Ok(())
    }

    /// Refuses a CPU generation session the machine cannot hold (its KV caches and a run closing segments).
    fn check_session_memory(&self) -> Result<(), EngineError> {
        if let Backend::Cpu(_) = &self.backend {
            let needed = memory::cpu_session_bytes(self.config(), self.config().llama.num_layers, cpu_threads());
            memory::check_host("a generation session on the CPU model", needed)?;
        }
        Ok(())
    }

    /// A new request on this engine's device.
    pub fn session(&self) -> Result<Session<'_>, EngineError> {
        self.check_session_memory()?;
        match &self.backend {
            Backend::Gpu(gpu) => Ok(Session::Gpu(Box::new(gpu.session()?))),
            Backend::Cpu(w) => Ok(Session::Cpu(cpu::Session::new(&CpuModel::new(self.config(), w)))),
        }
    }

    /// Continues from a saved state (checked against the model's shape; check its identity when loading it).
    pub fn resume(&self, saved: SavedState) -> Result<Session<'_>, EngineError> {
        self.check_session_memory()?;
        match &self.backend {
            Backend::Gpu(gpu) => Ok(Session::Gpu(Box::new(gpu.resume(saved)?))),
            Backend::Cpu(w) => {
                let cfg = self.config();
                saved
                    .state
                    .check_shape(cfg.llama.num_layers, cfg.d_key(), cfg.llama.hidden_size)
                    .map_err(dbrmt_model::ModelError::from)?;
                Ok(Session::Cpu(cpu::Session::resume(&CpuModel::new(cfg, w), saved)))
            }
        }
    }
}
