//! Packing several requests into one stream of steps.

use crate::{Cell, Schedule, Step, Task};

/// One schedule for several requests that share the same `layers` (e.g. many prompts served by one model).
///
/// Request `r` has `segments[r]` segments (0 is allowed and contributes nothing); every task carries
/// `request = r`. Memory state is per request, so cells of different requests never depend on each other,
/// and a step may mix requests: while one request ramps down through the upper layers, the next one is
/// already ramping up through the lower ones, so layer slots do not sit idle between requests.
///
/// The order is a greedy list schedule, simulated step by step: in each step, every layer runs at most one
/// cell, namely the ready cell of that layer (both dependencies completed in earlier steps) with the lowest
/// request index. Tasks within a step are ordered by layer. Consequences:
///
/// - For a single request this is exactly [`Grid::diagonal`](crate::Grid::diagonal).
/// - A request enters layer 0 as soon as layer 0 is free, so layer 0 never idles, and every layer runs the
///   same sequence of cells one step after the layer below. With `N = Σ segments[r] > 0` the schedule has
///   exactly `N + layers − 1` steps, the same as one request of `N` segments.
///
/// Cost: O(requests + total cells + steps · layers).
///
/// ```
/// use dbrmt_schedule::{packed, Grid};
///
/// assert_eq!(packed(3, &[4]), Grid::new(3, 4).diagonal());
/// let schedule = packed(3, &[4, 0, 2]);
/// assert_eq!(schedule.len(), 4 + 2 + 3 - 1);
/// ```
pub fn packed(layers: usize, segments: &[usize]) -> Schedule {
    // Requests with no segments never have a cell; dropping them up front keeps cursor moves O(1).
    let requests: Vec<usize> = (0..segments.len()).filter(|&r| segments[r] > 0).collect();
    let mut remaining = layers * requests.iter().map(|&r| segments[r]).sum::<usize>();
    let mut cursors = vec![Cursor::default(); layers];
    let mut steps = Vec::new();

    while remaining > 0 {
        let mut tasks = Vec::new();
        // Where the layer below stood when this step began: its cells before that point are complete.
        let mut below_at_start: Option<Cursor> = None;
        for (layer, cursor) in cursors.iter_mut().enumerate() {
            let at_start = *cursor;
            if cursor.is_ready(&requests, below_at_start) {
                let request = requests[cursor.position];
                let cell = Cell {
                    layer,
                    segment: cursor.segment,
                };
                tasks.push(Task { request, cell });
                cursor.advance(segments[request]);
                remaining -= 1;
            }
            below_at_start = Some(at_start);
        }
        steps.push(Step { tasks });
    }
    Schedule { steps }
}

/// The next cell one layer will run: segment `segment` of the request at `position` among the non-empty ones.
///
/// Why one cursor per layer is enough: layer 0 has no dependency below, so it takes the requests strictly one
/// after another. If layer `l − 1` does so, then whenever a later request has a ready cell at layer `l`, all
/// of the earlier requests' cells at layer `l − 1` are complete, so the earliest unfinished request at layer
/// `l` is ready too and wins. Hence every layer finishes each request before starting the next, the only
/// candidate for a layer is its cursor, and the cells complete at a layer are exactly those before its cursor
/// (ordered by request, then segment).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Cursor {
    // Field order matters: the derived `Ord` compares by request, then segment.
    position: usize,
    segment: usize,
}

impl Cursor {
    /// Whether this cursor's cell can run in the current step, given where the layer below stood when the
    /// step began (`None` for layer 0). The previous segment of the same layer is always complete: a layer
    /// runs one cell per step, so it finished in an earlier step.
    fn is_ready(&self, requests: &[usize], below_at_start: Option<Cursor>) -> bool {
        let unfinished = self.position < requests.len();
        unfinished && below_at_start.is_none_or(|below| below > *self)
    }

    /// Moves past the current cell of a request that has `segments` segments.
    fn advance(&mut self, segments: usize) {
        self.segment += 1;
        if self.segment == segments {
            *self = Cursor {
                position: self.position + 1,
                segment: 0,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Grid;

    fn cells(step: &Step) -> Vec<(usize, usize, usize)> {
        step.tasks
            .iter()
            .map(|t| (t.request, t.cell.layer, t.cell.segment))
            .collect()
    }

    #[test]
    fn no_requests_or_no_layers_give_an_empty_schedule() {
        assert!(packed(4, &[]).is_empty());
        assert!(packed(4, &[0, 0]).is_empty());
        assert!(packed(0, &[3, 2]).is_empty());
    }

    #[test]
    fn one_request_is_the_diagonal() {
        for layers in 1..6 {
            for segments in 0..8 {
                assert_eq!(packed(layers, &[segments]), Grid::new(layers, segments).diagonal());
            }
        }
    }

    #[test]
    fn the_next_request_ramps_up_while_the_previous_ramps_down() {
        let schedule = packed(2, &[2, 0, 1]);
        let steps: Vec<_> = schedule.steps.iter().map(cells).collect();
        assert_eq!(
            steps,
            vec![
                vec![(0, 0, 0)],
                vec![(0, 0, 1), (0, 1, 0)],
                vec![(2, 0, 0), (0, 1, 1)],
                vec![(2, 1, 0)],
            ]
        );
    }
}
