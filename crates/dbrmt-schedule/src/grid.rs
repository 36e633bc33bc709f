//! One request's grid and its two orders.

/// A cell of the grid: layer `layer` of segment `segment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cell {
    pub layer: usize,
    pub segment: usize,
}

/// A cell tagged with the request it belongs to (several requests share one schedule when packed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Task {
    pub request: usize,
    pub cell: Cell,
}

/// Cells that may run together: no one of them depends on another.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Step {
    pub tasks: Vec<Task>,
}

/// An ordered list of steps; running them in order respects every dependency.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schedule {
    pub steps: Vec<Step>,
}

impl Schedule {
    /// Number of steps (grouped launches).
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether there is no step at all.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// All tasks in execution order.
    pub fn tasks(&self) -> impl Iterator<Item = &Task> + '_ {
        self.steps.iter().flat_map(|s| s.tasks.iter())
    }

    /// The largest number of tasks in one step (what a workspace must be sized for).
    pub fn max_width(&self) -> usize {
        self.steps.iter().map(|s| s.tasks.len()).max().unwrap_or(0)
    }
}

/// The dependency grid of one request: `layers` × `segments`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    pub layers: usize,
    pub segments: usize,
}

impl Grid {
    pub fn new(layers: usize, segments: usize) -> Self {
        Self { layers, segments }
    }

    /// Number of cells.
    pub fn len(&self) -> usize {
        self.layers * self.segments
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cells whose completion `cell` waits for: `(l − 1, s)` and `(l, s − 1)` where they exist.
    pub fn dependencies(&self, cell: Cell) -> impl Iterator<Item = Cell> {
        let below = (cell.layer > 0).then(|| Cell {
            layer: cell.layer - 1,
            segment: cell.segment,
        });
        let before = (cell.segment > 0).then(|| Cell {
            layer: cell.layer,
            segment: cell.segment - 1,
        });
        below.into_iter().chain(before)
    }

    /// The original execution order: segment by segment, each through all layers; one cell per step.
    pub fn sequential(&self) -> Schedule {
        let steps = (0..self.segments)
            .flat_map(|segment| (0..self.layers).map(move |layer| Cell { layer, segment }))
            .map(|cell| Step {
                tasks: vec![Task { request: 0, cell }],
            })
            .collect();
        Schedule { steps }
    }

    /// Diagonal batching: step `i` holds every cell with `l + s = i`, lowest layer first (ramp-up and ramp-down
    /// included), `segments + layers − 1` steps in all.
    pub fn diagonal(&self) -> Schedule {
        if self.is_empty() {
            return Schedule::default();
        }
        let steps = (0..self.segments + self.layers - 1)
            .map(|i| {
                let lo = i.saturating_sub(self.segments - 1);
                let hi = i.min(self.layers - 1);
                let tasks = (lo..=hi)
                    .map(|layer| Task {
                        request: 0,
                        cell: Cell {
                            layer,
                            segment: i - layer,
                        },
                    })
                    .collect();
                Step { tasks }
            })
            .collect();
        Schedule { steps }
    }
}
