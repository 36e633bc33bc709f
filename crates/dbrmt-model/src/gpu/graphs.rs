//! Decode steps as CUDA graphs: a step whose cells are all open (the new rows of generating segments: a decode
//! token's layer, many requests' at once) is about a dozen short launches, and with small models the host's launch
//! calls, not the GPU, set the pace (`bench requests` prints the host's wait for the GPU: SmolLM2 decode waited 5 ms
//! of 214). Such a step is captured once per shape and replayed with one `cuGraphLaunch`; a session's decoded token
//! is one graph for its whole pass (every layer's step, the final norm and the LM head: `session.rs`).
//!
//! A shape is everything a step's launch parameters are made of but the positions: the cells (layer, state, hidden
//! slot, rows, flags, where the entering ids are) and the buffers (their device addresses and lengths), so a replay
//! runs exactly the launches the step would make. The positions of open cells — the one thing that changes from token
//! to token — are read by the kernels from [`super::Workspace::positions`] (dynamic spans), set before each step.
//! A shape is captured the second time it is seen (a one-off shape runs as plain launches); a capture that fails
//! (a driver without programmatic edges in graphs, say) leaves that shape to plain launches for good. Replays give
//! the launches' bits (`gpu_engine`'s `decode_graphs_change_no_bit`); `DBRMT_GRAPHS=off` turns graphs off.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
use cudarc::driver::{CudaGraph, CudaSlice, CudaStream, DevicePtr, DeviceRepr};
use dbrmt_kernels::{switches::RuntimeSwitch, KernelError};

use super::StepCell;

/// Shapes kept at most (past it the cache starts again: each holds a few kilobytes of launch parameters).
const MAX_GRAPHS: usize = 256;

/// The captured steps of one workspace.
#[derive(Default)]
pub(crate) struct StepGraphs {
    graphs: HashMap<StepShape, Capture>,
}

impl fmt::Debug for StepGraphs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StepGraphs({} shapes)", self.graphs.len())
    }
}

/// What is known of a shape.
enum Capture {
    /// Seen once: the next time it is captured.
    Seen,
    Graph(SendGraph),
    /// The capture failed: plain launches.
    Failed,
}

/// A captured graph that may move to another thread with its workspace.
struct SendGraph(CudaGraph);

// SAFETY: a CUDA graph and its executable are driver handles with no thread affinity; the driver asks only that calls
// on one graph not run concurrently (cudarc's CudaGraph is !Send for that reason). A SendGraph is owned by one
// workspace, used through `&mut` (never shared: no Sync), so moving it to another thread cannot make two calls race.
unsafe impl Send for SendGraph {}

/// A step's launch parameters but the positions: its cells and its buffers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct StepShape {
    cells: Vec<CellShape>,
    buffers: Vec<(u64, usize)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct CellShape {
    layer: usize,
    state: usize,
    slot: usize,
    text_rows: usize,
    first_segment: bool,
    enters_at_token: Option<usize>,
}

/// Collects the device addresses and lengths of a step's buffers.
pub(crate) struct Buffers<'s> {
    stream: &'s CudaStream,
    out: Vec<(u64, usize)>,
}

impl<'s> Buffers<'s> {
    pub(crate) fn new(stream: &'s CudaStream) -> Self {
        Self {
            stream,
            out: Vec::with_capacity(32),
        }
    }

    pub(crate) fn add<T: DeviceRepr>(&mut self, buf: &CudaSlice<T>) -> &mut Self {
        // event tracking is off (`Gpu::new`): the guard records nothing
        let (ptr, _guard) = buf.device_ptr(self.stream);
        self.out.push((ptr, buf.len()));
        self
    }

    /// Another value the launches depend on (a stream handle).
    pub(crate) fn add_raw(&mut self, value: u64) -> &mut Self {
        self.out.push((value, 0));
        self
    }

    /// The addresses and lengths collected.
    pub(crate) fn into_inner(self) -> Vec<(u64, usize)> {
        self.out
    }
}

impl StepShape {
    /// The shape of a step of `cells` over the buffers `buffers` collects (addresses and lengths, [`Buffers`]; only
    /// called for such a step), if graphs may run it: every cell open, graphs on.
    pub(crate) fn of(cells: &[StepCell], buffers: impl FnOnce() -> Vec<(u64, usize)>) -> Option<StepShape> {
        if !graphs_enabled() || cells.is_empty() || cells.iter().any(|c| c.open_at.is_none()) {
            return None;
        }
        let buffers = buffers();
        let cells = cells
            .iter()
            .map(|c| CellShape {
                layer: c.layer,
                state: c.state,
                slot: c.slot,
                text_rows: c.text_rows,
                first_segment: c.first_segment,
                enters_at_token: c.enters_at_token,
            })
            .collect();
        Some(StepShape { cells, buffers })
    }
}

impl StepGraphs {
    pub(crate) fn clear(&mut self) {
        self.graphs.clear();
    }

    /// Shapes with a captured graph.
    pub(crate) fn captured(&self) -> usize {
        self.graphs.values().filter(|c| matches!(c, Capture::Graph(_))).count()
    }

    /// Runs the step of `shape` on `stream`: its graph's replay when there is one; else `launch` (the step's plain
    /// launches), captured into a graph the second time the shape is seen. Returns whether a graph ran.
    pub(crate) fn run<W>(
        &mut self,
        stream: &Arc<CudaStream>,
        shape: StepShape,
        work: &mut W,
        mut launch: impl FnMut(&mut W) -> Result<(), KernelError>,
    ) -> Result<bool, KernelError> {
        match self.graphs.get(&shape) {
            Some(Capture::Graph(SendGraph(g))) => {
                g.launch()?;
                return Ok(true);
            }
            Some(Capture::Failed) => {
                launch(work)?;
                return Ok(false);
            }
            Some(Capture::Seen) => {}
            None => {
                if self.graphs.len() >= MAX_GRAPHS {
                    self.graphs.clear();
                }
                self.graphs.insert(shape, Capture::Seen);
                launch(work)?;
                return Ok(false);
            }
        }
        // the second time: capture the launches (nothing runs yet), then replay them
        stream.begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED)?;
        let launched = launch(work);
        let captured = stream.end_capture(CUgraphInstantiate_flags(0));
        match (launched, captured) {
            (Ok(()), Ok(Some(g))) => {
                g.launch()?;
                self.graphs.insert(shape, Capture::Graph(SendGraph(g)));
                Ok(true)
            }
            // a launcher refused its arguments (before launching anything): as it would without a capture
            (Err(e @ KernelError::InvalidArgument { .. }), _) => Err(e),
            _ => {
                // the driver could not capture or instantiate these launches: plain launches, now and from now on
                self.graphs.insert(shape, Capture::Failed);
                launch(work)?;
                Ok(false)
            }
        }
    }
}

/// Whether decode steps run as CUDA graphs: on unless the environment says `DBRMT_GRAPHS=off` (read at the first
/// step), or [`set_graphs`] said otherwise.
pub fn graphs_enabled() -> bool {
    GRAPHS.enabled()
}

/// Turns decode graphs on or off for the steps that follow (the process-wide switch `DBRMT_GRAPHS=off` sets; tests
/// compare both).
pub fn set_graphs(on: bool) {
    GRAPHS.set(on);
}

static GRAPHS: RuntimeSwitch = RuntimeSwitch::new(dbrmt_kernels::switches::GRAPHS);

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(layer: usize, open_at: Option<usize>) -> StepCell {
        StepCell {
            layer,
            state: layer,
            slot: 0,
            text_rows: 1,
            first_segment: false,
            enters_at_token: (layer == 0).then_some(0),
            open_at,
        }
    }

    /// Only steps of open cells have a shape, and the positions are not part of it (the kernels read them on the
    /// device), while everything else a launch takes is.
    #[test]
    fn a_shape_is_a_decode_step_without_its_positions() {
        let was = graphs_enabled();
        set_graphs(true);
        let buffers = vec![(0x1000, 64), (0x2000, 8)];
        let at = |p| StepShape::of(&[cell(0, Some(p)), cell(3, Some(p))], || buffers.clone());
        assert!(at(5).is_some());
        assert_eq!(at(5), at(6), "the position is not in the shape");
        assert_ne!(
            at(5),
            StepShape::of(&[cell(0, Some(5)), cell(4, Some(5))], || buffers.clone())
        );
        assert_ne!(
            at(5),
            StepShape::of(&[cell(0, Some(5)), cell(3, Some(5))], || vec![(0x1000, 64)])
        );
        // not even its buffers are collected
        let whole = StepShape::of(&[cell(0, Some(5)), cell(1, None)], || {
            unreachable!("a whole cell's buffers")
        });
        assert!(whole.is_none(), "a whole cell");
        assert!(StepShape::of(&[], || buffers.clone()).is_none(), "no cells");
        set_graphs(false);
        assert!(at(5).is_none(), "graphs off");
        set_graphs(was);
    }
}
