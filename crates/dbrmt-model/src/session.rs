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
    /// Appends `ids` (checked against the vocabulary), closing every full segment (the last close gives the logits
    /// when the tokens end a segment, and the open segment is then empty).
    pub fn prefill(&mut self, ids: &[u32]) -> Result<(), ModelError> {
        self.prefill_chunked(ids, usize::MAX, |_| {})
    }

    /// As [`Session::prefill`], calling `progress(tokens consumed)` as it goes — the same bits as one run. The CPU
    /// model closes at most `segments_per_chunk` segments per diagonal run; the GPU closes them all in one run and
    /// reports each segment as its launches are queued.
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

    /// Greedy generation: up to `max_new_tokens` ids, each the argmax of the logits after the one before (the first
    /// after the last prefilled or pushed token), handed to `keep` in order until it returns `false` (a stop id, say);
    /// every kept id but the `max_new_tokens`-th is pushed. Returns the pushes. That loop of [`Session::next_greedy`]
    /// and [`Session::push`] is what runs on the CPU model and with `DBRMT_DECODE_AHEAD=off`; on the GPU each id
    /// otherwise goes from pass to pass on the device and the next pass runs before the host reads it
    /// (`gpu::Session::generate_greedy_ahead`: the same ids, state and bits). Leaves a GPU session in greedy-id mode
    /// ([`Session::set_greedy_ids`]). Errors: [`ModelError::NonFiniteLogits`] when an id's logits were not all
    /// finite, or what `keep` returns.
    pub fn generate_greedy<E: From<ModelError>>(
        &mut self,
        max_new_tokens: usize,
        mut keep: impl FnMut(u32) -> Result<bool, E>,
    ) -> Result<usize, E> {
        if max_new_tokens == 0 {
            return Ok(0);
        }
        self.set_greedy_ids(true);
        if let Session::Gpu(s) = self {
            if s.runs_ahead() {
                return s.generate_greedy_ahead(max_new_tokens, keep);
            }
        }
        let mut pushes = 0;
        for i in 0..max_new_tokens {
            let id = self.next_greedy()?;
            if !keep(id)? || i + 1 == max_new_tokens {
                break;
            }
            self.push(id)?;
            pushes += 1;
        }
        Ok(pushes)
    }

    /// The greedy id after the last token ([`Session::argmax`]); an error when nothing has run yet, or when the logits
    /// behind it were not all finite.
    pub fn next_greedy(&self) -> Result<u32, ModelError> {
        match self {
            Session::Cpu(s) => greedy_of_logits(s.logits(), s.tokens()),
            Session::Gpu(s) => s.next_greedy(),
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

    /// Text tokens run so far: the closed segments' and the open segment's.
    pub fn tokens(&self) -> usize {
        match self {
            Session::Cpu(s) => s.tokens(),
            Session::Gpu(s) => s.tokens(),
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

/// The host's greedy id of `logits` (the next token's after `tokens` tokens), or an error: no logits yet (nothing has
/// run), or not all of them finite.
pub(crate) fn greedy_of_logits(logits: &[f32], tokens: usize) -> Result<u32, ModelError> {
    if logits.is_empty() {
        return Err(ModelError::InvalidInput(
            "greedy generation needs a prompt first".into(),
        ));
    }
    if !logits.iter().all(|x| x.is_finite()) {
        return Err(ModelError::NonFiniteLogits { tokens });
    }
    Ok(crate::sampling::argmax(logits))
}
