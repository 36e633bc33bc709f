//! Where the cells of one step chunk sit in the workspace, and each op's spans and GEMM groups per cell: the row
//! arithmetic of [`GpuModel::step`](super::GpuModel::step), kept apart from the launches so it is tested on the CPU.

use std::ops::Range;

use dbrmt_formats::ModelConfig;
use dbrmt_kernels::{gemm::GemmGroup, params::Span};

use super::model::merge_rows;
use super::runs;
use super::weights::kvb_rows;
use super::StepCell;

/// A cell's `nn.Linear` product on dense rows: `Y (+)= X · W[layer]ᵀ` for `rows` rows, X from row `x_row` of a
/// `[*, k]` buffer, Y from row `y_row` of a `[*, n]` buffer, W the `layer`-th `[n, k]` of a stacked weight.
#[derive(Debug, Clone, Copy)]
pub(super) struct Linear {
    pub(super) rows: usize,
    pub(super) x_row: usize,
    pub(super) y_row: usize,
    pub(super) layer: usize,
    /// Input width (the summed dimension).
    pub(super) k: usize,
    /// Output width.
    pub(super) n: usize,
}

impl Linear {
    pub(super) fn group(self) -> GemmGroup {
        let Linear {
            rows,
            x_row,
            y_row,
            layer,
            k,
            n,
        } = self;
        GemmGroup {
            a_offset: x_row * k,
            b_offset: layer * n * k,
            c_offset: y_row * n,
            m: rows,
            n,
            k,
            lda: k,
            ldb: k,
            ldc: n,
        }
    }
}

/// A cell's product with its memory state `A` (`[D, d]` per state): `Y[rows, d] = X[rows, D] · A[state]`, X from
/// row `x_row` of a `[*, D]` buffer (φ or kφ), Y from row `y_row` of a `[*, d]` buffer.
#[derive(Debug, Clone, Copy)]
pub(super) struct StateProduct {
    pub(super) rows: usize,
    pub(super) x_row: usize,
    pub(super) y_row: usize,
    pub(super) state: usize,
    pub(super) d_key: usize,
    pub(super) d: usize,
}

impl StateProduct {
    pub(super) fn group(self) -> GemmGroup {
        let StateProduct {
            rows,
            x_row,
            y_row,
            state,
            d_key,
            d,
        } = self;
        GemmGroup {
            a_offset: x_row * d_key,
            b_offset: state * d_key * d,
            c_offset: y_row * d,
            m: rows,
            n: d,
            k: d_key,
            lda: d_key,
            ldb: d,
            ldc: d,
        }
    }
}

/// The first packed scratch row and write rank of a chunk (0 for a step's only chunk).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct ScratchBase {
    pub(super) row: usize,
    pub(super) rank: usize,
}

/// Where the cells of one chunk sit in the workspace, and each op's spans and GEMM groups per cell (named per
/// tensor, as llm.c's `gpt2_forward` names its per-layer pointers).
///
/// Rows: cell `i` runs `rows(i)` rows (text, and memory unless open), held in its segment's hidden slot from
/// `hidden_row(i)` and packed one cell after another in the per-step scratch from `scratch_row(i)`; its segment's
/// q/k/v rows start at `qkv_segment_row(i)` (the scratch for a whole segment, its state's KV cache for an open one,
/// whose new rows RoPE moves there from the scratch, at a position the device holds); its write uses `M` scratch
/// rows from `write_rank(i) · M` (open cells do not write, so the write scratch holds the chunk's whole cells only).
#[derive(Debug)]
pub(super) struct Chunk<'a> {
    pub(super) cells: &'a [StepCell],
    /// The runs of cells that share one group per projection ([`runs::runs`]): adjacent open cells of one layer and
    /// segment-0 flag, or one cell alone.
    pub(super) runs: Vec<Range<usize>>,
    /// `(scratch row, rows)` of each cell.
    pub(super) packed: Vec<(usize, usize)>,
    /// Row of each cell's KV cache (its state's) in the q/k/v buffer.
    pub(super) cache_rows: Vec<usize>,
    /// Whole cells before each cell: where its write scratch rows are (`rank · M..`).
    pub(super) write_rank: Vec<usize>,
    /// Rows of a hidden slot, `T + M`.
    pub(super) slot_rows: usize,
    pub(super) d: usize,
    pub(super) mem: usize,
    pub(super) d_mem: usize,
    pub(super) d_key: usize,
    pub(super) inter: usize,
    pub(super) q_width: usize,
    pub(super) qkv_width: usize,
    /// The write product's width: `d_mem + d + 1` (`[K | V | β]`) padded to a multiple of 8 ([`kvb_rows`]).
    pub(super) kvb_width: usize,
}

impl<'a> Chunk<'a> {
    pub(super) fn new(
        cfg: &ModelConfig,
        cells: &'a [StepCell],
        slot_rows: usize,
        cache_row: impl Fn(usize) -> usize,
    ) -> Self {
        let (l, m) = (&cfg.llama, cfg.armt.num_mem_tokens);
        Chunk {
            cells,
            runs: match merge_rows() {
                true => runs::runs(cells),
                false => (0..cells.len()).map(|i| i..i + 1).collect(),
            },
            packed: packed_rows(cells, m),
            cache_rows: cells.iter().map(|x| cache_row(x.state)).collect(),
            write_rank: cells
                .iter()
                .scan(0, |n, x| {
                    let rank = *n;
                    *n += usize::from(x.open_at.is_none());
                    Some(rank)
                })
                .collect(),
            slot_rows,
            d: l.hidden_size,
            mem: m,
            d_mem: cfg.armt.d_mem,
            d_key: cfg.d_key(),
            inter: l.intermediate_size,
            q_width: l.q_dim(),
            qkv_width: l.q_dim() + 2 * l.kv_dim(),
            kvb_width: kvb_rows(cfg),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.cells.len()
    }

    /// This chunk's scratch placed after `base`: packed rows from `base.row`, write rows from rank `base.rank` (another
    /// group of the same step, running beside it on another stream, holds the scratch before it).
    pub(super) fn placed_at(mut self, base: ScratchBase) -> Self {
        for p in &mut self.packed {
            p.0 += base.row;
        }
        for r in &mut self.write_rank {
            *r += base.rank;
        }
        self
    }

    /// Where the scratch after this chunk's starts (for a chunk placed at 0).
    pub(super) fn scratch_end(&self) -> ScratchBase {
        ScratchBase {
            row: self.packed.iter().map(|&(_, rows)| rows).sum(),
            rank: self.cells.iter().filter(|x| x.open_at.is_none()).count(),
        }
    }

    /// Rows cell `i` runs.
    pub(super) fn rows(&self, i: usize) -> usize {
        self.packed[i].1
    }

    /// First row of cell `i`'s hidden slot.
    pub(super) fn hidden_row(&self, i: usize) -> usize {
        self.cells[i].slot * self.slot_rows
    }

    /// First row of cell `i` in the packed scratch.
    pub(super) fn scratch_row(&self, i: usize) -> usize {
        self.packed[i].0
    }

    /// The q/k/v row of cell `i`'s segment position 0: its scratch rows for a whole segment, its state's KV cache for
    /// an open one (whose new rows the q/k/v product writes to its scratch rows, and RoPE moves into the cache).
    pub(super) fn qkv_segment_row(&self, i: usize) -> usize {
        match self.cells[i].open_at {
            None => self.scratch_row(i),
            Some(_) => self.cache_rows[i],
        }
    }

    /// The largest position an open cell's new rows may start at (its KV cache holds a segment's `T` rows): the bound
    /// of its dynamic spans, whose position the device holds ([`super::Workspace::positions`]).
    pub(super) fn max_pos(&self, i: usize) -> usize {
        (self.slot_rows - self.mem).saturating_sub(self.rows(i))
    }

    /// Cell `i`'s rows from `in_row` to `out_row`, with its layer, state and segment-0 flag.
    pub(super) fn span(&self, i: usize, in_row: usize, out_row: usize) -> Span {
        let x = &self.cells[i];
        Span {
            in_row,
            out_row,
            rows: self.rows(i),
            layer: x.layer,
            flag: x.first_segment,
            state: x.state,
            ..Span::default()
        }
    }

    /// Hidden rows → packed scratch rows (the norms).
    pub(super) fn to_scratch(&self, i: usize) -> Span {
        self.span(i, self.hidden_row(i), self.scratch_row(i))
    }

    /// [`Chunk::read_q`] from the cell's rows rounded to bf16 in the packed scratch ([`Chunk::to_scratch`]): a merged
    /// run's rows follow one another there, so the run is one group ([`Chunk::merged`]).
    pub(super) fn read_q_from_scratch(&self, i: usize) -> GemmGroup {
        GemmGroup {
            a_offset: self.scratch_row(i) * self.d,
            ..self.read_q(i)
        }
    }

    /// The cell's hidden rows → the same rows of another buffer of the hidden layout (`hidden` → `hidden_bf16`).
    pub(super) fn in_hidden(&self, i: usize) -> Span {
        self.span(i, self.hidden_row(i), self.hidden_row(i))
    }

    /// Packed scratch rows → the same rows of another scratch buffer.
    pub(super) fn in_scratch(&self, i: usize) -> Span {
        self.span(i, self.scratch_row(i), self.scratch_row(i))
    }

    /// The read's last step: from the scratch rows of num and φ into the hidden rows.
    pub(super) fn read_apply(&self, i: usize) -> Span {
        Span {
            out_row: self.hidden_row(i),
            ..self.in_scratch(i)
        }
    }

    /// RoPE: a whole segment's q/k rows in place in the scratch; an open segment's new rows from the scratch into its
    /// KV cache at the position the device holds for its state (a dynamic span: a captured decode step replays at
    /// any position).
    pub(super) fn rotate(&self, i: usize) -> Span {
        match self.cells[i].open_at {
            None => self.in_scratch(i),
            Some(_) => Span {
                out_row: self.qkv_segment_row(i),
                pos: self.max_pos(i),
                dynamic: true,
                ..self.in_scratch(i)
            },
        }
    }

    /// Attention: keys from the segment's row 0 (for an open segment, its cache rows before the new ones, at the
    /// position the device holds), queries from `pos`, output to the attention scratch rows.
    pub(super) fn attend(&self, i: usize) -> Span {
        match self.cells[i].open_at {
            None => self.in_scratch(i),
            Some(_) => Span {
                in_row: self.qkv_segment_row(i),
                pos: self.max_pos(i),
                dynamic: true,
                ..self.in_scratch(i)
            },
        }
    }

    /// The write's M scratch rows of cell `i`.
    pub(super) fn mem_span(&self, i: usize) -> Span {
        let at = self.write_rank[i] * self.mem;
        Span {
            in_row: at,
            out_row: at,
            rows: self.mem,
            ..self.in_scratch(i)
        }
    }

    /// The read's query projection `u = H·W_qᵀ`: hidden rows × `mem_q[layer]` `[d_mem, d]` → u's scratch rows.
    pub(super) fn read_q(&self, i: usize) -> GemmGroup {
        Linear {
            rows: self.rows(i),
            x_row: self.hidden_row(i),
            y_row: self.scratch_row(i),
            layer: self.cells[i].layer,
            k: self.d,
            n: self.d_mem,
        }
        .group()
    }

    /// `g`, a group of run `r`'s first cell whose A and C rows are in packed scratch buffers, widened to the rows of
    /// every cell of the run (they follow one another in the scratch).
    pub(super) fn merged(&self, r: &Range<usize>, g: GemmGroup) -> GemmGroup {
        GemmGroup {
            m: r.clone().map(|i| self.rows(i)).sum(),
            ..g
        }
    }

    /// [`Chunk::merged`] with C moved to the run's rows of an f32 scratch `[.., n]` (num: the o and down products of a
    /// merged run, added to the hidden rows after by [`Chunk::scratch_to_hidden`]).
    pub(super) fn merged_to_scratch(&self, r: &Range<usize>, g: GemmGroup) -> GemmGroup {
        GemmGroup {
            c_offset: self.scratch_row(r.start) * g.n,
            ldc: g.n,
            ..self.merged(r, g)
        }
    }

    /// Cell `i`'s rows of the f32 scratch → its hidden rows (the residual add of a merged run's product).
    pub(super) fn scratch_to_hidden(&self, i: usize) -> Span {
        Span {
            out_row: self.hidden_row(i),
            ..self.in_scratch(i)
        }
    }

    /// The read's numerator `φ·A`: φ's scratch rows × the cell's state → num's scratch rows.
    pub(super) fn read_num(&self, i: usize) -> GemmGroup {
        StateProduct {
            rows: self.rows(i),
            x_row: self.scratch_row(i),
            y_row: self.scratch_row(i),
            state: self.cells[i].state,
            d_key: self.d_key,
            d: self.d,
        }
        .group()
    }

    /// The fused q/k/v projection: normed scratch rows × `qkv[layer]` `[q + 2·kv, d]` → the cell's scratch rows of
    /// the q/k/v buffer (an open cell's go to its KV cache through RoPE, [`Chunk::rotate`]).
    pub(super) fn qkv(&self, i: usize) -> GemmGroup {
        Linear {
            rows: self.rows(i),
            x_row: self.scratch_row(i),
            y_row: self.scratch_row(i),
            layer: self.cells[i].layer,
            k: self.d,
            n: self.qkv_width,
        }
        .group()
    }

    /// The o projection with the residual add: attention scratch rows × `o[layer]` `[d, q]` → += hidden rows.
    pub(super) fn o(&self, i: usize) -> GemmGroup {
        Linear {
            rows: self.rows(i),
            x_row: self.scratch_row(i),
            y_row: self.hidden_row(i),
            layer: self.cells[i].layer,
            k: self.q_width,
            n: self.d,
        }
        .group()
    }

    /// The fused gate/up projection: normed scratch rows × `gate_up[layer]` `[2I, d]` → gate/up scratch rows.
    pub(super) fn gate_up(&self, i: usize) -> GemmGroup {
        Linear {
            rows: self.rows(i),
            x_row: self.scratch_row(i),
            y_row: self.scratch_row(i),
            layer: self.cells[i].layer,
            k: self.d,
            n: 2 * self.inter,
        }
        .group()
    }

    /// The gate/up product with the SwiGLU fused (v2 GEMM): normed scratch rows × the interleaved `gate_up[layer]`
    /// `[2I, d]` → `silu(gate)·up` in the activation scratch rows `[.., I]`.
    pub(super) fn gate_up_swiglu(&self, i: usize) -> GemmGroup {
        GemmGroup {
            c_offset: self.scratch_row(i) * self.inter,
            ldc: self.inter,
            ..self.gate_up(i)
        }
    }

    /// The down projection with the residual add: activation scratch rows × `down[layer]` `[d, I]` → += hidden rows.
    pub(super) fn down(&self, i: usize) -> GemmGroup {
        Linear {
            rows: self.rows(i),
            x_row: self.scratch_row(i),
            y_row: self.hidden_row(i),
            layer: self.cells[i].layer,
            k: self.inter,
            n: self.d,
        }
        .group()
    }

    /// The write product `P·[W_k|W_v|w_β]ᵀ`: the M memory rows after the text rows of the hidden slot ×
    /// `mem_kvb[layer]` `[d_mem + d + 1, d]` → the cell's M write scratch rows.
    pub(super) fn write_kvb(&self, i: usize) -> GemmGroup {
        Linear {
            rows: self.mem,
            x_row: self.hidden_row(i) + self.cells[i].text_rows,
            y_row: self.write_rank[i] * self.mem,
            layer: self.cells[i].layer,
            k: self.d,
            n: self.kvb_width,
        }
        .group()
    }

    /// The write's `kφ·A_old`: kφ's M write scratch rows × the cell's state → ka's.
    pub(super) fn write_ka(&self, i: usize) -> GemmGroup {
        StateProduct {
            rows: self.mem,
            x_row: self.write_rank[i] * self.mem,
            y_row: self.write_rank[i] * self.mem,
            state: self.cells[i].state,
            d_key: self.d_key,
            d: self.d,
        }
        .group()
    }

    /// The state update `A[state] += Kᵀ·U`: kφ stored `[M, D]` is the transposed left operand of a `[D, d]` product
    /// over M, U the `[M, d]` rows of `β(V − V̄)`.
    pub(super) fn write_update(&self, i: usize) -> GemmGroup {
        let (m, dk, d) = (self.mem, self.d_key, self.d);
        let at = self.write_rank[i] * m;
        GemmGroup {
            a_offset: at * dk,
            b_offset: at * d,
            c_offset: self.cells[i].state * dk * d,
            m: dk,
            n: d,
            k: m,
            lda: dk,
            ldb: d,
            ldc: d,
        }
    }
}

/// `(offset, rows)` of each cell in the step's packed scratch.
pub(super) fn packed_rows(cells: &[StepCell], mem: usize) -> Vec<(usize, usize)> {
    let mut at = 0;
    cells
        .iter()
        .map(|c| {
            let r = c.rows(mem);
            at += r;
            (at - r, r)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::model::tests::config;

    /// The spans and groups of a chunk are those of the step as first written (positional offsets, kept here as the
    /// oracle): a whole first segment entering, a short one reading, an open one at position 3.
    #[test]
    fn chunk_offsets_are_the_steps() {
        let cfg = config();
        let cell = |layer, state, slot, text_rows, first_segment, open_at| StepCell {
            layer,
            state,
            slot,
            text_rows,
            first_segment,
            enters_at_token: None,
            open_at,
        };
        let cells = [
            StepCell {
                enters_at_token: Some(0),
                ..cell(0, 0, 2, 5, true, None)
            },
            cell(1, 3, 0, 2, false, None),
            cell(2, 1, 1, 1, false, Some(3)),
        ];
        let (r, cache) = (8, |layer: usize| 100 + 5 * layer);
        let at = Chunk::new(&cfg, &cells, r, cache);

        let (d, m, dm, dk, inter) = (8, 3, 2, 12, 6);
        let (q, qkv, kvb) = (8, 16, (dm + d + 1usize).next_multiple_of(8));
        let packed = packed_rows(&cells, m);
        assert_eq!(packed, [(0, 8), (8, 5), (13, 1)]);
        let hid = |x: &StepCell| x.slot * r;
        let segment_row = |i: usize, x: &StepCell| match x.open_at {
            None => packed[i].0,
            Some(_) => cache(x.state),
        };
        type Triple = (usize, usize, usize);
        let gemm = |m: usize, off: Triple, nk: (usize, usize), ld: Triple| GemmGroup {
            a_offset: off.0,
            b_offset: off.1,
            c_offset: off.2,
            m,
            n: nk.0,
            k: nk.1,
            lda: ld.0,
            ldb: ld.1,
            ldc: ld.2,
        };
        let span = |i: usize, x: &StepCell, in_row, out_row| Span {
            in_row,
            out_row,
            rows: packed[i].1,
            layer: x.layer,
            flag: x.first_segment,
            state: x.state,
            ..Span::default()
        };
        // an open cell's new rows may start at any position up to T − rows (T = slot rows − M)
        let t = r - m;
        for (i, x) in cells.iter().enumerate() {
            let rows = packed[i].1;
            let (open, bound) = (x.open_at.is_some(), if x.open_at.is_some() { t - rows } else { 0 });
            let in_scratch = span(i, x, packed[i].0, packed[i].0);
            assert_eq!(at.to_scratch(i), span(i, x, hid(x), packed[i].0));
            assert_eq!(at.in_scratch(i), in_scratch);
            assert_eq!(
                at.read_apply(i),
                Span {
                    in_row: packed[i].0,
                    out_row: hid(x),
                    ..in_scratch
                }
            );
            assert_eq!(
                at.rotate(i),
                Span {
                    out_row: segment_row(i, x),
                    pos: bound,
                    dynamic: open,
                    ..in_scratch
                }
            );
            assert_eq!(
                at.attend(i),
                Span {
                    in_row: segment_row(i, x),
                    pos: bound,
                    dynamic: open,
                    ..in_scratch
                }
            );
            assert_eq!(
                at.mem_span(i),
                Span {
                    in_row: i * m,
                    out_row: i * m,
                    rows: m,
                    ..in_scratch
                }
            );
            let p = packed[i].0;
            let (l, s) = (x.layer, x.state);
            assert_eq!(
                at.read_q(i),
                gemm(rows, (hid(x) * d, l * dm * d, p * dm), (dm, d), (d, d, dm))
            );
            assert_eq!(
                at.read_num(i),
                gemm(rows, (p * dk, s * dk * d, p * d), (d, dk), (dk, d, d))
            );
            assert_eq!(
                at.qkv(i),
                gemm(rows, (p * d, l * qkv * d, p * qkv), (qkv, d), (d, d, qkv))
            );
            assert_eq!(at.o(i), gemm(rows, (p * q, l * d * q, hid(x) * d), (d, q), (q, q, d)));
            let gu = 2 * inter;
            assert_eq!(
                at.gate_up(i),
                gemm(rows, (p * d, l * gu * d, p * gu), (gu, d), (d, d, gu))
            );
            assert_eq!(
                at.down(i),
                gemm(
                    rows,
                    (p * inter, l * d * inter, hid(x) * d),
                    (d, inter),
                    (inter, inter, d)
                )
            );
            let kvb_row = (hid(x) + x.text_rows) * d;
            assert_eq!(
                at.write_kvb(i),
                gemm(m, (kvb_row, l * kvb * d, i * m * kvb), (kvb, d), (d, d, kvb))
            );
            assert_eq!(
                at.write_ka(i),
                gemm(m, (i * m * dk, s * dk * d, i * m * d), (d, dk), (dk, d, d))
            );
            assert_eq!(
                at.write_update(i),
                gemm(dk, (i * m * dk, i * m * d, s * dk * d), (d, m), (dk, d, d))
            );
            // the v2 GEMM's memory projections read the bf16-rounded rows: the read's from the cell's scratch rows,
            // the write's from its write scratch rows
            // the memory's projections read the hidden rows in bf16 (`hidden_bf16`, the hidden layout) in place
            assert_eq!(at.in_hidden(i), span(i, x, hid(x), hid(x)));
            assert_eq!(at.read_q(i).a_offset, hid(x) * d);
            if x.open_at.is_none() {
                assert_eq!(at.write_kvb(i).a_offset, (hid(x) + x.text_rows) * d);
            }
        }
        // an open cell before whole ones: the write scratch goes by the rank among whole cells, not the index
        let reordered = [cells[2], cells[0], cells[1]];
        let at = Chunk::new(&cfg, &reordered, r, cache);
        for (i, rank) in [(1, 0), (2, 1)] {
            assert_eq!(at.mem_span(i).out_row, rank * m);
            assert_eq!(at.write_kvb(i).c_offset, rank * m * kvb);
        }
        // three open cells of layer 2 after a whole cell: one run of three, its groups widened over their scratch rows
        let open = |state, slot, p| cell(2, state, slot, 1, false, Some(p));
        let cells = [
            cell(2, 0, 0, 5, false, None),
            open(4, 1, 3),
            open(7, 3, 0),
            open(1, 2, 4),
        ];
        let at = Chunk::new(&cfg, &cells, r, cache);
        assert_eq!(at.runs, [0..1, 1..4]);
        let run = 1..4;
        assert_eq!(at.scratch_row(1), 8);
        let g = at.merged(&run, at.qkv(1));
        assert_eq!((g.m, g.a_offset, g.c_offset), (3, 8 * d, 8 * qkv));
        assert_eq!((g.b_offset, g.ldc), (2 * qkv * d, qkv));
        for (i, s) in [(1, 4), (2, 7), (3, 1)] {
            let x = &cells[i];
            // RoPE moves each new row from the run's scratch rows into its own cache
            assert_eq!(
                (at.rotate(i).in_row, at.rotate(i).out_row, at.rotate(i).state),
                (8 + i - 1, cache(s), s)
            );
            assert_eq!(
                at.scratch_to_hidden(i),
                Span {
                    in_row: 8 + i - 1,
                    out_row: x.slot * r,
                    ..at.in_scratch(i)
                }
            );
        }
        let o = at.merged_to_scratch(&run, at.o(1));
        assert_eq!((o.m, o.a_offset, o.c_offset, o.ldc), (3, 8 * q, 8 * d, d));
        let down = at.merged_to_scratch(&run, at.down(1));
        assert_eq!((down.m, down.a_offset, down.c_offset), (3, 8 * inter, 8 * d));
        let act = at.merged(&run, at.gate_up_swiglu(1));
        assert_eq!((act.m, act.a_offset, act.c_offset), (3, 8 * d, 8 * inter));
        // the read's q of a merged run: one group over the run's rows in the packed scratch
        let q_read = at.merged(&run, at.read_q_from_scratch(1));
        assert_eq!((q_read.m, q_read.a_offset, q_read.c_offset), (3, 8 * d, 8 * dm));
        // a run of one is the cell's own group
        assert_eq!(at.merged(&(0..1), at.qkv(0)), at.qkv(0));
        // the LM head of `finish`: rows first.. of the final hidden rows → logit rows 0..
        let (first, rows, v) = (4, 1, 11);
        let lm_head = Linear {
            rows,
            x_row: first,
            y_row: 0,
            layer: 0,
            k: d,
            n: v,
        };
        assert_eq!(lm_head.group(), gemm(rows, (first * d, 0, 0), (v, d), (d, d, v)));
    }

    /// Two groups of one step placed side by side (two-stream steps) take the rows and write ranks the step's one chunk
    /// gives the same cells: the upper group's scratch starts where the lower group's ends, nothing shared.
    #[test]
    fn groups_side_by_side_are_the_steps_rows() {
        let cfg = config();
        let m = cfg.armt.num_mem_tokens;
        let cell = |layer, slot, text_rows| StepCell {
            layer,
            state: layer,
            slot,
            text_rows,
            first_segment: false,
            enters_at_token: None,
            open_at: None,
        };
        let cells = [cell(0, 3, 5), cell(1, 0, 5), cell(2, 1, 2), cell(3, 2, 5)];
        let cache = |layer: usize| 100 + 5 * layer;
        let whole = Chunk::new(&cfg, &cells, 8, cache);
        let low = Chunk::new(&cfg, &cells[..2], 8, cache);
        let base = low.scratch_end();
        assert_eq!(
            base,
            ScratchBase {
                row: 2 * (5 + m),
                rank: 2
            }
        );
        let high = Chunk::new(&cfg, &cells[2..], 8, cache).placed_at(base);
        for i in 0..2 {
            assert_eq!(low.scratch_row(i), whole.scratch_row(i));
            assert_eq!(low.mem_span(i), whole.mem_span(i));
            assert_eq!(low.write_update(i), whole.write_update(i));
            assert_eq!(high.scratch_row(i), whole.scratch_row(i + 2));
            assert_eq!(high.mem_span(i), whole.mem_span(i + 2));
            assert_eq!(high.write_update(i), whole.write_update(i + 2));
            assert_eq!(high.read_apply(i), whole.read_apply(i + 2));
        }
    }
}
