//! The end of a pass: the final norm, the LM head and the logits (or only the greedy ids) of the segments leaving the
//! top layer, one ([`GpuModel::finish`]) or several at once ([`GpuModel::finish_many`]).

use cudarc::driver::CudaStream;
use dbrmt_kernels::{
    gemm::GemmGroup,
    params::{Span, MAX_GROUPS},
    reference::argmax_rows::NON_FINITE,
    rms_norm::rms_norm,
    Gpu, KernelError,
};

use super::chunk::Linear;
use super::model::merge_rows;
use super::{GpuModel, Workspace};
use crate::output::LogitsMode;

/// A segment, or an open segment's new rows, leaving the top layer, as [`GpuModel::finish_many`] takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finishing {
    /// Its hidden slot.
    pub slot: usize,
    pub text_rows: usize,
    pub logits: LogitsMode,
    /// With `logits: LogitsMode::Last`: only the greedy id of that row comes to the host (`argmax_rows_f32` on the
    /// device, the host's argmax of the same logits), not its logits.
    pub argmax: bool,
}

/// What [`GpuModel::finish_many`] gives an item: its `[rows, V]` logits on the host (empty for `LogitsMode::None`
/// and for a greedy id), and its greedy id when it asked for that ([`Finishing::argmax`]).
pub type Finished = (Vec<f32>, Option<u32>);

impl Finishing {
    /// Whether only the greedy id of its one logit row comes back.
    pub(super) fn argmax_only(&self) -> bool {
        self.argmax && self.logits == LogitsMode::Last
    }

    /// `(first text row, rows)` whose logits it asks for.
    pub(super) fn logit_rows(&self) -> (usize, usize) {
        self.logits.rows(self.text_rows)
    }
}

impl GpuModel {
    /// The final RMSNorm of the hidden rows `spans` name into [`Workspace::final_hidden`].
    fn final_norm(
        &self,
        gpu: &Gpu,
        stream: &CudaStream,
        ws: &mut Workspace,
        spans: &[Span],
    ) -> Result<(), KernelError> {
        let d = self.cfg.llama.hidden_size;
        rms_norm(
            gpu,
            stream,
            &ws.hidden,
            d,
            &self.weights.final_norm,
            &mut ws.final_hidden,
            d,
            spans,
            d,
            self.cfg.llama.rms_norm_eps,
        )
    }

    /// A segment leaving the top layer: the final norm of its text rows (kept in [`Workspace::final_hidden`]) and,
    /// as asked, the logits of all of them or of the last one only (in [`Workspace::logits`]). Returns the number of
    /// logit rows written.
    pub fn finish(
        &self,
        gpu: &Gpu,
        stream: &CudaStream,
        ws: &mut Workspace,
        slot: usize,
        text_rows: usize,
        logits: LogitsMode,
    ) -> Result<usize, KernelError> {
        let (d, v) = (self.cfg.llama.hidden_size, self.cfg.llama.vocab_size);
        let span = Span {
            in_row: slot * ws.rows,
            out_row: 0,
            rows: text_rows,
            ..Span::default()
        };
        self.final_norm(gpu, stream, ws, &[span])?;
        let (first, rows) = logits.rows(text_rows);
        if rows == 0 {
            return Ok(0);
        }
        // rows first.. of the final-norm'ed rows × the LM head [V, d]ᵀ → logit rows 0..
        let g = Linear {
            rows,
            x_row: first,
            y_row: 0,
            layer: 0,
            k: d,
            n: v,
        }
        .group();
        self.linear_f32(
            gpu,
            stream,
            &ws.final_hidden,
            self.weights.lm_head(),
            &mut ws.logits,
            &[g],
            false,
        )?;
        Ok(rows)
    }

    /// The logits of several finishing segments together: for each, the final norm of the rows it asks for (its last
    /// text row, or all) and their LM head — one span per item and one group of all the rows, so each gets the bits
    /// [`GpuModel::finish`] gives it alone (a row's norm and product never depend on the other rows of a launch or of
    /// a GEMM group: the LM head runs all the rows of a launch as one group).
    /// Runs in launches of at most [`MAX_GROUPS`] items and the rows [`Workspace::final_hidden`] and
    /// [`Workspace::logits`] hold (each item must fit alone: see [`Workspace::ensure_finish_rows`]). Returns each
    /// item's `[rows, V]` logits on the host (empty for `LogitsMode::None`), or, for an item that asks for its greedy
    /// id only ([`Finishing::argmax`]), that id: `argmax_rows_f32` over its logit row on the device, 4 bytes copied
    /// out instead of `4 · V`.
    pub fn finish_many(
        &self,
        gpu: &Gpu,
        stream: &std::sync::Arc<CudaStream>,
        ws: &mut Workspace,
        items: &[Finishing],
    ) -> Result<Vec<Finished>, KernelError> {
        let (d, v) = (self.cfg.llama.hidden_size, self.cfg.llama.vocab_size);
        let capacity = (ws.final_hidden.len() / d).min(ws.logits.len() / v);
        let mut out: Vec<Finished> = vec![(Vec::new(), None); items.len()];
        // the items whose logits come to the host first, then those that want their greedy id only, so that the rows
        // copied out of a launch are its first ones (a row's norm and LM head do not depend on where it lies)
        let wants_logits = |i: &usize| items[*i].logit_rows().1 > 0 && !items[*i].argmax_only();
        let mut asking: Vec<usize> = (0..items.len()).filter(wants_logits).collect();
        asking.extend((0..items.len()).filter(|&i| items[i].argmax_only()));
        let mut next = 0;
        while next < asking.len() {
            // the next launch: items in order while they fit
            let (mut spans, mut rows) = (Vec::new(), 0);
            let start = next;
            while next < asking.len() && spans.len() < MAX_GROUPS {
                let item = &items[asking[next]];
                let (first, n) = item.logit_rows();
                if rows + n > capacity {
                    if spans.is_empty() {
                        return Err(KernelError::InvalidArgument {
                            kernel: "finish_many".into(),
                            msg: format!("{n} logit rows, the workspace holds {capacity}"),
                        });
                    }
                    break;
                }
                spans.push(Span {
                    in_row: item.slot * ws.rows + first,
                    out_row: rows,
                    rows: n,
                    ..Span::default()
                });
                rows += n;
                next += 1;
            }
            let w = &self.weights;
            self.final_norm(gpu, stream, ws, &spans)?;
            // the items' rows follow one another in both buffers: one group of all of them (the LM head is read once;
            // a row's product does not depend on the other rows of its tile: `check::gemm_rows`); or one per item
            let item = |s: &Span| {
                Linear {
                    rows: s.rows,
                    x_row: s.out_row,
                    y_row: s.out_row,
                    layer: 0,
                    k: d,
                    n: v,
                }
                .group()
            };
            let groups: Vec<GemmGroup> = match merge_rows() {
                true => vec![item(&Span {
                    out_row: 0,
                    rows,
                    ..Span::default()
                })],
                false => spans.iter().map(item).collect(),
            };
            self.linear_f32(
                gpu,
                stream,
                &ws.final_hidden,
                w.lm_head(),
                &mut ws.logits,
                &groups,
                false,
            )?;
            let launch = &asking[start..next];
            // the greedy ids of the items that want only those: one id per item, in the launch's order
            let id_spans: Vec<Span> = launch
                .iter()
                .zip(&spans)
                .filter(|(i, _)| items[**i].argmax_only())
                .enumerate()
                .map(|(k, (_, s))| Span {
                    in_row: s.out_row,
                    out_row: k,
                    rows: 1,
                    ..Span::default()
                })
                .collect();
            let ids = match id_spans.is_empty() {
                true => Vec::new(),
                false => ws.greedy_ids(gpu, stream, &id_spans, v)?,
            };
            // the logit rows of the others: the launch's first rows
            let logit_rows: usize = launch
                .iter()
                .zip(&spans)
                .filter(|(i, _)| !items[**i].argmax_only())
                .map(|(_, s)| s.rows)
                .sum();
            let host = match logit_rows {
                0 => Vec::new(),
                n => ws.logits_to_host(stream, n * v)?,
            };
            let mut next_id = ids.into_iter();
            for (k, &i) in launch.iter().enumerate() {
                out[i] = match items[i].argmax_only() {
                    // the kernel's non-finite flag is dropped here: the host path of many requests never checked
                    true => (Vec::new(), next_id.next().map(|id| id & !NON_FINITE)),
                    false => {
                        let at = spans[k].out_row * v;
                        (host[at..at + spans[k].rows * v].to_vec(), None)
                    }
                };
            }
        }
        Ok(out)
    }
}
