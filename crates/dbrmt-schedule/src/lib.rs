//! Wavefront math for ARMT (the Associative Recurrent Memory Transformer): the layers × segments grid, its
//! sequential and diagonal orders, packing of several requests into one stream of steps, and pipeline
//! stages. No dependencies; usable by any wavefront executor.
//!
//! ARMT reads a long input segment by segment, and each layer carries its own memory state from one segment
//! to the next. So cell `(l, s)` (layer `l` of segment `s`) needs `(l − 1, s)` (the hidden rows of the layer
//! below) and `(l, s − 1)` (the memory state of layer `l` after the previous segment). Every cell on one
//! anti-diagonal `l + s = i` is independent of the others.
//!
//! A [`Schedule`] is a list of [`Step`]s; the cells of a step may run as one grouped launch. Three orders:
//!
//! - [`Grid::sequential`]: segment by segment, each through all layers; one cell per step.
//! - [`Grid::diagonal`]: diagonal batching; step `i` runs the whole anti-diagonal `l + s = i`, so
//!   `segments + layers − 1` steps instead of `segments · layers`.
//! - [`packed`]: several requests in one schedule, each layer running at most one cell per step, so one
//!   request's ramp-down overlaps the next one's ramp-up.
//!
//! [`Wavefront`] is the packed schedule while it runs: requests join and leave between steps, each a queue of passes
//! (whole segments, or new rows of an open segment while generating) appended as they become known.
//!
//! [`stages`] splits the layers into contiguous pipeline stages, one per device.
//!
//! ```
//! use dbrmt_schedule::Grid;
//!
//! // 3 layers, 4 segments: 6 steps, the widest of them running 3 cells at once.
//! let diagonal = Grid::new(3, 4).diagonal();
//! assert_eq!(diagonal.len(), 6);
//! assert_eq!(diagonal.max_width(), 3);
//! ```

mod grid;
mod packed;
mod stages;
mod tracker;
mod wavefront;

pub use grid::{Cell, Grid, Schedule, Step, Task};
pub use packed::packed;
pub use stages::{stages, StageError};
pub use tracker::Tracker;
pub use wavefront::{LiveTask, PassKind, Wavefront, WavefrontError};
