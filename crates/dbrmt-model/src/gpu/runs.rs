//! Which cells of a chunk share one GEMM group: **runs** of adjacent open cells (new rows of generating requests) of
//! one layer with the same segment-0 flag. Their rows lie one after another in the packed scratch, so each projection
//! of the run — q/k/v, o, gate/up, down, the read's q — is one group of all their rows, reading the layer's weights
//! once instead of once per request. A GEMM's output row depends only on its own A row, B and the order over k, never
//! on the other rows of its tile (`dbrmt_kernels::check::gemm_rows` checks it, bitwise, at every position of a tile),
//! so each request's rows get the bits they get alone. RoPE, attention and the read's `φ·A` stay per cell (each
//! request's positions, KV cache and state); the outputs that do not live in the scratch are moved there after the
//! product: the q/k/v rows to each request's cache rows (by RoPE, as for every open cell), the o and down products
//! added to each request's hidden rows (`add_rows_f32`, the one f32 add of the fused residual add).
//!
//! Whole cells are runs of one cell and keep their launches as they are; so does an open cell alone.

use std::ops::Range;

use super::StepCell;

/// The runs of `cells`, in order, covering every cell once.
pub(crate) fn runs(cells: &[StepCell]) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for (i, c) in cells.iter().enumerate() {
        let joins = match out.last() {
            Some(r) => {
                let p = &cells[r.end - 1];
                c.open_at.is_some() && p.open_at.is_some() && (p.layer, p.first_segment) == (c.layer, c.first_segment)
            }
            None => false,
        };
        match out.last_mut() {
            Some(r) if joins => r.end = i + 1,
            _ => out.push(i..i + 1),
        }
    }
    out
}

/// The cells of `runs` that run alone (runs of one cell) and the merged runs (two or more cells).
pub(crate) fn split(runs: &[Range<usize>]) -> (Vec<usize>, Vec<Range<usize>>) {
    let alone = runs.iter().filter(|r| r.len() == 1).map(|r| r.start).collect();
    let merged = runs.iter().filter(|r| r.len() > 1).cloned().collect();
    (alone, merged)
}

/// Sorts the cells of a step so that open cells of one layer and segment-0 flag are adjacent (after the layer's whole
/// cell): returns the order as indices into `cells`. Any order of a step's cells is valid (they are independent).
pub(crate) fn merge_order(cells: &[StepCell]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..cells.len()).collect();
    order.sort_by_key(|&i| {
        let c = &cells[i];
        (c.layer, c.open_at.is_some(), c.first_segment)
    });
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(layer: usize, open: bool, first_segment: bool) -> StepCell {
        StepCell {
            layer,
            state: 0,
            slot: 0,
            text_rows: 1,
            first_segment,
            enters_at_token: None,
            open_at: open.then_some(3),
        }
    }

    #[test]
    fn open_cells_of_one_layer_and_flag_merge() {
        let cells = [
            cell(0, false, false),
            cell(0, true, false),
            cell(0, true, false),
            cell(0, true, true),
            cell(1, true, true),
            cell(1, true, true),
            cell(1, false, false),
            cell(2, true, false),
        ];
        let r = runs(&cells);
        assert_eq!(r, [0..1, 1..3, 3..4, 4..6, 6..7, 7..8]);
        let (alone, merged) = split(&r);
        assert_eq!(alone, [0, 3, 6, 7]);
        assert_eq!(merged, [1..3, 4..6]);
    }

    #[test]
    fn the_merge_order_groups_a_layers_open_cells() {
        let cells = [
            cell(1, true, false),
            cell(0, true, false),
            cell(1, false, false),
            cell(0, true, true),
            cell(1, true, false),
            cell(0, true, false),
        ];
        let order = merge_order(&cells);
        assert_eq!(order, [1, 5, 3, 2, 0, 4]);
        let sorted: Vec<StepCell> = order.iter().map(|&i| cells[i]).collect();
        assert_eq!(runs(&sorted), [0..2, 2..3, 3..4, 4..6]);
    }
}
