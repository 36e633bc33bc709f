//! Property tests of the three orders and of pipeline stages, against the independent checkers in `support`.

mod support;

use std::collections::BTreeSet;

use dbrmt_schedule::{packed, stages, Grid, StageError};
use proptest::prelude::*;
use support::*;

/// Runs a checker and turns its complaint into a proptest failure.
fn holds(check: Result<(), String>) -> Result<(), TestCaseError> {
    check.map_err(TestCaseError::fail)
}

fn single_grid() -> impl Strategy<Value = Grid> {
    (1usize..12, 1usize..30).prop_map(|(layers, segments)| Grid::new(layers, segments))
}

fn requests() -> impl Strategy<Value = (usize, Vec<usize>)> {
    (1usize..12, prop::collection::vec(0usize..20, 1..6))
}

proptest! {
    #[test]
    fn sequential_runs_each_cell_once_after_its_dependencies(grid in single_grid()) {
        let schedule = grid.sequential();
        holds(check_each_cell_once(&schedule, grid.layers, &[grid.segments]))?;
        holds(check_dependencies_earlier(&schedule))?;
        prop_assert_eq!(schedule.len(), grid.len());
        prop_assert_eq!(schedule.max_width(), 1);
    }

    #[test]
    fn diagonal_runs_each_cell_once_after_its_dependencies(grid in single_grid()) {
        let schedule = grid.diagonal();
        holds(check_each_cell_once(&schedule, grid.layers, &[grid.segments]))?;
        holds(check_dependencies_earlier(&schedule))?;
        holds(check_one_cell_per_layer(&schedule))?;
        holds(check_step_independent(&schedule))?;
        holds(check_layers_ascending(&schedule))?;
    }

    #[test]
    fn diagonal_step_i_is_the_anti_diagonal_l_plus_s_eq_i(grid in single_grid()) {
        let schedule = grid.diagonal();
        prop_assert_eq!(schedule.len(), grid.segments + grid.layers - 1);
        prop_assert_eq!(schedule.max_width(), grid.segments.min(grid.layers));
        for (i, tasks) in keys(&schedule).into_iter().enumerate() {
            let got: BTreeSet<Key> = tasks.into_iter().collect();
            let want: BTreeSet<Key> = all_cells(grid.layers, &[grid.segments])
                .into_iter()
                .filter(|&(_, l, s)| l + s == i)
                .collect();
            prop_assert_eq!(got, want, "step {}", i);
        }
    }

    #[test]
    fn packed_runs_each_cell_once_after_its_dependencies((layers, segments) in requests()) {
        let schedule = packed(layers, &segments);
        holds(check_each_cell_once(&schedule, layers, &segments))?;
        holds(check_dependencies_earlier(&schedule))?;
        holds(check_one_cell_per_layer(&schedule))?;
        holds(check_step_independent(&schedule))?;
        holds(check_layers_ascending(&schedule))?;
        prop_assert!(schedule.steps.iter().all(|step| !step.tasks.is_empty()), "an empty step");
    }

    #[test]
    fn packed_never_idles_a_slot_with_a_ready_cell((layers, segments) in requests()) {
        holds(check_never_idles_ready_slot(&packed(layers, &segments), layers, &segments))?;
    }

    #[test]
    fn packed_gives_each_slot_to_the_lowest_ready_request((layers, segments) in requests()) {
        holds(check_fifo_choice(&packed(layers, &segments), layers, &segments))?;
    }

    #[test]
    fn packed_one_request_is_the_diagonal(layers in 1usize..12, segments in 0usize..20) {
        prop_assert_eq!(packed(layers, &[segments]), Grid::new(layers, segments).diagonal());
    }

    /// Back to back, layer 0 never waits, so the whole batch takes as long as one request of all the
    /// segments: the bound `Σ n + L − 1` is met exactly.
    #[test]
    fn packed_takes_total_segments_plus_layers_minus_one_steps((layers, segments) in requests()) {
        let total: usize = segments.iter().sum();
        let steps = packed(layers, &segments).len();
        if total == 0 {
            prop_assert_eq!(steps, 0);
        } else {
            prop_assert_eq!(steps, total + layers - 1);
        }
    }

    #[test]
    fn stages_split_layers_into_even_contiguous_runs(
        (layers, devices) in (1usize..64).prop_flat_map(|layers| (Just(layers), 1..=layers)),
    ) {
        let ranges = stages(layers, devices).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(ranges.len(), devices);
        prop_assert_eq!(ranges[0].start, 0);
        prop_assert_eq!(ranges[devices - 1].end, layers);
        for pair in ranges.windows(2) {
            prop_assert_eq!(pair[0].end, pair[1].start);
            prop_assert!(pair[0].len() >= pair[1].len(), "larger stages first: {:?}", ranges);
        }
        let sizes: Vec<usize> = ranges.iter().map(|r| r.len()).collect();
        let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        prop_assert!(*min >= 1 && max - min <= 1, "sizes {:?}", sizes);
    }

    #[test]
    fn stages_reject_impossible_splits(layers in 0usize..64, extra in 1usize..8) {
        prop_assert_eq!(stages(layers, 0), Err(StageError::NoDevices));
        prop_assert_eq!(stages(0, extra), Err(StageError::NoLayers));
        if layers > 0 {
            let devices = layers + extra;
            prop_assert_eq!(
                stages(layers, devices),
                Err(StageError::MoreDevicesThanLayers { layers, devices })
            );
        }
    }
}

/// The checkers themselves must catch the faults they exist for.
mod checkers_catch_faults {
    use super::*;
    use dbrmt_schedule::{Cell, Schedule, Step, Task};

    fn schedule(steps: &[&[Key]]) -> Schedule {
        let step = |tasks: &[Key]| Step {
            tasks: tasks
                .iter()
                .map(|&(request, layer, segment)| Task {
                    request,
                    cell: Cell { layer, segment },
                })
                .collect(),
        };
        Schedule {
            steps: steps.iter().map(|tasks| step(tasks)).collect(),
        }
    }

    #[test]
    fn missing_and_repeated_cells() {
        let missing = schedule(&[&[(0, 0, 0)]]);
        assert!(check_each_cell_once(&missing, 2, &[1]).is_err());
        let repeated = schedule(&[&[(0, 0, 0)], &[(0, 0, 0)]]);
        assert!(check_each_cell_once(&repeated, 1, &[1]).is_err());
    }

    #[test]
    fn dependency_in_the_same_step() {
        let same_step = schedule(&[&[(0, 0, 0), (0, 1, 0)]]);
        assert!(check_dependencies_earlier(&same_step).is_err());
        assert!(check_step_independent(&same_step).is_err());
    }

    #[test]
    fn two_cells_of_one_layer() {
        let crowded = schedule(&[&[(0, 0, 0), (1, 0, 0)]]);
        assert!(check_one_cell_per_layer(&crowded).is_err());
    }

    #[test]
    fn idle_slot_and_unfair_choice() {
        // Request 1 could have entered layer 0 in step 1.
        let idle = schedule(&[&[(0, 0, 0)], &[(0, 1, 0)], &[(1, 0, 0)], &[(1, 1, 0)]]);
        assert!(check_never_idles_ready_slot(&idle, 2, &[1, 1]).is_err());
        // Request 1 jumps ahead of request 0 at layer 0.
        let unfair = schedule(&[&[(1, 0, 0)], &[(0, 0, 0), (1, 1, 0)], &[(0, 1, 0)]]);
        assert!(check_fifo_choice(&unfair, 2, &[1, 1]).is_err());
        assert!(check_never_idles_ready_slot(&unfair, 2, &[1, 1]).is_ok());
    }
}
