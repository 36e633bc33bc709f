//! Several requests in one stream of steps on the CPU model: each request owns its memory state and the KV cache of
//! its open segment; each pass in flight owns its rows between steps. A cell runs the same functions on the same
//! data as the single-request paths — [`forward`] for a whole segment as [`CpuModel::run`] does, the read and
//! [`decoder_layer`] over the cache for an open segment's rows as [`Session`](super::Session) does — so every
//! request gets the bits it gets alone, whatever shares its steps.

use std::collections::{HashMap, HashSet};
use std::thread;

use dbrmt_formats::state::{LayerState, MemoryState};
use dbrmt_kernels::reference::{armt_read::armt_read, embed::segment_input, gemm::linear, rms_norm::rms_norm};

use super::cell::{decoder_layer, forward, CellInput, KvCache};
use super::executor::CpuModel;
use crate::packed::{check_cell, PassCell, PassId, PassLogits, PassRows};
use crate::{LogitsMode, ModelError};

/// The live requests of a packed run on the CPU model.
#[derive(Debug)]
pub struct PackedExecutor<'m> {
    model: CpuModel<'m>,
    /// Request slots: `None` is free.
    lanes: Vec<Option<Lane>>,
    /// The rows of each pass in flight (after the last layer it ran), with its request slot.
    rows: HashMap<PassId, (usize, Vec<f32>)>,
    /// Worker threads for the cells of one step (0: one per core).
    threads: usize,
}

/// One request's memory state and open-segment KV cache, per layer.
#[derive(Debug)]
struct Lane {
    state: MemoryState,
    caches: Vec<KvCache>,
}

/// One cell's exclusive data while it runs.
#[derive(Debug)]
struct Job {
    index: usize,
    hidden: Vec<f32>,
    state: LayerState,
    cache: KvCache,
}

impl<'m> PackedExecutor<'m> {
    pub fn new(model: &CpuModel<'m>, threads: usize) -> Self {
        Self {
            model: model.clone(),
            lanes: Vec::new(),
            rows: HashMap::new(),
            threads,
        }
    }

    /// Takes a request slot, with the state `state` (checked against the model) or zeros.
    pub fn admit(&mut self, state: Option<&MemoryState>) -> Result<usize, ModelError> {
        let cfg = self.model.config();
        let state = match state {
            Some(s) => {
                s.check_shape(cfg.llama.num_layers, cfg.d_key(), cfg.llama.hidden_size)?;
                s.clone()
            }
            None => self.model.zero_state(),
        };
        let lane = Lane {
            state,
            caches: vec![KvCache::default(); cfg.llama.num_layers],
        };
        match self.lanes.iter().position(Option::is_none) {
            Some(free) => {
                self.lanes[free] = Some(lane);
                Ok(free)
            }
            None => {
                self.lanes.push(Some(lane));
                Ok(self.lanes.len() - 1)
            }
        }
    }

    /// Frees a request slot, its state, its cache and the rows of its passes in flight.
    pub fn release(&mut self, request: usize) -> Result<(), ModelError> {
        self.lane(request)?;
        self.lanes[request] = None;
        self.rows.retain(|_, (r, _)| *r != request);
        Ok(())
    }

    /// Requests holding a slot.
    pub fn live(&self) -> usize {
        self.lanes.iter().filter(|l| l.is_some()).count()
    }

    /// A copy of a request's memory state.
    pub fn state(&self, request: usize) -> Result<MemoryState, ModelError> {
        Ok(self.lane(request)?.state.clone())
    }

    fn lane(&self, request: usize) -> Result<&Lane, ModelError> {
        self.lanes
            .get(request)
            .and_then(Option::as_ref)
            .ok_or_else(|| ModelError::InvalidInput(format!("no live request in slot {request}")))
    }

    /// Runs one step: every cell's layer; passes leaving the top layer return their logits (if they ask for any).
    /// Every cell is checked before any runs, so a refused step changes nothing.
    pub fn step(&mut self, cells: &[PassCell<'_>]) -> Result<Vec<PassLogits>, ModelError> {
        self.check_step(cells)?;
        let mut jobs: Vec<Job> = cells.iter().enumerate().map(|(i, c)| self.take_job(i, c)).collect();
        let threads = match self.threads {
            0 => thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let per_thread = jobs.len().div_ceil(threads.max(1)).max(1);
        if jobs.len() <= 1 || threads <= 1 {
            jobs.iter_mut().for_each(|j| self.run_job(&cells[j.index], j));
        } else {
            let this = &*self;
            thread::scope(|scope| {
                for chunk in jobs.chunks_mut(per_thread) {
                    scope.spawn(move || chunk.iter_mut().for_each(|j| this.run_job(&cells[j.index], j)));
                }
            });
        }
        let mut out = Vec::new();
        for job in jobs {
            let cell = &cells[job.index];
            let lane = self.lanes[cell.pass.request].as_mut().expect("checked live");
            lane.state.layers[cell.layer] = job.state;
            lane.caches[cell.layer] = job.cache;
            if cell.layer + 1 < self.model.config().llama.num_layers {
                self.rows.insert(cell.id, (cell.pass.request, job.hidden));
            } else if let Some(logits) = self.finish(cell, &job.hidden) {
                out.push(logits);
            }
        }
        Ok(out)
    }

    /// Every cell valid: a live request, its rows where they should be, no two cells on one request's layer, an open
    /// pass's cache holding exactly the rows before it.
    fn check_step(&self, cells: &[PassCell<'_>]) -> Result<(), ModelError> {
        let cfg = self.model.config();
        let (layers, kvd) = (cfg.llama.num_layers, cfg.llama.kv_dim());
        let (mut layers_seen, mut passes_seen) = (HashSet::new(), HashSet::new());
        for c in cells {
            check_cell(c, layers, cfg.armt.segment_size)?;
            crate::input::check_ids(&c.pass.tokens, cfg.llama.vocab_size)?;
            let lane = self.lane(c.pass.request)?;
            let bad = |msg: &str| {
                Err(ModelError::InvalidInput(format!(
                    "pass {} at layer {}: {msg}",
                    c.id, c.layer
                )))
            };
            if !layers_seen.insert((c.pass.request, c.layer)) || !passes_seen.insert(c.id) {
                return bad("a request's layer, or a pass, twice in one step");
            }
            match self.rows.get(&c.id) {
                Some((r, _)) if c.layer > 0 && *r == c.pass.request => {}
                None if c.layer == 0 => {}
                _ => return bad("its rows are not where the previous layer left them"),
            }
            if let PassRows::Open { at } = c.pass.rows {
                if at > 0 && lane.caches[c.layer].k.len() != at * kvd {
                    return bad("the KV cache does not hold the rows before it");
                }
            }
        }
        Ok(())
    }

    /// Moves a cell's rows (its embeddings at layer 0), its layer's state and cache out of the executor.
    fn take_job(&mut self, index: usize, c: &PassCell<'_>) -> Job {
        let cfg = self.model.config();
        let d = cfg.llama.hidden_size;
        let hidden = match self.rows.remove(&c.id) {
            Some((_, h)) => h,
            None => {
                let memory: &[f32] = match c.pass.rows {
                    PassRows::Whole => &self.model.weights().memory,
                    PassRows::Open { .. } => &[],
                };
                let mut h = vec![0.0; c.pass.tokens.len() * d + memory.len()];
                segment_input(&c.pass.tokens, &self.model.weights().embed, memory, d, &mut h);
                h
            }
        };
        let lane = self.lanes[c.pass.request].as_mut().expect("checked live");
        let empty = LayerState {
            a: Vec::new(),
            z: Vec::new(),
        };
        let state = std::mem::replace(&mut lane.state.layers[c.layer], empty);
        let mut cache = std::mem::take(&mut lane.caches[c.layer]);
        if c.pass.rows == (PassRows::Open { at: 0 }) {
            cache = KvCache::default(); // a fresh open segment
        }
        Job {
            index,
            hidden,
            state,
            cache,
        }
    }

    fn run_job(&self, c: &PassCell<'_>, job: &mut Job) {
        let cfg = self.model.config();
        let w = &self.model.weights().layers[c.layer];
        match c.pass.rows {
            PassRows::Whole => forward(
                cfg,
                w,
                self.model.rope(),
                CellInput {
                    hidden: &mut job.hidden,
                    text_rows: c.pass.tokens.len(),
                    first_segment: c.pass.first_segment,
                    state: &mut job.state,
                },
            ),
            PassRows::Open { .. } => {
                if !c.pass.first_segment {
                    armt_read(&mut job.hidden, &w.mem_q, &job.state.a, &job.state.z, cfg.mem_shape());
                }
                decoder_layer(cfg, w, self.model.rope(), &mut job.hidden, &mut job.cache);
            }
        }
    }

    /// A pass leaving the top layer: the final norm and the LM head of the rows it asks for, computed as the
    /// single-request paths compute them (all text rows of a whole segment for `All`, else its last row).
    fn finish(&self, c: &PassCell<'_>, hidden: &[f32]) -> Option<PassLogits> {
        let cfg = self.model.config();
        let w = self.model.weights();
        let (d, v) = (cfg.llama.hidden_size, cfg.llama.vocab_size);
        let n = c.pass.tokens.len();
        if c.pass.logits == LogitsMode::None {
            return None;
        }
        let (first, rows) = c.pass.logits.rows(n);
        let mut normed = vec![0.0f32; rows * d];
        rms_norm(
            &hidden[first * d..(first + rows) * d],
            &w.norm,
            cfg.llama.rms_norm_eps,
            &mut normed,
        );
        let mut logits = vec![0.0f32; rows * v];
        linear(&normed, w.lm_head(), rows, d, v, &mut logits);
        // the CPU model's greedy id is the sampler's, on these logits (`Pass::argmax` is left to the caller)
        Some(PassLogits {
            id: c.id,
            rows,
            logits,
            argmax: None,
        })
    }
}
