//! The GPU executor: walks a schedule over the GPU model on one CUDA stream (the twin of `cpu/executor.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use cudarc::driver::{CudaEvent, CudaStream};
use dbrmt_formats::{MemoryState, ModelConfig, TensorRead};
use dbrmt_kernels::Gpu;

use super::{
    AttentionKernel, DeviceState, DeviceWeights, GpuModel, MemoryProducts, Projections, StepCell, StepProfile,
    Workspace,
};
use crate::{cpu::Resume, input::segment_range, LogitsMode, ModelError, Output};
use dbrmt_schedule::{Schedule, Tracker};

/// A model on one GPU, with a workspace kept between prefills.
#[derive(Debug)]
pub struct GpuExecutor {
    pub(crate) gpu: Gpu,
    pub(crate) stream: Arc<CudaStream>,
    /// The second stream of two-stream prefill steps ([`GpuModel::step_two_streams`]).
    stream2: Arc<CudaStream>,
    pub(crate) model: GpuModel,
    workspace: Mutex<Option<Workspace>>,
    /// Whether prefills record a [`StepProfile`] (events between launches), kept in `last_profile`.
    profiling: AtomicBool,
    last_profile: Mutex<Option<StepProfile>>,
}

/// How long the last prefill ran on the device (CUDA events around its launches).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeviceTiming {
    pub ms: f32,
}

/// Refuses `needed` device bytes for `what` when GPU `gpu` has less free memory (`cuMemGetInfo`), before
/// allocating: "needs N GB, has M".
pub fn check_device(gpu: &Gpu, what: &str, needed: u64) -> Result<(), ModelError> {
    let (free, _total) = gpu.context().mem_get_info()?;
    let available = dbrmt_formats::memory::Available {
        bytes: free as u64,
        limited_by: "free memory of the GPU (cuMemGetInfo)",
    };
    dbrmt_formats::memory::check_against(&format!("{what} on GPU {}", gpu.ordinal()), needed, Some(available))?;
    Ok(())
}

impl GpuExecutor {
    /// Opens GPU `ordinal` and uploads the weights of `src` as bf16 (a checkpoint streamed from its file, or a
    /// model in memory); also returns the model's identity.
    pub fn new(ordinal: usize, src: &impl TensorRead) -> Result<(Self, String), ModelError> {
        let gpu = Gpu::new(ordinal)?;
        check_device(
            &gpu,
            "the model's bf16 weights",
            dbrmt_formats::memory::gpu_weights_bytes(src.config()),
        )?;
        let stream = gpu.stream().clone();
        let projections = Projections::for_model(src.config());
        let (weights, identity) = DeviceWeights::upload(&stream, src, projections == Projections::Sm90)?;
        let model = GpuModel {
            cfg: src.config().clone(),
            weights,
            projections,
            attention: AttentionKernel::for_model(src.config()),
            memory: MemoryProducts::for_model(src.config()),
        };
        let stream2 = stream.fork()?;
        let executor = Self {
            gpu,
            stream,
            stream2,
            model,
            workspace: Mutex::new(None),
            profiling: AtomicBool::new(false),
            last_profile: Mutex::new(None),
        };
        Ok((executor, identity))
    }

    /// The kernels the model's projections, attention and memory products run on.
    pub fn kernels(&self) -> (Projections, AttentionKernel, MemoryProducts) {
        (self.model.projections, self.model.attention, self.model.memory)
    }

    /// The model's config.
    pub fn config(&self) -> &ModelConfig {
        &self.model.cfg
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Prefills one request (checked ids) under `schedule`.
    pub fn prefill(
        &self,
        ids: &[u32],
        schedule: &Schedule,
        logits: LogitsMode,
        keep_hidden: bool,
    ) -> Result<(Output, DeviceTiming), ModelError> {
        self.prefill_from(ids, schedule, logits, keep_hidden, None)
    }

    /// As [`GpuExecutor::prefill`], continuing from `resume` (the memory state after earlier segments; the segments
    /// of `ids` are numbered on from there).
    pub fn prefill_from(
        &self,
        ids: &[u32],
        schedule: &Schedule,
        logits: LogitsMode,
        keep_hidden: bool,
        resume: Option<&Resume>,
    ) -> Result<(Output, DeviceTiming), ModelError> {
        let cfg = &self.model.cfg;
        let (layers, d, v, t) = (
            cfg.llama.num_layers,
            cfg.llama.hidden_size,
            cfg.llama.vocab_size,
            cfg.armt.segment_size,
        );
        let segments = cfg.segments_for(ids.len());
        let stream = &self.stream;
        // two-stream steps reuse a freed hidden slot two steps later (see `run`)
        let slots = max_live_segments(schedule, layers) + if two_streams_enabled() { QUARANTINE } else { 0 };
        let logit_rows = logits.rows(t).1;
        let mut guard = self.workspace.lock().unwrap_or_else(PoisonError::into_inner);
        let fits = guard.as_ref().is_some_and(|w| {
            w.max_cells >= schedule.max_width() && w.slots >= slots && w.logits.len() >= logit_rows * v
        });
        if !fits {
            *guard = None; // free the old one before allocating the new
            let bytes = Workspace::bytes_for(cfg, schedule.max_width().max(1), slots.max(1), logit_rows, 0);
            check_device(&self.gpu, "the step workspace", bytes)?;
            *guard = Some(Workspace::new(
                stream,
                cfg,
                schedule.max_width().max(1),
                slots.max(1),
                logit_rows,
                0,
                self.model.projections,
            )?);
        }
        let ws = guard.as_mut().expect("workspace just ensured");
        let (mut state, segments_before) = match resume {
            None => {
                let pre_split = self.model.memory.read_pre_split;
                (DeviceState::zeros(stream, layers, cfg.d_key(), d, pre_split)?, 0)
            }
            Some(r) => (self.upload_state(&r.state)?, r.segments_before),
        };
        let profiling = self.profiling.load(Ordering::Relaxed);
        ws.profile = profiling.then(StepProfile::default);
        let start = stream.record_event(Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT))?;
        let (logits_out, hidden) = self.run(
            ws,
            &mut state,
            ids,
            schedule,
            segments_before,
            logits,
            keep_hidden,
            &mut |_| {},
        )?;
        let end = stream.record_event(Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT))?;
        end.synchronize()?;
        let ms = start.elapsed_ms(&end)?;
        if profiling {
            *self.last_profile.lock().unwrap_or_else(PoisonError::into_inner) = ws.profile.take();
        }
        let state: MemoryState = state.download(stream, 0, layers)?;
        let output = Output {
            tokens: ids.len(),
            segments,
            logit_rows: logits_out.len() / v,
            logits: logits_out,
            hidden,
            state,
        };
        Ok((output, DeviceTiming { ms }))
    }

    /// Whether the next prefills record where each step's time goes (events between launches; a little slower).
    pub fn set_profiling(&self, on: bool) {
        self.profiling.store(on, Ordering::Relaxed);
    }

    /// The step profile of the last prefill run with profiling on.
    pub fn take_profile(&self) -> Option<StepProfile> {
        self.last_profile.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// Uploads a memory state after checking that it fits this model.
    pub(crate) fn upload_state(&self, state: &MemoryState) -> Result<DeviceState, ModelError> {
        let cfg = &self.model.cfg;
        state.check_shape(cfg.llama.num_layers, cfg.d_key(), cfg.llama.hidden_size)?;
        let pre_split = self.model.memory.read_pre_split.then_some(&self.gpu);
        Ok(DeviceState::upload(&self.stream, state, pre_split)?)
    }

    /// Walks `schedule` over the segments of `ids` in `ws`, updating `state` (the memory after `segments_before`
    /// earlier segments). Returns the logits asked for and, with `keep_hidden`, the final-norm'ed hidden rows.
    /// `progress(segments)` is called as segments leave the top layer (their launches queued, not necessarily run).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run(
        &self,
        ws: &mut Workspace,
        state: &mut DeviceState,
        ids: &[u32],
        schedule: &Schedule,
        segments_before: usize,
        logits: LogitsMode,
        keep_hidden: bool,
        progress: &mut dyn FnMut(usize),
    ) -> Result<(Vec<f32>, Option<Vec<f32>>), ModelError> {
        let cfg = &self.model.cfg;
        let (layers, d, v, t) = (
            cfg.llama.num_layers,
            cfg.llama.hidden_size,
            cfg.llama.vocab_size,
            cfg.armt.segment_size,
        );
        let segments = cfg.segments_for(ids.len());
        let stream = &self.stream;
        ws.set_ids(stream, ids)?;
        let mut tracker = Tracker::new(layers, &[segments]);
        let mut slot_of = vec![usize::MAX; segments];
        let mut slots = SlotPool::new(ws.slots);
        // Two-stream steps (where they pay, `GpuModel::two_streams_pay`): the upper layers' cells run on `stream2`
        // (with the finishing segments), each step's after all `stream` issued before it. A slot freed by a segment
        // finishing on `stream2` at step i is reused by `stream` only from step i + QUARANTINE on, after `stream`
        // waited for `stream2`'s step i (only where the workspace holds the slots the quarantine takes: a generation
        // session's holds one a layer).
        let two = two_streams_enabled() && ws.slots >= max_live_segments(schedule, layers) + QUARANTINE;
        if two {
            // whatever an earlier prefill left on `stream2` (one that stopped at an error) comes first
            stream.join(&self.stream2)?;
        }
        let mut high_done: Vec<(usize, CudaEvent)> = Vec::new(); // (step, stream2's event after it)
        let logit_rows = logits.rows(ids.len()).1;
        let mut out_logits = vec![0.0f32; logit_rows * v];
        let mut out_hidden = keep_hidden.then(|| vec![0.0f32; ids.len() * d]);
        let mut finished = 0;
        for (i, step) in schedule.steps.iter().enumerate() {
            tracker
                .check_step(&step.tasks)
                .map_err(|e| ModelError::InvalidSchedule(format!("step {i}: {e}")))?;
            // slots freed at least QUARANTINE steps ago, once `stream` has waited for `stream2` at that step (at most one
            // entry a step, oldest first: only the oldest can be due)
            if high_done.first().is_some_and(|(j, _)| j + QUARANTINE <= i) {
                let (j, done) = high_done.remove(0);
                stream.wait(&done)?;
                slots.release_through(j);
            }
            let mut cells = Vec::with_capacity(step.tasks.len());
            for task in &step.tasks {
                let (l, s) = (task.cell.layer, task.cell.segment);
                let range = segment_range(s, ids.len(), t);
                if l == 0 {
                    slot_of[s] = slots
                        .take()
                        .ok_or_else(|| ModelError::InvalidSchedule("no free hidden slot".into()))?;
                }
                cells.push(StepCell {
                    layer: l,
                    state: l,
                    slot: slot_of[s],
                    text_rows: range.len(),
                    first_segment: segments_before + s == 0,
                    enters_at_token: (l == 0).then_some(range.start),
                    open_at: None,
                });
            }
            let (low, high): (Vec<StepCell>, Vec<StepCell>) = cells.iter().partition(|x| 2 * x.layer < layers);
            let split = two
                && !low.is_empty()
                && !high.is_empty()
                && self.model.fits_two_streams(ws, &cells)
                && self.model.two_streams_pay(&self.gpu, [&low, &high]);
            let finishing = if split {
                let done = self
                    .model
                    .step_two_streams(&self.gpu, stream, &self.stream2, ws, state, &low, &high)?;
                high_done.push((i, done));
                &self.stream2
            } else {
                if let Some((_, done)) = high_done.pop() {
                    // everything `stream2` ran comes before this step
                    high_done.clear();
                    stream.wait(&done)?;
                    slots.release_all();
                }
                self.model.step(&self.gpu, stream, ws, state, &cells)?;
                stream
            };
            for task in &step.tasks {
                tracker.complete(task);
                let (l, s) = (task.cell.layer, task.cell.segment);
                if l + 1 < layers {
                    continue;
                }
                let range = segment_range(s, ids.len(), t);
                let mode = match logits {
                    LogitsMode::Last if s + 1 < segments => LogitsMode::None,
                    m => m,
                };
                let rows = self
                    .model
                    .finish(&self.gpu, finishing, ws, slot_of[s], range.len(), mode)?;
                if let Some(h) = out_hidden.as_mut() {
                    let host: Vec<f32> = finishing
                        .clone_dtoh(&ws.final_hidden.slice(..range.len() * d))?
                        .into_iter()
                        .map(f32::from)
                        .collect();
                    h[range.start * d..range.end * d].copy_from_slice(&host);
                }
                if rows > 0 {
                    let host = finishing.clone_dtoh(&ws.logits.slice(..rows * v))?;
                    let at = if mode == LogitsMode::All { range.start * v } else { 0 };
                    out_logits[at..at + rows * v].copy_from_slice(&host);
                }
                match split {
                    true => slots.hold(i, slot_of[s]),
                    false => slots.give(slot_of[s]),
                }
                finished += 1;
                progress(finished);
            }
        }
        if let Some((_, done)) = high_done.pop() {
            // the prefill ends when `stream2` does
            stream.wait(&done)?;
        }
        if !tracker.finished(0) {
            return Err(ModelError::InvalidSchedule(
                "the schedule ends before every cell ran".into(),
            ));
        }
        Ok((out_logits, out_hidden))
    }
}

/// Steps after which a hidden slot freed on the second stream is reused (two-stream prefills hold this many more).
const QUARANTINE: usize = 2;

/// The hidden slots of a prefill: taken by segments entering layer 0, given back when they leave the top layer. One
/// given back by a two-stream step `i` (its segment finished on the second stream) is held until
/// [`SlotPool::release_through`] `i`, which the executor calls once the first stream has waited for that step: the
/// first stream never writes a slot the second may still read.
#[derive(Debug)]
struct SlotPool {
    free: Vec<usize>,
    /// (step, slot) given back by two-stream steps, not yet safe.
    held: Vec<(usize, usize)>,
}

impl SlotPool {
    fn new(slots: usize) -> Self {
        Self {
            free: (0..slots).rev().collect(),
            held: Vec::new(),
        }
    }

    fn take(&mut self) -> Option<usize> {
        self.free.pop()
    }

    fn give(&mut self, slot: usize) {
        self.free.push(slot);
    }

    fn hold(&mut self, step: usize, slot: usize) {
        self.held.push((step, slot));
    }

    /// The slots held by steps up to `step` become free.
    fn release_through(&mut self, step: usize) {
        let free = &mut self.free;
        self.held.retain(|&(k, slot)| {
            if k <= step {
                free.push(slot);
            }
            k > step
        });
    }

    fn release_all(&mut self) {
        self.release_through(usize::MAX);
    }
}

/// Whether a prefill's diagonal steps run as two groups on two streams: on unless `DBRMT_TWO_STREAMS=off` or
/// [`set_two_streams`] said otherwise.
pub fn two_streams_enabled() -> bool {
    TWO_STREAMS.enabled()
}

/// Whether `DBRMT_TWO_STREAMS=force` takes two streams past their rule ([`GpuModel::two_streams_pay`]).
pub(super) fn two_streams_forced() -> bool {
    TWO_STREAMS.forced()
}

/// Turns two-stream prefill steps on or off for the prefills that follow (tests compare both).
pub fn set_two_streams(on: bool) {
    TWO_STREAMS.set(on);
}

static TWO_STREAMS: dbrmt_kernels::switches::RuntimeSwitch =
    dbrmt_kernels::switches::RuntimeSwitch::new(dbrmt_kernels::switches::TWO_STREAMS);

/// The most segments alive at once (entered layer 0, not yet left the top layer) under `schedule`.
fn max_live_segments(schedule: &Schedule, layers: usize) -> usize {
    let (mut live, mut most) = (0usize, 0usize);
    for step in &schedule.steps {
        live += step.tasks.iter().filter(|t| t.cell.layer == 0).count();
        most = most.max(live);
        live -= step.tasks.iter().filter(|t| t.cell.layer + 1 == layers).count();
    }
    most
}

#[cfg(test)]
mod tests {
    use dbrmt_schedule::Grid;

    #[test]
    fn held_slots_come_back_only_when_released() {
        let mut pool = super::SlotPool::new(3);
        let taken: Vec<usize> = (0..3).filter_map(|_| pool.take()).collect();
        assert_eq!(taken, [0, 1, 2]);
        assert_eq!(pool.take(), None);
        pool.hold(4, taken[0]);
        pool.hold(5, taken[1]);
        assert_eq!(pool.take(), None, "held slots are not free");
        pool.release_through(4);
        assert_eq!(pool.take(), Some(taken[0]));
        assert_eq!(pool.take(), None, "step 5's slot is still held");
        pool.give(taken[2]);
        assert_eq!(pool.take(), Some(taken[2]), "a slot given back is free at once");
        pool.release_all();
        assert_eq!(pool.take(), Some(taken[1]));
    }

    #[test]
    fn live_segments() {
        assert_eq!(super::max_live_segments(&Grid::new(4, 10).sequential(), 4), 1);
        assert_eq!(super::max_live_segments(&Grid::new(4, 10).diagonal(), 4), 4);
        assert_eq!(super::max_live_segments(&Grid::new(4, 2).diagonal(), 4), 2);
    }
}
