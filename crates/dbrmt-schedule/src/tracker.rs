//! Following a schedule as it runs: which cells are done, and whether the next step may start.
//!
//! An executor calls [`Tracker::check_step`] before launching a step and [`Tracker::complete`] after it; a step that
//! is out of range, not ready, or not independent is refused with a message instead of computing garbage.

use crate::Task;

/// The progress of every request of a run through its grid.
#[derive(Debug, Clone)]
pub struct Tracker {
    layers: usize,
    /// Per request: layers each segment has passed.
    layers_done: Vec<Vec<usize>>,
    /// Per request: the next segment each layer expects.
    next_segment: Vec<Vec<usize>>,
}

impl Tracker {
    /// A run of `layers` layers over requests of `segments[r]` segments each.
    pub fn new(layers: usize, segments: &[usize]) -> Self {
        Self {
            layers,
            layers_done: segments.iter().map(|&n| vec![0; n]).collect(),
            next_segment: segments.iter().map(|_| vec![0; layers]).collect(),
        }
    }

    /// Checks that every task of a step is in range, has both dependencies done, and that no two tasks of the step
    /// share a request's layer or segment.
    pub fn check_step(&self, tasks: &[Task]) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for t in tasks {
            let (l, s, r) = (t.cell.layer, t.cell.segment, t.request);
            let Some(done) = self.layers_done.get(r) else {
                return Err(format!(
                    "task of request {r} but only {} requests",
                    self.layers_done.len()
                ));
            };
            if l >= self.layers || s >= done.len() {
                return Err(format!(
                    "cell ({l}, {s}) outside the {} × {} grid of request {r}",
                    self.layers,
                    done.len()
                ));
            }
            if done[s] != l || self.next_segment[r][l] != s {
                return Err(format!("cell ({l}, {s}) of request {r} runs before its dependencies"));
            }
            if !seen.insert((r, l, true)) || !seen.insert((r, s, false)) {
                return Err(format!("two cells of request {r} share layer {l} or segment {s}"));
            }
        }
        Ok(())
    }

    /// Marks a task done (after [`Tracker::check_step`] accepted its step).
    pub fn complete(&mut self, task: &Task) {
        self.layers_done[task.request][task.cell.segment] += 1;
        self.next_segment[task.request][task.cell.layer] += 1;
    }

    /// Whether every cell of request `r` has run.
    pub fn finished(&self, r: usize) -> bool {
        self.layers_done[r].iter().all(|&l| l == self.layers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cell, Grid};

    fn task(layer: usize, segment: usize) -> Task {
        Task {
            request: 0,
            cell: Cell { layer, segment },
        }
    }

    #[test]
    fn follows_a_valid_schedule_and_refuses_bad_steps() {
        let grid = Grid::new(3, 2);
        let mut t = Tracker::new(3, &[2]);
        assert!(t
            .check_step(&[task(1, 0)])
            .unwrap_err()
            .contains("before its dependencies"));
        assert!(t.check_step(&[task(0, 2)]).unwrap_err().contains("outside"));
        assert!(t.check_step(&[task(0, 0), task(0, 0)]).unwrap_err().contains("share"));
        for step in grid.diagonal().steps {
            t.check_step(&step.tasks).unwrap();
            step.tasks.iter().for_each(|x| t.complete(x));
        }
        assert!(t.finished(0));
        let mut partial = Tracker::new(3, &[2]);
        partial.complete(&task(0, 0));
        assert!(!partial.finished(0));
    }
}
