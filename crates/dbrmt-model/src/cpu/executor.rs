//! Walks any schedule of `dbrmt_schedule` over the CPU model. The cells of one step run on parallel threads; each
//! owns its segment's hidden rows and its layer's state for the duration, so threads never share data.

use std::thread;

use dbrmt_kernels::reference::{embed::segment_input, gemm::linear, rms_norm::rms_norm, rope::RopeTable};
use dbrmt_schedule::{Schedule, Task, Tracker};

use super::cell::{forward, CellInput};
use dbrmt_formats::{
    state::{LayerState, MemoryState},
    ModelConfig, Weights,
};

use crate::{
    error::ModelError,
    input::{check_ids, segment_range},
    output::{LogitsMode, Output},
};

/// How to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOptions {
    pub logits: LogitsMode,
    /// Return the final-norm hidden states of every text token.
    pub keep_hidden: bool,
    /// Worker threads for the cells of one step; 0 = one per available core.
    pub threads: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            logits: LogitsMode::Last,
            keep_hidden: false,
            threads: 0,
        }
    }
}

/// The CPU model over borrowed config and weights.
#[derive(Debug, Clone)]
pub struct CpuModel<'m> {
    cfg: &'m ModelConfig,
    weights: &'m Weights,
    rope: RopeTable,
}

/// Where a request starts: the memory state after `segments_before` earlier segments (zeros and 0 for a new one).
#[derive(Debug, Clone, PartialEq)]
pub struct Resume {
    pub state: MemoryState,
    pub segments_before: usize,
}

/// The progress of one request through its grid.
struct RequestRun<'a> {
    ids: &'a [u32],
    segments: usize,
    /// Segments of this request consumed before this run (so segment 0 here is its first only when this is 0).
    segments_before: usize,
    /// Live hidden rows per segment (from its entry at layer 0 until it leaves the top layer).
    hidden: Vec<Option<Vec<f32>>>,
    state: MemoryState,
    mode: LogitsMode,
    logits: Vec<f32>,
    logit_rows: usize,
    final_hidden: Option<Vec<f32>>,
}

/// One cell's exclusive data while it runs.
struct Job {
    task: Task,
    first_segment: bool,
    hidden: Vec<f32>,
    state: LayerState,
}

impl<'m> CpuModel<'m> {
    pub fn new(cfg: &'m ModelConfig, weights: &'m Weights) -> Self {
        let rope = RopeTable::new(
            cfg.llama.head_dim,
            cfg.llama.rope_theta,
            cfg.llama.rope_scaling.as_ref(),
            cfg.segment_rows(),
        );
        Self { cfg, weights, rope }
    }

    pub fn config(&self) -> &'m ModelConfig {
        self.cfg
    }

    pub fn weights(&self) -> &'m Weights {
        self.weights
    }

    /// The RoPE table of one segment's positions.
    pub fn rope(&self) -> &RopeTable {
        &self.rope
    }

    /// Prefills one request (checked ids) under `schedule`, whose tasks must all be of request 0.
    pub fn run(&self, ids: &[u32], schedule: &Schedule, opts: &RunOptions) -> Result<Output, ModelError> {
        let mut out = self.run_many(&[ids], schedule, opts)?;
        Ok(out.remove(0))
    }

    /// Prefills several requests packed into one schedule (`Task::request` indexes `requests`).
    pub fn run_many(
        &self,
        requests: &[&[u32]],
        schedule: &Schedule,
        opts: &RunOptions,
    ) -> Result<Vec<Output>, ModelError> {
        let fresh = Resume {
            state: self.zero_state(),
            segments_before: 0,
        };
        let requests: Vec<(&[u32], Resume)> = requests.iter().map(|&ids| (ids, fresh.clone())).collect();
        self.run_requests(requests, schedule, opts)
    }

    /// Continues one request from `resume` (its state after earlier segments) over `ids`, whose segments are
    /// numbered on from `resume.segments_before`.
    pub fn run_from(
        &self,
        ids: &[u32],
        schedule: &Schedule,
        opts: &RunOptions,
        resume: Resume,
    ) -> Result<Output, ModelError> {
        let mut out = self.run_requests(vec![(ids, resume)], schedule, opts)?;
        Ok(out.remove(0))
    }

    /// The state before segment 0.
    pub fn zero_state(&self) -> MemoryState {
        MemoryState::zeros(self.cfg.llama.num_layers, self.cfg.d_key(), self.cfg.llama.hidden_size)
    }

    fn run_requests(
        &self,
        requests: Vec<(&[u32], Resume)>,
        schedule: &Schedule,
        opts: &RunOptions,
    ) -> Result<Vec<Output>, ModelError> {
        let cfg = self.cfg;
        let (layers, d) = (cfg.llama.num_layers, cfg.llama.hidden_size);
        let mut runs: Vec<RequestRun<'_>> = requests
            .into_iter()
            .map(|(ids, resume)| {
                resume.state.check_shape(layers, cfg.d_key(), d)?;
                if ids.is_empty() {
                    return Err(ModelError::EmptyInput);
                }
                check_ids(ids, cfg.llama.vocab_size)?;
                let segments = cfg.segments_for(ids.len());
                let logit_rows = opts.logits.rows(ids.len()).1;
                Ok(RequestRun {
                    ids,
                    segments,
                    segments_before: resume.segments_before,
                    hidden: vec![None; segments],
                    state: resume.state,
                    mode: opts.logits,
                    logits: vec![0.0; logit_rows * cfg.llama.vocab_size],
                    logit_rows,
                    final_hidden: opts.keep_hidden.then(|| vec![0.0; ids.len() * d]),
                })
            })
            .collect::<Result<_, _>>()?;

        let threads = match opts.threads {
            0 => thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let segments: Vec<usize> = runs.iter().map(|r| r.segments).collect();
        let mut tracker = Tracker::new(layers, &segments);
        for (i, step) in schedule.steps.iter().enumerate() {
            tracker
                .check_step(&step.tasks)
                .map_err(|e| ModelError::InvalidSchedule(format!("step {i}: {e}")))?;
            let jobs: Vec<Job> = step.tasks.iter().map(|&task| self.take_job(&mut runs, task)).collect();
            for job in self.run_jobs(jobs, threads) {
                tracker.complete(&job.task);
                self.put_back(&mut runs, job);
            }
        }
        runs.into_iter()
            .enumerate()
            .map(|(r, run)| {
                if !tracker.finished(r) {
                    return Err(ModelError::InvalidSchedule(format!(
                        "the schedule ends before every cell of request {r} ran"
                    )));
                }
                Ok(Output {
                    tokens: run.ids.len(),
                    segments: run.segments,
                    logits: run.logits,
                    logit_rows: run.logit_rows,
                    hidden: run.final_hidden,
                    state: run.state,
                })
            })
            .collect()
    }

    /// Moves a cell's hidden rows (the embeddings at layer 0) and its layer's state out of the request.
    fn take_job(&self, runs: &mut [RequestRun<'_>], task: Task) -> Job {
        let run = &mut runs[task.request];
        let (l, s) = (task.cell.layer, task.cell.segment);
        let hidden = match run.hidden[s].take() {
            Some(h) => h,
            None => {
                let text = &run.ids[segment_range(s, run.ids.len(), self.cfg.armt.segment_size)];
                let mut h = vec![0.0; (text.len() + self.cfg.armt.num_mem_tokens) * self.cfg.llama.hidden_size];
                segment_input(
                    text,
                    &self.weights.embed,
                    &self.weights.memory,
                    self.cfg.llama.hidden_size,
                    &mut h,
                );
                h
            }
        };
        let state = std::mem::replace(
            &mut run.state.layers[l],
            LayerState {
                a: Vec::new(),
                z: Vec::new(),
            },
        );
        Job {
            task,
            first_segment: run.segments_before + s == 0,
            hidden,
            state,
        }
    }

    /// Runs the jobs of one step on up to `threads` threads; each job is independent.
    fn run_jobs(&self, mut jobs: Vec<Job>, threads: usize) -> Vec<Job> {
        let per_thread = jobs.len().div_ceil(threads.max(1)).max(1);
        if jobs.len() <= 1 || threads <= 1 {
            jobs.iter_mut().for_each(|j| self.run_job(j));
            return jobs;
        }
        thread::scope(|scope| {
            for chunk in jobs.chunks_mut(per_thread) {
                scope.spawn(move || chunk.iter_mut().for_each(|j| self.run_job(j)));
            }
        });
        jobs
    }

    fn run_job(&self, job: &mut Job) {
        let cfg = self.cfg;
        let cell = job.task.cell;
        let text_rows = job.hidden.len() / cfg.llama.hidden_size - cfg.armt.num_mem_tokens;
        let input = CellInput {
            hidden: &mut job.hidden,
            text_rows,
            first_segment: job.first_segment,
            state: &mut job.state,
        };
        forward(cfg, &self.weights.layers[cell.layer], &self.rope, input);
    }

    /// Returns a finished cell's data to its request; a segment leaving the top layer is normed and projected.
    fn put_back(&self, runs: &mut [RequestRun<'_>], job: Job) {
        let cfg = self.cfg;
        let run = &mut runs[job.task.request];
        let (l, s) = (job.task.cell.layer, job.task.cell.segment);
        run.state.layers[l] = job.state;
        if l + 1 < cfg.llama.num_layers {
            run.hidden[s] = Some(job.hidden);
            return;
        }
        let d = cfg.llama.hidden_size;
        let range = segment_range(s, run.ids.len(), cfg.armt.segment_size);
        let rows = range.len();
        let mut normed = vec![0.0f32; rows * d];
        rms_norm(
            &job.hidden[..rows * d],
            &self.weights.norm,
            cfg.llama.rms_norm_eps,
            &mut normed,
        );
        if let Some(h) = run.final_hidden.as_mut() {
            h[range.start * d..range.end * d].copy_from_slice(&normed);
        }
        let v = cfg.llama.vocab_size;
        let head = self.weights.lm_head();
        match run.mode {
            LogitsMode::None => {}
            LogitsMode::All => {
                linear(
                    &normed,
                    head,
                    rows,
                    d,
                    v,
                    &mut run.logits[range.start * v..range.end * v],
                );
            }
            LogitsMode::Last if s + 1 == run.segments => {
                linear(&normed[(rows - 1) * d..], head, 1, d, v, &mut run.logits);
            }
            LogitsMode::Last => {}
        }
    }
}
