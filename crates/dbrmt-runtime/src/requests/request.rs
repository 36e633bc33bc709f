//! One request's life: what it asks for, the passes it sends through the layers, and what it does with each pass
//! that leaves the top layer. The passes are those the single-request paths run, in the same order with the same
//! rows — a prefill's segments as `Engine::prefill` cuts them; a generation's closed segments, open segment and one
//! row per token as a generation session runs them — which is what makes the request's bits its own.

use dbrmt_formats::{ModelConfig, SavedState};
use dbrmt_model::{
    input::{check_ids, full_segments, validate_ids},
    packed::{Pass, PassLogits, PassRows},
    sampling::Sampler,
    LogitsMode,
};

use super::{Event, FinishReason, RequestError, RequestId};

/// What a request asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Prefill `ids` (every segment a whole cell) and return the logits asked for and the final memory state — what
    /// `Engine::prefill` returns.
    Prefill { ids: Vec<i64>, logits: LogitsMode },
    /// Prefill a prompt, then generate — what a generation session and its sampling loop produce.
    Generate(Generate),
}

/// A generation: the prompt (appended to `resume`'s open segment when given), then up to `max_new_tokens` tokens,
/// stopping before any of `stop`. `max_new_tokens: 0` reads the prompt only and finishes with the state after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Generate {
    pub prompt: Vec<i64>,
    pub max_new_tokens: usize,
    /// 0 is greedy.
    pub temperature: f32,
    pub top_p: f32,
    pub seed: u64,
    pub stop: Vec<u32>,
    /// Continue from a saved state of the same model (its shape is checked; check its identity when loading it).
    /// The prompt may then be empty if the state's open segment is not.
    pub resume: Option<SavedState>,
    /// The finished state holds the last token too — the last emitted one, or the stop token — run through the
    /// model as a session's `push` runs it (one more decode row). Without it the last token is emitted, not run,
    /// as in the sampling loop of `dbrmt generate`.
    pub keep_last_token: bool,
    /// [`Event::Token`] carries the logits its token was sampled from. Without it the event's `logits` are empty,
    /// and a greedy token (temperature 0) is chosen where the logits are — on a GPU, on the device, so that only its
    /// id is copied to the host (the same id as the host's argmax of the same logits).
    pub token_logits: bool,
}

impl Generate {
    /// Greedy generation of `max_new_tokens` tokens after `prompt`, no stop token, each token with its logits.
    pub fn greedy(prompt: Vec<i64>, max_new_tokens: usize) -> Self {
        Self {
            prompt,
            max_new_tokens,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            stop: Vec::new(),
            resume: None,
            keep_last_token: false,
            token_logits: true,
        }
    }
}

/// A live request's progress.
#[derive(Debug)]
pub(crate) struct Live {
    pub id: RequestId,
    /// Its slot in the packed executor.
    pub slot: usize,
    /// Passes sent so far (the next one's index in the schedule).
    pub passes_pushed: usize,
    /// Whether its final state is copied out, when not the set's choice ([`super::Requests::keep_state`]).
    pub keep_state: Option<bool>,
    /// Input tokens (prefill ids, or reopened + prompt tokens) and how many have left the top layer.
    total: usize,
    done: usize,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Prefill {
        mode: LogitsMode,
        /// Segments not yet out of the top layer.
        left: usize,
        segments: usize,
    },
    Generate {
        sampler: Sampler,
        stop: Vec<u32>,
        max_new: usize,
        generated: usize,
        segments_closed: usize,
        /// Text ids of the open segment (those whose rows are in flight or cached).
        open: Vec<u32>,
        keep_last: bool,
        /// Whether its tokens' events carry their logits; without them a greedy request's passes ask only for the
        /// greedy id ([`Pass::argmax`]).
        token_logits: bool,
        /// Set when no more tokens are sampled: the request finishes for this reason once its last pass is out.
        ending: Option<FinishReason>,
    },
}

/// What the request set does after a pass of a request finished.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub events: Vec<Event>,
    pub passes: Vec<Pass>,
    /// Finished: the reason, and the saved state's segments and open ids (the memory comes from the executor).
    pub finished: Option<(FinishReason, usize, Vec<u32>)>,
}

impl Live {
    /// Checks a request against the model and returns it with its first passes (its slot is set when admitted).
    pub fn new(id: RequestId, request: Request, cfg: &ModelConfig) -> Result<(Self, Vec<Pass>), RequestError> {
        let (t, vocab) = (cfg.armt.segment_size, cfg.llama.vocab_size);
        match request {
            Request::Prefill { ids, logits } => {
                let ids = validate_ids(&ids, vocab)?;
                let segments = cfg.segments_for(ids.len());
                let passes = ids
                    .chunks(t)
                    .enumerate()
                    .map(|(s, chunk)| Pass {
                        request: 0,
                        rows: PassRows::Whole,
                        tokens: chunk.to_vec(),
                        first_segment: s == 0,
                        logits: match logits {
                            LogitsMode::Last if s + 1 < segments => LogitsMode::None,
                            mode => mode,
                        },
                        argmax: false,
                    })
                    .collect();
                let live = Live {
                    id,
                    slot: 0,
                    passes_pushed: 0,
                    keep_state: None,
                    total: ids.len(),
                    done: 0,
                    kind: Kind::Prefill {
                        mode: logits,
                        left: segments,
                        segments,
                    },
                };
                Ok((live, passes))
            }
            Request::Generate(g) => {
                let sampler = Sampler::new(g.temperature, g.top_p, g.seed)?;
                let argmax = sampler.is_greedy() && !g.token_logits;
                let prompt = match &g.resume {
                    // a state whose open segment holds tokens may continue with no new ones
                    Some(saved) if g.prompt.is_empty() && !saved.open_ids.is_empty() => Vec::new(),
                    _ => validate_ids(&g.prompt, vocab)?,
                };
                let (segments_before, mut all) = match &g.resume {
                    Some(saved) => {
                        saved
                            .state
                            .check_shape(cfg.llama.num_layers, cfg.d_key(), cfg.llama.hidden_size)
                            .map_err(dbrmt_model::ModelError::from)?;
                        check_ids(&saved.open_ids, vocab)?;
                        if saved.open_ids.len() > t {
                            return Err(RequestError::Invalid(format!(
                                "the saved state's open segment has {} tokens, more than T = {t}",
                                saved.open_ids.len()
                            )));
                        }
                        (saved.segments, saved.open_ids.clone())
                    }
                    None => (0, Vec::new()),
                };
                all.extend_from_slice(&prompt);
                // every full segment closes; the rest (0..T tokens) is the open segment. Its pass gives the next
                // token, or, when the tokens end a segment, the last close does (as a session's prefill)
                let closing = full_segments(all.len(), t);
                let ends = closing * t == all.len();
                let mut passes: Vec<Pass> = (0..closing)
                    .map(|s| {
                        let last = ends && s + 1 == closing;
                        Pass {
                            request: 0,
                            rows: PassRows::Whole,
                            tokens: all[s * t..(s + 1) * t].to_vec(),
                            first_segment: segments_before + s == 0,
                            logits: if last { LogitsMode::Last } else { LogitsMode::None },
                            argmax: last && argmax,
                        }
                    })
                    .collect();
                let segments_closed = segments_before + closing;
                let open = all[closing * t..].to_vec();
                if !ends {
                    passes.push(Pass {
                        request: 0,
                        rows: PassRows::Open { at: 0 },
                        tokens: open.clone(),
                        first_segment: segments_closed == 0,
                        logits: LogitsMode::Last,
                        argmax,
                    });
                }
                let live = Live {
                    id,
                    slot: 0,
                    passes_pushed: 0,
                    keep_state: None,
                    total: all.len(),
                    done: 0,
                    kind: Kind::Generate {
                        sampler,
                        stop: g.stop,
                        max_new: g.max_new_tokens,
                        generated: 0,
                        segments_closed,
                        open,
                        keep_last: g.keep_last_token,
                        token_logits: g.token_logits,
                        ending: (g.max_new_tokens == 0).then_some(FinishReason::Length),
                    },
                };
                Ok((live, passes))
            }
        }
    }

    /// Samples no more tokens: the request finishes with `FinishReason::Ended` once the passes in flight (the last
    /// emitted token's, or the prompt's) are out, its state holding every token emitted.
    pub fn end(&mut self) -> Result<(), RequestError> {
        match &mut self.kind {
            Kind::Generate { ending, .. } => {
                ending.get_or_insert(FinishReason::Ended);
                Ok(())
            }
            Kind::Prefill { .. } => Err(RequestError::Invalid(format!(
                "request {} is a prefill; only a generation can be ended (cancel it instead)",
                self.id
            ))),
        }
    }

    /// A pass of this request left the top layer (with its logits, if it asked for any).
    pub fn pass_done(&mut self, pass: &Pass, logits: Option<PassLogits>, t: usize) -> Outcome {
        let mut out = Outcome::default();
        let id = self.id;
        let prefilling = self.done < self.total;
        if prefilling {
            self.done = (self.done + pass.tokens.len()).min(self.total);
            out.events.push(Event::Progress {
                id,
                done: self.done,
                total: self.total,
            });
        }
        match &mut self.kind {
            Kind::Prefill { mode, left, segments } => {
                if let Some(l) = logits {
                    let first_row = match mode {
                        LogitsMode::All => self.done - pass.tokens.len(),
                        _ => self.done - 1,
                    };
                    out.events.push(Event::Logits {
                        id,
                        first_row,
                        rows: l.rows,
                        logits: l.logits,
                    });
                }
                *left -= 1;
                if *left == 0 {
                    out.finished = Some((FinishReason::Prefilled, *segments, Vec::new()));
                }
            }
            Kind::Generate {
                sampler,
                stop,
                max_new,
                generated,
                segments_closed,
                open,
                keep_last,
                token_logits,
                ending,
            } => {
                // a closing pass only updates the state; an open pass's last row gives the next token
                let Some(l) = logits else { return out };
                if let Some(reason) = *ending {
                    // the last token (or the prompt) has run: the state holds it
                    out.finished = Some((reason, *segments_closed, open.clone()));
                    return out;
                }
                // the greedy id where the backend chose it from these logits, else the host's choice
                let token = match l.argmax {
                    Some(id) => id,
                    None => sampler.sample(&l.logits),
                };
                let reason = if stop.contains(&token) {
                    Some(FinishReason::Stop(token))
                } else {
                    *generated += 1;
                    out.events.push(Event::Token {
                        id,
                        token,
                        logits: match token_logits {
                            true => l.logits,
                            false => Vec::new(),
                        },
                    });
                    (*generated == *max_new).then_some(FinishReason::Length)
                };
                if let Some(reason) = reason {
                    if !*keep_last {
                        // as the sampling loop of a session: the last token is not run
                        out.finished = Some((reason, *segments_closed, open.clone()));
                        return out;
                    }
                    *ending = Some(reason);
                }
                if open.len() == t {
                    // the full open segment closes (a whole cell with its write), then a fresh one opens
                    out.passes.push(Pass {
                        request: 0,
                        rows: PassRows::Whole,
                        tokens: std::mem::take(open),
                        first_segment: *segments_closed == 0,
                        logits: LogitsMode::None,
                        argmax: false,
                    });
                    *segments_closed += 1;
                }
                open.push(token);
                out.passes.push(Pass {
                    request: 0,
                    rows: PassRows::Open { at: open.len() - 1 },
                    tokens: vec![token],
                    first_segment: *segments_closed == 0,
                    logits: LogitsMode::Last,
                    argmax: sampler.is_greedy() && !*token_logits,
                });
            }
        }
        out
    }
}
