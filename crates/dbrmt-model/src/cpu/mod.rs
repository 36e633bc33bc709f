//! The f32 CPU model: the oracle every GPU result is checked against.
//!
//! Plain and straightforward: one cell `(l, s)` is the read (from segment 1 on), the LLaMA decoder layer, and the
//! memory write, each through the op references of `dbrmt_kernels::reference`. A cell's arithmetic depends only
//! on its own inputs, never on which other cells share its step, so every valid schedule — sequential, diagonal,
//! packed, with any number of threads — gives bitwise identical results.

mod cell;
mod executor;
mod packed;
mod session;

pub use cell::{CellInput, KvCache};
pub use executor::{CpuModel, Resume, RunOptions};
pub use packed::PackedExecutor;
pub use session::Session;
