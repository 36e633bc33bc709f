//! Wavefront math for ARMT: the layers × segments grid, its sequential and diagonal orders, packing of several
//! requests into one stream of steps, and pipeline stages. No dependencies; usable by any wavefront executor.
//!
//! Cell `(l, s)` needs `(l − 1, s)` (the hidden rows of the layer below) and `(l, s − 1)` (the memory state of
//! layer `l` after the previous segment). Every cell on one anti-diagonal `l + s = i` is independent of the others.

mod grid;
mod packed;
mod stages;

pub use grid::{Cell, Grid, Schedule, Step, Task};
pub use packed::packed;
pub use stages::{stages, StageError};
