//! The packed schedule while it runs: requests join and leave between steps, and their passes through the layers are
//! appended as they become known (a decoded token's pass only once the previous token is sampled).
//!
//! A **pass** is one run of rows of a request through every layer: a whole segment (its text and memory rows, with
//! the write) or new rows of an open segment (generation). Pass `p` at layer `l` needs pass `p` at layer `l − 1` (its
//! rows) and pass `p − 1` at layer `l` (the memory state, or the KV cache rows, it leaves) — the grid's two
//! dependencies with passes for segments. Passes of different requests never depend on each other.
//!
//! Each step takes, for every layer, the ready **whole** cell of the earliest-admitted request (at most one per layer:
//! the packed rule, so a step's whole cells fit a workspace of `layers` cells and a new request's first segment
//! enters layer 0 as soon as the slot is free), and **every** ready open cell (the new rows of decoding requests are
//! small; all of them share the step). With every request admitted before the first step and whole passes only, the
//! steps are exactly [`packed`](crate::packed)'s.
//!
//! **Open passes move in layer lockstep**: an open pass enters layer 0 only while no other request's open pass is
//! in flight (at layers `1..L`); it waits (fewer than `L` steps) for them to come back to layer 0. Decoding requests'
//! next passes enter together (a token's pass follows the previous one by `L` steps), so the open cells of one step
//! are of one layer and the executor runs them as one product per projection, reading the layer's weights once.

use std::collections::VecDeque;
use std::fmt;

/// What a pass is, as far as the schedule is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PassKind {
    /// A whole segment: at most one whole cell per layer per step.
    Whole,
    /// New rows of an open segment: no limit per layer.
    Open,
}

/// One cell of a live schedule: layer `layer` of pass `pass` (counted from the request's first pass) of request
/// `request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LiveTask {
    pub request: u64,
    pub pass: usize,
    pub layer: usize,
}

/// Why the schedule refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WavefrontError {
    /// No live request has this id.
    UnknownRequest(u64),
    /// A live request already has this id.
    DuplicateRequest(u64),
    /// A completed task that the schedule did not hand out.
    NotReady(LiveTask),
}

impl fmt::Display for WavefrontError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownRequest(id) => write!(f, "no live request {id}"),
            Self::DuplicateRequest(id) => write!(f, "request {id} is already live"),
            Self::NotReady(t) => write!(
                f,
                "layer {} of pass {} of request {} was not ready",
                t.layer, t.pass, t.request
            ),
        }
    }
}

impl std::error::Error for WavefrontError {}

/// A request's unfinished passes, oldest first.
#[derive(Debug, Clone)]
struct Lane {
    id: u64,
    /// Index of `passes[0]` among all the request's passes.
    first: usize,
    /// Kind and layers done of each unfinished pass.
    passes: VecDeque<(PassKind, usize)>,
}

/// The live packed schedule of requests over a model of `layers` layers.
#[derive(Debug, Clone)]
pub struct Wavefront {
    layers: usize,
    /// Live requests in admission order (earlier ones win a layer's whole slot).
    lanes: Vec<Lane>,
}

impl Wavefront {
    pub fn new(layers: usize) -> Self {
        Self {
            layers,
            lanes: Vec::new(),
        }
    }

    pub fn layers(&self) -> usize {
        self.layers
    }

    /// Admits request `id` (with no pass yet); it comes after every request admitted before it.
    pub fn add_request(&mut self, id: u64) -> Result<(), WavefrontError> {
        if self.lanes.iter().any(|l| l.id == id) {
            return Err(WavefrontError::DuplicateRequest(id));
        }
        self.lanes.push(Lane {
            id,
            first: 0,
            passes: VecDeque::new(),
        });
        Ok(())
    }

    /// Drops request `id` and its unfinished passes (finished or cancelled).
    pub fn remove_request(&mut self, id: u64) -> Result<(), WavefrontError> {
        let at = self.position(id)?;
        self.lanes.remove(at);
        Ok(())
    }

    /// Appends a pass to request `id`; returns its index among the request's passes.
    pub fn push_pass(&mut self, id: u64, kind: PassKind) -> Result<usize, WavefrontError> {
        let at = self.position(id)?;
        let lane = &mut self.lanes[at];
        lane.passes.push_back((kind, 0));
        Ok(lane.first + lane.passes.len() - 1)
    }

    /// Unfinished passes of request `id`.
    pub fn pending(&self, id: u64) -> Result<usize, WavefrontError> {
        Ok(self.lanes[self.position(id)?].passes.len())
    }

    /// Whether no live request has an unfinished pass.
    pub fn is_idle(&self) -> bool {
        self.lanes.iter().all(|l| l.passes.is_empty())
    }

    /// The cells of the next step, ordered by layer, then by admission. Empty when idle.
    pub fn next_step(&self) -> Vec<LiveTask> {
        let mut whole_taken = vec![false; self.layers];
        let mut tasks = Vec::new();
        // requests with an open pass past layer 0: another request's open pass waits for them to re-enter layer 0
        let in_flight = |lane: &Lane| {
            lane.passes
                .iter()
                .any(|&(kind, done)| kind == PassKind::Open && done > 0 && done < self.layers)
        };
        let decoding: Vec<u64> = self.lanes.iter().filter(|l| in_flight(l)).map(|l| l.id).collect();
        for lane in &self.lanes {
            let mut ahead = self.layers + 1; // layers done by the previous pass (none: no constraint)
            for (i, &(kind, done)) in lane.passes.iter().enumerate() {
                // (p, l − 1) is done by definition of `done`; (p − 1, l) is done when the previous pass is past l
                let ready = done < self.layers && ahead > done;
                ahead = done;
                let waits = kind == PassKind::Open && done == 0 && decoding.iter().any(|&id| id != lane.id);
                if !ready || waits || (kind == PassKind::Whole && std::mem::replace(&mut whole_taken[done], true)) {
                    continue;
                }
                tasks.push(LiveTask {
                    request: lane.id,
                    pass: lane.first + i,
                    layer: done,
                });
            }
        }
        tasks.sort_by_key(|t| t.layer); // stable: admission order within a layer
        tasks
    }

    /// Marks the tasks of a step done (after it ran). Returns the passes that left the top layer, as
    /// `(request, pass)`, in the order of `tasks`.
    pub fn complete(&mut self, tasks: &[LiveTask]) -> Result<Vec<(u64, usize)>, WavefrontError> {
        let mut finished = Vec::new();
        for &t in tasks {
            let at = self.position(t.request)?;
            let lane = &mut self.lanes[at];
            let slot = t
                .pass
                .checked_sub(lane.first)
                .and_then(|i| lane.passes.get_mut(i))
                .filter(|(_, done)| *done == t.layer)
                .ok_or(WavefrontError::NotReady(t))?;
            slot.1 += 1;
            if slot.1 == self.layers {
                finished.push((t.request, t.pass));
            }
        }
        // passes finish in order (a pass never overtakes the one before it), so finished ones are at the front
        for lane in &mut self.lanes {
            while lane.passes.front().is_some_and(|&(_, done)| done == self.layers) {
                lane.passes.pop_front();
                lane.first += 1;
            }
        }
        Ok(finished)
    }

    fn position(&self, id: u64) -> Result<usize, WavefrontError> {
        self.lanes
            .iter()
            .position(|l| l.id == id)
            .ok_or(WavefrontError::UnknownRequest(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packed;

    /// Runs `w` to idle; the steps as (request, layer, pass) triples.
    fn drain(w: &mut Wavefront) -> Vec<Vec<(usize, usize, usize)>> {
        let mut steps = Vec::new();
        while !w.is_idle() {
            let tasks = w.next_step();
            assert!(!tasks.is_empty(), "pending passes but no ready cell");
            w.complete(&tasks).unwrap();
            steps.push(tasks.iter().map(|t| (t.request as usize, t.layer, t.pass)).collect());
        }
        steps
    }

    #[test]
    fn whole_passes_admitted_up_front_are_the_packed_schedule() {
        for (layers, segments) in [(3, vec![4, 0, 2]), (1, vec![2, 3]), (4, vec![1, 1, 1, 6]), (2, vec![5])] {
            let mut w = Wavefront::new(layers);
            for (r, &n) in segments.iter().enumerate() {
                w.add_request(r as u64).unwrap();
                for _ in 0..n {
                    w.push_pass(r as u64, PassKind::Whole).unwrap();
                }
            }
            let want: Vec<Vec<(usize, usize, usize)>> = packed(layers, &segments)
                .steps
                .iter()
                .map(|s| {
                    s.tasks
                        .iter()
                        .map(|t| (t.request, t.cell.layer, t.cell.segment))
                        .collect()
                })
                .collect();
            assert_eq!(drain(&mut w), want, "{layers} layers, {segments:?}");
        }
    }

    #[test]
    fn open_passes_share_a_layer_and_follow_their_request() {
        let mut w = Wavefront::new(2);
        for r in 0..3 {
            w.add_request(r).unwrap();
            w.push_pass(r, PassKind::Open).unwrap();
        }
        w.push_pass(0, PassKind::Whole).unwrap();
        let steps = drain(&mut w);
        // the three open passes run side by side; request 0's whole pass follows its open one a layer behind
        assert_eq!(
            steps,
            vec![
                vec![(0, 0, 0), (1, 0, 0), (2, 0, 0)],
                vec![(0, 0, 1), (0, 1, 0), (1, 1, 0), (2, 1, 0)],
                vec![(0, 1, 1)],
            ]
        );
    }

    #[test]
    fn a_late_open_pass_waits_for_the_decoding_ones_to_reenter_layer_0() {
        let mut w = Wavefront::new(3);
        w.add_request(0).unwrap();
        w.push_pass(0, PassKind::Open).unwrap();
        assert!(w.complete(&w.next_step()).unwrap().is_empty());
        // request 1 joins while request 0's pass is at layer 1: it waits, and request 0's next pass (pushed when
        // the previous one leaves the top layer) enters layer 0 beside it
        w.add_request(1).unwrap();
        w.push_pass(1, PassKind::Open).unwrap();
        assert_eq!(
            w.next_step(),
            [LiveTask {
                request: 0,
                pass: 0,
                layer: 1
            }]
        );
        w.complete(&w.next_step()).unwrap();
        let top = w.next_step();
        assert_eq!(
            top,
            [LiveTask {
                request: 0,
                pass: 0,
                layer: 2
            }]
        );
        assert_eq!(w.complete(&top).unwrap(), [(0, 0)]);
        w.push_pass(0, PassKind::Open).unwrap();
        let together: Vec<(u64, usize)> = w.next_step().iter().map(|t| (t.request, t.layer)).collect();
        assert_eq!(together, [(0, 0), (1, 0)]);
        // whole passes never wait
        let mut w = Wavefront::new(3);
        w.add_request(0).unwrap();
        w.push_pass(0, PassKind::Open).unwrap();
        w.complete(&w.next_step()).unwrap();
        w.add_request(1).unwrap();
        w.push_pass(1, PassKind::Whole).unwrap();
        let step: Vec<(u64, usize)> = w.next_step().iter().map(|t| (t.request, t.layer)).collect();
        assert_eq!(step, [(1, 0), (0, 1)]);
    }

    #[test]
    fn requests_join_between_steps_and_bad_calls_are_refused() {
        let mut w = Wavefront::new(2);
        w.add_request(7).unwrap();
        assert_eq!(w.add_request(7), Err(WavefrontError::DuplicateRequest(7)));
        assert_eq!(w.push_pass(8, PassKind::Open), Err(WavefrontError::UnknownRequest(8)));
        w.push_pass(7, PassKind::Whole).unwrap();
        let first = w.next_step();
        let bogus = LiveTask { layer: 1, ..first[0] };
        assert_eq!(w.complete(&[bogus]), Err(WavefrontError::NotReady(bogus)));
        assert!(w.complete(&first).unwrap().is_empty());
        w.add_request(9).unwrap();
        w.push_pass(9, PassKind::Whole).unwrap();
        // request 9's first segment enters layer 0 as soon as it is free, beside request 7's layer 1
        let second = w.next_step();
        assert_eq!(
            second.iter().map(|t| (t.request, t.layer)).collect::<Vec<_>>(),
            [(9, 0), (7, 1)]
        );
        assert_eq!(w.complete(&second).unwrap(), vec![(7, 0)]);
        assert_eq!(w.pending(7), Ok(0));
        w.remove_request(9).unwrap();
        assert!(w.is_idle() && w.next_step().is_empty());
        assert_eq!(w.remove_request(9), Err(WavefrontError::UnknownRequest(9)));
        assert_eq!(WavefrontError::UnknownRequest(9).to_string(), "no live request 9");
    }
}
