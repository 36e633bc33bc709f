//! [`Session`]: one request's generation on either backend — the CPU model's session or the GPU's.

use dbrmt_formats::SavedState;

use crate::{cpu, gpu, ModelError};

/// One request's generation: prefill, then one token at a time, with no length limit (a full open segment is
/// closed and generation goes on in a fresh one). Both devices compute the same thing: the CPU in f32, the GPU in
/// bf16 with f32 accumulation and f32 memory.
#[derive(Debug)]
pub enum Session<'e> {
    Cpu(cpu::Session<'e>),
    Gpu(Box<gpu::Session<'e>>),
}

impl Session<'_> {
    /// Appends `ids` (checked against the vocabulary), closing every full segment but the last.
    pub fn prefill(&mut self, ids: &[u32]) -> Result<(), ModelError> {
        self.prefill_chunked(ids, usize::MAX, |_| {})
    }

    /// As [`Session::prefill`], closing at most `segments_per_chunk` segments per diagonal run and calling
    /// `progress(tokens consumed)` after each — the same bits as one run.
    pub fn prefill_chunked(
        &mut self,
        ids: &[u32],
        segments_per_chunk: usize,
        progress: impl FnMut(usize),
    ) -> Result<(), ModelError> {
        match self {
            Session::Cpu(s) => s.prefill_chunked(ids, segments_per_chunk, progress),
            Session::Gpu(s) => s.prefill_chunked(ids, segments_per_chunk, progress),
        }
    }

    /// Appends one token and computes the logits after it.
    pub fn push(&mut self, id: u32) -> Result<&[f32], ModelError> {
        match self {
            Session::Cpu(s) => s.push(id),
            Session::Gpu(s) => s.push(id),
        }
    }

    /// The next-token logits (empty before the first token, and on the GPU after a token run in greedy-id mode).
    pub fn logits(&self) -> &[f32] {
        match self {
            Session::Cpu(s) => s.logits(),
            Session::Gpu(s) => s.logits(),
        }
    }

    /// Greedy-id mode: on the GPU, from the next prefill or push on, only the next token's greedy id is computed (on
    /// the device) and copied out, not its logits ([`Session::argmax`]); the CPU model keeps its logits.
    pub fn set_greedy_ids(&mut self, on: bool) {
        if let Session::Gpu(s) = self {
            s.set_greedy_ids(on);
        }
    }

    /// The greedy next token: the host's [`argmax`](crate::sampling::argmax) of the logits, or the same id chosen on
    /// the device in greedy-id mode.
    pub fn argmax(&self) -> u32 {
        match self {
            Session::Cpu(s) => crate::sampling::argmax(s.logits()),
            Session::Gpu(s) => s.argmax(),
        }
    }

    /// Whether the logits behind [`Session::argmax`] were all finite when the id was chosen on the device (the host's
    /// logits are the caller's to check: always true for them).
    pub fn greedy_logits_finite(&self) -> bool {
        match self {
            Session::Cpu(_) => true,
            Session::Gpu(s) => s.greedy_logits_finite(),
        }
    }

    /// Decode step shapes replayed as CUDA graphs so far (0 on the CPU).
    pub fn captured_graphs(&self) -> usize {
        match self {
            Session::Cpu(_) => 0,
            Session::Gpu(s) => s.captured_graphs(),
        }
    }

    /// What a state file needs to continue this session.
    pub fn saved(&self) -> Result<SavedState, ModelError> {
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
