//! [`Session`]: one request's generation on the engine's device — the CPU model's session or the GPU's.

use dbrmt_model::{
    cpu::{self, CpuModel},
    SavedState,
};

use crate::engine::Engine;
use crate::error::EngineError;
use crate::gpu_session::GpuSession;

/// One request's generation: prefill, then one token at a time, with no length limit (a full open segment is
/// closed and generation goes on in a fresh one). Both devices compute the same thing: the CPU in f32, the GPU in
/// bf16 with f32 accumulation and f32 memory.
#[derive(Debug)]
pub enum Session<'e> {
    Cpu(cpu::Session<'e>),
    Gpu(Box<GpuSession<'e>>),
}

impl Engine {
    /// A new request on this engine's device.
    pub fn session(&self) -> Result<Session<'_>, EngineError> {
        match self.gpu_engine() {
            Some(gpu) => Ok(Session::Gpu(Box::new(gpu.session()?))),
            None => Ok(Session::Cpu(cpu::Session::new(&self.cpu_model()))),
        }
    }

    /// Continues from a saved state (checked against the model's shape; check its identity when loading it).
    pub fn resume(&self, saved: SavedState) -> Result<Session<'_>, EngineError> {
        match self.gpu_engine() {
            Some(gpu) => Ok(Session::Gpu(Box::new(gpu.resume(saved)?))),
            None => {
                let cfg = &self.model().config;
                saved.state.check_shape(cfg.num_layers, cfg.d_key(), cfg.hidden_size)?;
                Ok(Session::Cpu(cpu::Session::resume(&self.cpu_model(), saved)))
            }
        }
    }

    fn cpu_model(&self) -> CpuModel<'_> {
        CpuModel::new(&self.model().config, &self.model().weights)
    }
}

impl Session<'_> {
    /// Appends `ids` (checked against the vocabulary), closing every full segment but the last.
    pub fn prefill(&mut self, ids: &[u32]) -> Result<(), EngineError> {
        self.prefill_chunked(ids, usize::MAX, |_| {})
    }

    /// As [`Session::prefill`], closing at most `segments_per_chunk` segments per diagonal run and calling
    /// `progress(tokens consumed)` after each — the same bits as one run.
    pub fn prefill_chunked(
        &mut self,
        ids: &[u32],
        segments_per_chunk: usize,
        progress: impl FnMut(usize),
    ) -> Result<(), EngineError> {
        match self {
            Session::Cpu(s) => Ok(s.prefill_chunked(ids, segments_per_chunk, progress)?),
            Session::Gpu(s) => s.prefill_chunked(ids, segments_per_chunk, progress),
        }
    }

    /// Appends one token and computes the logits after it.
    pub fn push(&mut self, id: u32) -> Result<&[f32], EngineError> {
        match self {
            Session::Cpu(s) => Ok(s.push(id)?),
            Session::Gpu(s) => s.push(id),
        }
    }

    /// The next-token logits (empty before the first token).
    pub fn logits(&self) -> &[f32] {
        match self {
            Session::Cpu(s) => s.logits(),
            Session::Gpu(s) => s.logits(),
        }
    }

    /// What a state file needs to continue this session.
    pub fn saved(&self) -> Result<SavedState, EngineError> {
        match self {
            Session::Cpu(s) => Ok(s.saved()),
            Session::Gpu(s) => s.saved(),
        }
    }

    /// Segments closed so far.
    pub fn segments_closed(&self) -> usize {
        match self {
            Session::Cpu(s) => s.segments_closed(),
            Session::Gpu(s) => s.segments_closed(),
        }
    }

    /// Text tokens of the open segment.
    pub fn open_tokens(&self) -> &[u32] {
        match self {
            Session::Cpu(s) => s.open_tokens(),
            Session::Gpu(s) => s.open_tokens(),
        }
    }
}
