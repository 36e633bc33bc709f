//! Where a step's time goes: CUDA events recorded between its launches, only when a profile is asked for
//! ([`super::Workspace::profile`]). Events cost a microsecond or two each, so a profiled run is slightly slower than
//! a plain one; the shares are what matter.

use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{CudaEvent, CudaStream};
use dbrmt_kernels::KernelError;

/// The events of every step run since profiling started.
#[derive(Debug, Default)]
pub struct StepProfile {
    steps: Vec<StepMarks>,
}

/// One step (one chunk of cells): an event before its first launch and one after each named launch.
#[derive(Debug)]
struct StepMarks {
    cells: usize,
    start: CudaEvent,
    marks: Vec<(&'static str, CudaEvent)>,
}

/// One part of a step: its label, its mean time per step, its share of the step.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfilePart {
    pub label: &'static str,
    pub ms: f64,
    pub share: f64,
}

/// The steps of one width (cells) of a profiled run: how many there were, and their mean and summed time (first
/// launch to last); the ramps of a diagonal prefill are its narrower steps.
#[derive(Debug, Clone, PartialEq)]
pub struct StepWidth {
    pub cells: usize,
    pub steps: usize,
    pub mean_ms: f64,
    pub total_ms: f64,
}

impl StepProfile {
    /// A step of `cells` cells starts.
    pub(crate) fn begin(&mut self, stream: &CudaStream, cells: usize) -> Result<(), KernelError> {
        self.steps.push(StepMarks {
            cells,
            start: timed_event(stream)?,
            marks: Vec::new(),
        });
        Ok(())
    }

    /// The launch just made is `label`.
    pub(crate) fn mark(&mut self, stream: &CudaStream, label: &'static str) -> Result<(), KernelError> {
        if let Some(step) = self.steps.last_mut() {
            step.marks.push((label, timed_event(stream)?));
        }
        Ok(())
    }

    /// The widest step's width (cells).
    pub fn widest(&self) -> usize {
        self.steps.iter().map(|s| s.cells).max().unwrap_or(0)
    }

    /// Steps of exactly `cells` cells.
    pub fn steps_of(&self, cells: usize) -> usize {
        self.steps.iter().filter(|s| s.cells == cells).count()
    }

    /// Per label, in launch order, the mean time per step over the steps of `cells` cells, and its share of their
    /// total (waits for the events).
    pub fn summary(&self, cells: usize) -> Result<Vec<ProfilePart>, KernelError> {
        let mut parts: Vec<(&'static str, f64)> = Vec::new();
        let steps: Vec<&StepMarks> = self.steps.iter().filter(|s| s.cells == cells).collect();
        for step in &steps {
            let mut prev = &step.start;
            for (label, event) in &step.marks {
                let ms = f64::from(prev.elapsed_ms(event)?);
                match parts.iter_mut().find(|(l, _)| l == label) {
                    Some(p) => p.1 += ms,
                    None => parts.push((label, ms)),
                }
                prev = event;
            }
        }
        let n = steps.len().max(1) as f64;
        let total: f64 = parts.iter().map(|p| p.1).sum();
        Ok(parts
            .into_iter()
            .map(|(label, ms)| ProfilePart {
                label,
                ms: ms / n,
                share: if total > 0.0 { ms / total } else { 0.0 },
            })
            .collect())
    }

    /// Per width, widest first: the steps of that many cells and their time (waits for the events).
    pub fn widths(&self) -> Result<Vec<StepWidth>, KernelError> {
        let mut widths: Vec<StepWidth> = Vec::new();
        for step in &self.steps {
            let Some((_, last)) = step.marks.last() else { continue };
            let ms = f64::from(step.start.elapsed_ms(last)?);
            match widths.iter_mut().find(|w| w.cells == step.cells) {
                Some(w) => {
                    w.steps += 1;
                    w.total_ms += ms;
                }
                None => widths.push(StepWidth {
                    cells: step.cells,
                    steps: 1,
                    mean_ms: 0.0,
                    total_ms: ms,
                }),
            }
        }
        widths.sort_by_key(|w| std::cmp::Reverse(w.cells));
        for w in &mut widths {
            w.mean_ms = w.total_ms / w.steps as f64;
        }
        Ok(widths)
    }
}

/// An event recorded on `stream` that can be timed (cudarc's default events have timing disabled).
fn timed_event(stream: &CudaStream) -> Result<CudaEvent, KernelError> {
    Ok(stream.record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?)
}
