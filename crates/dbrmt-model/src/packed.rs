//! A step of several requests, as both backends' packed executors take it: the passes of live requests (whole
//! segments, or new rows of an open segment) and the layer each one runs in this step.
//!
//! A pass goes through every layer, one layer per step, its rows kept by the executor between steps; the runtime
//! decides which passes exist and which of their cells share a step (`dbrmt_schedule::Wavefront`). A cell computes
//! exactly what the single-request paths compute for the same rows — a whole segment as `Engine::prefill` runs it, an
//! open segment's rows as a generation session runs them — so a request's results do not depend on the others.

use crate::{LogitsMode, ModelError};

/// Identifies a pass while it is in flight (unique within one executor's life).
pub type PassId = u64;

/// Which rows a pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassRows {
    /// A whole segment: its text rows and the M memory rows, with the write.
    Whole,
    /// New rows of the open segment at positions `at..`, over the KV cache of the rows before them; no memory rows,
    /// no write. `at = 0` starts a fresh open segment.
    Open { at: usize },
}

/// One pass of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Pass {
    /// The request's slot in the executor ([`admit`](crate::cpu::PackedExecutor::admit)).
    pub request: usize,
    pub rows: PassRows,
    /// Its text tokens (1..=T, checked against the vocabulary), embedded when it enters layer 0.
    pub tokens: Vec<u32>,
    /// Segment 0 of its request: no read (and for a whole segment, the write of segment 0).
    pub first_segment: bool,
    /// Logits when it leaves the top layer: none, its last row, or every row (whole segments only).
    pub logits: LogitsMode,
    /// Only the greedy id of its last row is needed (a token sampled at temperature 0 whose logits nobody reads;
    /// with `logits: LogitsMode::Last` only): a backend may return that id ([`PassLogits::argmax`], the host's
    /// [`argmax`](crate::sampling::argmax) of the same logits) instead of the logits. The GPU does, unless told not to
    /// (`DBRMT_DEVICE_ARGMAX=off`, [`crate::gpu::PackedExecutor::set_device_argmax`]); the CPU model returns the
    /// logits.
    pub argmax: bool,
}

/// A pass at the layer it runs in this step.
#[derive(Debug, Clone, Copy)]
pub struct PassCell<'a> {
    pub id: PassId,
    pub pass: &'a Pass,
    pub layer: usize,
}

/// Logits of a pass that left the top layer: `[rows, vocab]`; or, for a pass that asked for its greedy id only
/// ([`Pass::argmax`]) and got it, `argmax` with no logits.
#[derive(Debug, Clone, PartialEq)]
pub struct PassLogits {
    pub id: PassId,
    pub rows: usize,
    /// `[rows, vocab]`; empty when `argmax` is given.
    pub logits: Vec<f32>,
    /// The index of the largest logit of the last row (the first on ties), computed where the logits are.
    pub argmax: Option<u32>,
}

/// Checks what every backend needs of a cell before touching any data: its layer exists, its rows fit a segment,
/// an open pass asks for at most its last row's logits.
pub(crate) fn check_cell(cell: &PassCell<'_>, layers: usize, segment_size: usize) -> Result<(), ModelError> {
    let p = cell.pass;
    let bad = |msg: String| Err(ModelError::InvalidInput(format!("pass {}: {msg}", cell.id)));
    if cell.layer >= layers {
        return bad(format!("layer {} of a {layers}-layer model", cell.layer));
    }
    if p.tokens.is_empty() {
        return Err(ModelError::EmptyInput);
    }
    let end = match p.rows {
        PassRows::Whole => p.tokens.len(),
        PassRows::Open { at } => at + p.tokens.len(),
    };
    if end > segment_size {
        return bad(format!("rows up to {end} in a segment of {segment_size}"));
    }
    if matches!(p.rows, PassRows::Open { .. }) && p.logits == LogitsMode::All {
        return bad("an open pass gives its last row's logits only".into());
    }
    if p.argmax && p.logits != LogitsMode::Last {
        return bad("only a pass asking for its last row's logits may ask for their greedy id".into());
    }
    Ok(())
}
