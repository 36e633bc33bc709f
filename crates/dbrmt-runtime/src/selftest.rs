//! `dbrmt selftest`: every kernel against its CPU reference, then whole forwards on the GPU — against the CPU
//! model (relative error ≤ 2e-2 on logits, A and z), diagonal against sequential (bitwise), a prefill in two pieces
//! against one (bitwise) and decoding against the prefill (bitwise).
//!
//! The model cases are generated in memory from the golden-case generator's presets ([`generated_cases`]), so the
//! binary needs no files and runs from any directory on a GPU host. In a checkout the golden cases of
//! `testdata/fixtures` (made by the PyTorch reference of the original code) run too ([`fixture_cases`]).

use std::path::{Path, PathBuf};

use dbrmt_formats::{
    load_model, npy, presets,
    random::{random_weights, RandomModel},
    rng::{stream_seed, SplitMix64},
    LoadOptions, Model, ModelConfig,
};
use dbrmt_kernels::check::{self, compare, Check};
use dbrmt_model::{
    cpu::{CpuModel, Resume, RunOptions},
    input::validate_ids,
    LogitsMode, Output,
};
use dbrmt_schedule::Grid;

use crate::{Device, Engine, EngineError, ScheduleKind};

/// The golden cases of `testdata/fixtures`.
pub const GOLDEN_CASES: [&str; 4] = [
    "tiny-armt-names",
    "tiny-hf-tied-partial",
    "tiny-single-short",
    "small-bf16",
];

/// One model case: a model, its input, and the CPU model's weights it is judged against.
#[derive(Debug)]
pub struct Case {
    pub name: String,
    pub model: Model,
    pub ids: Vec<i64>,
}

/// Cases of the golden presets' shapes with random weights (from `seed`) rounded to bf16 — so the CPU model on them
/// is exactly the GPU's oracle — covering what the golden files cover: full segments, a tied head with a short last
/// segment, one short segment only, and a larger shape with a partial last segment.
pub fn generated_cases(seed: u64) -> Vec<Case> {
    let case = |name: &str, config: ModelConfig, tokens: usize, k: u64| {
        let weights = random_weights(&config, stream_seed(seed, k)).rounded_to_bf16();
        let ids = random_ids(tokens, config.llama.vocab_size, stream_seed(seed, 100 + k));
        Case {
            name: format!("generated {name}"),
            model: in_memory(config, weights),
            ids,
        }
    };
    vec![
        case("tiny, 5 segments", presets::tiny(false), 5 * 32, 1),
        case("tiny tied, partial last segment", presets::tiny(true), 4 * 32 + 13, 2),
        case("tiny, one short segment", presets::tiny(false), 20, 3),
        case("small, partial last segment", presets::small(), 1000, 4),
    ]
}

/// The golden cases in `fixtures` (a directory of case directories), as files.
pub fn fixture_cases(fixtures: &Path) -> Result<Vec<Case>, EngineError> {
    GOLDEN_CASES
        .iter()
        .map(|case| {
            let dir = fixtures.join(case);
            Ok(Case {
                name: (*case).into(),
                model: load_model(&dir, &LoadOptions::default())?,
                ids: npy::read_ids(&dir.join("input_ids.npy"))?,
            })
        })
        .collect()
}

fn in_memory(config: ModelConfig, weights: dbrmt_formats::Weights) -> Model {
    Model {
        config,
        weights,
        layout: dbrmt_formats::NameLayout::Hf,
        unused_tensors: Vec::new(),
        armt_seed: None,
    }
}

/// `n` token ids below `vocab` from `seed`.
fn random_ids(n: usize, vocab: usize, seed: u64) -> Vec<i64> {
    let mut rng = SplitMix64::new(seed);
    (0..n).map(|_| (rng.next_u64() % vocab as u64) as i64).collect()
}

/// GPU (bf16 weights and activations, f32 state) against the f32 CPU model.
pub const GPU_VS_CPU_TOL: f64 = 2e-2;

/// Every kernel's checks on GPU 0 (fresh inputs from `seed`).
pub fn kernel_checks(seed: u64) -> Result<Vec<Check>, EngineError> {
    let gpu = dbrmt_kernels::Gpu::new(0)?;
    Ok(dbrmt_kernels::check::all(&gpu, seed)
        .into_iter()
        .collect::<Result<_, _>>()?)
}

/// One case on the GPU: against the CPU model, diagonal against sequential, resumed against whole, decoding against
/// the prefill.
pub fn case_checks(case: Case) -> Result<Vec<Check>, EngineError> {
    let Case { name, model, ids } = case;
    let checked = validate_ids(&ids, model.config.llama.vocab_size)?;
    let grid = Grid::new(model.config.llama.num_layers, model.config.segments_for(checked.len()));
    let opts = RunOptions {
        logits: LogitsMode::All,
        keep_hidden: true,
        threads: 0,
    };
    let cpu = CpuModel::new(&model.config, &model.weights).run(&checked, &grid.diagonal(), &opts)?;
    let engine = Engine::from_model(model, Device::Cuda(0))?;
    let diag = engine.prefill(&ids, ScheduleKind::Diagonal, LogitsMode::All, true)?;
    let seq = engine.prefill(&ids, ScheduleKind::Sequential, LogitsMode::All, true)?;
    let (a_gpu, z_gpu) = flat_state(&diag);
    let (a_cpu, z_cpu) = flat_state(&cpu);
    let mut checks = vec![
        compare(
            "gpu vs cpu: logits",
            name.clone(),
            &diag.logits,
            &cpu.logits,
            GPU_VS_CPU_TOL,
        ),
        compare("gpu vs cpu: A", name.clone(), &a_gpu, &a_cpu, GPU_VS_CPU_TOL),
        compare("gpu vs cpu: z", name.clone(), &z_gpu, &z_cpu, GPU_VS_CPU_TOL),
        bitwise("gpu diagonal = sequential", name.clone(), &diag, &seq),
    ];
    checks.extend(resume_check(&engine, &ids, &diag, &name)?);
    checks.push(session_check(&engine, &checked, &diag.logits, &name)?);
    Ok(checks)
}

/// Generation against the whole prefill's logits `whole` (all positions): a session prefills the first third of
/// `ids`, then pushes the rest one token at a time (closing segments as they fill, and halfway through continuing
/// from its saved state in a new session, whose open tokens run again); the logits after every token must have the
/// bits of the prefill's at that position.
pub fn session_check(engine: &Engine, ids: &[u32], whole: &[f32], case: &str) -> Result<Check, EngineError> {
    let v = engine.config().llama.vocab_size;
    let first = (ids.len() / 3).max(1);
    let resume_at = (first + ids.len()) / 2;
    let mut session = engine.session()?;
    session.prefill(&ids[..first])?;
    let mut got = Vec::with_capacity(whole.len());
    got.extend_from_slice(session.logits());
    for (pos, &id) in ids.iter().enumerate().skip(first) {
        if pos == resume_at {
            session = engine.resume(session.saved()?)?;
        }
        got.extend_from_slice(session.push(id)?);
    }
    let name = if engine.device() == Device::Cpu {
        "cpu decode = prefill"
    } else {
        "gpu decode = prefill"
    };
    let shape = format!(
        "{case}: {first} prefilled + {} pushed, resumed at {resume_at}",
        ids.len() - first
    );
    Ok(check::bitwise(name, shape, &whole[(first - 1) * v..], &got))
}

/// A prefill in two pieces — the first half of the segments, then the rest resumed from its state — against the
/// whole prefill `whole` (all logits, final hidden states kept): bitwise. `None` for a single segment.
pub fn resume_check(engine: &Engine, ids: &[i64], whole: &Output, case: &str) -> Result<Option<Check>, EngineError> {
    let cfg = engine.config();
    let segments = cfg.segments_for(ids.len());
    if segments < 2 {
        return Ok(None);
    }
    let (v, d) = (cfg.llama.vocab_size, cfg.llama.hidden_size);
    let split = segments / 2 * cfg.armt.segment_size;
    let (first, _) = engine.prefill_from(&ids[..split], ScheduleKind::Diagonal, LogitsMode::None, false, None)?;
    let resume = Resume {
        state: first.state,
        segments_before: segments / 2,
    };
    let (rest, _) = engine.prefill_from(
        &ids[split..],
        ScheduleKind::Diagonal,
        LogitsMode::All,
        true,
        Some(&resume),
    )?;
    let tail = Output {
        tokens: rest.tokens,
        segments: rest.segments,
        logits: whole.logits[split * v..].to_vec(),
        logit_rows: rest.logit_rows,
        hidden: whole.hidden.as_ref().map(|h| h[split * d..].to_vec()),
        state: whole.state.clone(),
    };
    let name = if engine.device() == Device::Cpu {
        "cpu resumed = whole"
    } else {
        "gpu resumed = whole"
    };
    Ok(Some(bitwise(name, case.to_string(), &rest, &tail)))
}

/// A random ARMT of Llama-3.2-1B's shape (T = 1024, M = 128, d_mem = 64) over `tokens` tokens: diagonal against
/// sequential, bitwise, on logits of the last token, every final hidden state and every layer's A and z.
pub fn llama_1b_bitwise_check(tokens: usize, seed: u64) -> Result<Check, EngineError> {
    let (engine, ids) = random_1b(tokens, seed)?;
    let (diag, ms_d) = engine.prefill_timed(&ids, ScheduleKind::Diagonal, LogitsMode::Last, true)?;
    let (seq, ms_s) = engine.prefill_timed(&ids, ScheduleKind::Sequential, LogitsMode::Last, true)?;
    let shape = format!(
        "1B shape, {tokens} tokens, {} segs; diag {:.0} ms, seq {:.0} ms",
        diag.segments,
        ms_d.unwrap_or(f32::NAN),
        ms_s.unwrap_or(f32::NAN)
    );
    Ok(bitwise("gpu diagonal = sequential", shape, &diag, &seq))
}

/// The same random 1B-shaped ARMT over `tokens` tokens, diagonal, with programmatic dependent launch on and off
/// (`dbrmt_kernels::set_pdl`): bitwise, since PDL only lets a launch start early and every kernel waits for its
/// predecessor before touching memory. The switch is left as it was.
pub fn pdl_bitwise_check(tokens: usize, seed: u64) -> Result<Check, EngineError> {
    let was = dbrmt_kernels::pdl_enabled();
    let runs = prefill_on_off(tokens, seed, dbrmt_kernels::set_pdl);
    dbrmt_kernels::set_pdl(was);
    let ((with, ms_on), (without, ms_off)) = runs?;
    let shape = format!("1B shape, {tokens} tokens, diagonal; PDL on {ms_on:.0} ms, off {ms_off:.0} ms");
    Ok(bitwise("gpu PDL on = off", shape, &with, &without))
}

/// A random 1B-shaped ARMT's prefill of `tokens` tokens (diagonal, the last logits) with a prefill's RoPE inside the
/// q/k/v product and launched after it (`dbrmt_model::gpu::set_qkv_rope`): bitwise, and both times in the shape. The
/// switch is left as it was.
pub fn qkv_rope_bitwise_check(tokens: usize, seed: u64) -> Result<Check, EngineError> {
    use dbrmt_model::gpu::{qkv_rope_enabled, set_qkv_rope};
    let switch: Switch = (qkv_rope_enabled, set_qkv_rope);
    switch_bitwise_check(tokens, seed, switch, "gpu q/k/v RoPE fused = apart", ("fused", "apart"))
}

/// A random 1B-shaped ARMT's diagonal prefill of `tokens` tokens with its steps on two streams and on one
/// (`dbrmt_model::gpu::set_two_streams`): the last logits and every hidden row, bitwise. The switch is left as it was.
pub fn two_streams_bitwise_check(tokens: usize, seed: u64) -> Result<Check, EngineError> {
    use dbrmt_model::gpu::{set_two_streams, two_streams_enabled};
    let switch: Switch = (two_streams_enabled, set_two_streams);
    switch_bitwise_check(
        tokens,
        seed,
        switch,
        "gpu two-stream steps = one stream",
        ("two streams", "one"),
    )
}

/// A random 1B-shaped ARMT's diagonal prefill of `tokens` tokens with the tensor-core attention on three consumer
/// warpgroups and on two (`dbrmt_kernels::attention_sm90::set_wg3`): the last logits and every hidden row, bitwise.
/// The switch is left as it was.
pub fn attention_wg3_bitwise_check(tokens: usize, seed: u64) -> Result<Check, EngineError> {
    use dbrmt_kernels::attention_sm90::{set_wg3, wg3_enabled};
    let switch: Switch = (wg3_enabled, set_wg3);
    switch_bitwise_check(
        tokens,
        seed,
        switch,
        "gpu attention three warpgroups = two",
        ("three warpgroups", "two"),
    )
}

/// A process-wide switch: whether it is on, and how to turn it on or off.
type Switch = (fn() -> bool, fn(bool));

/// [`prefill_on_off`] under a switch (`enabled`, `set`; left as it was found): the run without it against the run with
/// it, bitwise; `name` names the check, `on` / `off` the two runs in its shape.
fn switch_bitwise_check(
    tokens: usize,
    seed: u64,
    (enabled, set): Switch,
    name: &'static str,
    (on, off): (&str, &str),
) -> Result<Check, EngineError> {
    let was = enabled();
    let runs = prefill_on_off(tokens, seed, set);
    set(was);
    let ((with, ms_on), (without, ms_off)) = runs?;
    let shape = format!("1B shape, {tokens} tokens, diagonal; {on} {ms_on:.0} ms, {off} {ms_off:.0} ms");
    Ok(bitwise(name, shape, &without, &with))
}

/// A random Llama-3.2-1B-shaped ARMT (T = 1024, M = 128, d_mem = 64) on the GPU, and `tokens` random ids for it.
fn random_1b(tokens: usize, seed: u64) -> Result<(Engine, Vec<i64>), EngineError> {
    let config = presets::llama_3_2_1b(presets::armt(1024, 128, 64));
    let ids = random_ids(tokens, config.llama.vocab_size, seed);
    let model = RandomModel::new(config, seed);
    Ok((Engine::from_tensors(&model, Device::Cuda(0))?, ids))
}

/// A random 1B-shaped ARMT's output of a diagonal prefill of `tokens` tokens (the last logits, the hidden rows kept)
/// and its time in ms (NaN if not timed), with `set` called with true, then false, before each run.
type PrefillRun = (Output, f32);
fn prefill_on_off(tokens: usize, seed: u64, set: fn(bool)) -> Result<(PrefillRun, PrefillRun), EngineError> {
    let (engine, ids) = random_1b(tokens, seed)?;
    let run = |on: bool| -> Result<PrefillRun, EngineError> {
        set(on);
        let (out, ms) = engine.prefill_timed(&ids, ScheduleKind::Diagonal, LogitsMode::Last, true)?;
        Ok((out, ms.unwrap_or(f32::NAN)))
    };
    Ok((run(true)?, run(false)?))
}

/// A random 1B-shaped ARMT decoding `pushed` tokens after a prompt of `prompt` tokens (crossing a segment end when
/// the two do), with its decode steps replayed as CUDA graphs and as plain launches (`dbrmt_model::gpu::set_graphs`):
/// the logits after every token, bitwise, and graphs must have run. The switch is left as it was.
pub fn graphs_bitwise_check(prompt: usize, pushed: usize, seed: u64) -> Result<Check, EngineError> {
    let was = dbrmt_model::gpu::graphs_enabled();
    let runs = decode_on_off(prompt, pushed, seed, dbrmt_model::gpu::set_graphs);
    dbrmt_model::gpu::set_graphs(was);
    let ((with, graphs), (without, _)) = runs?;
    let shape = format!("1B shape, {prompt} + {pushed} pushed; {graphs} pass shapes replayed");
    let check = check::bitwise("gpu decode graphs on = off", shape, &without, &with);
    Ok(check::harness::fail_if(
        check,
        usize::from(graphs == 0),
        "no graph was captured",
    ))
}

/// As [`graphs_bitwise_check`], with a decode step's norms inside the q/k/v and gate/up launches and launched
/// apart (`dbrmt_model::gpu::set_decode_norm`; graphs as they are): the logits after every token, bitwise.
pub fn decode_norm_bitwise_check(prompt: usize, pushed: usize, seed: u64) -> Result<Check, EngineError> {
    let was = dbrmt_model::gpu::decode_norm_enabled();
    let runs = decode_on_off(prompt, pushed, seed, dbrmt_model::gpu::set_decode_norm);
    dbrmt_model::gpu::set_decode_norm(was);
    let ((with, _), (without, _)) = runs?;
    let shape = format!("1B shape, {prompt} + {pushed} pushed");
    Ok(check::bitwise("gpu decode norms fused = apart", shape, &without, &with))
}

/// Greedy generation one pass ahead of the host against a wait for each id before the next pass
/// (`dbrmt_model::gpu::set_decode_ahead`), on a random 1B-shaped ARMT after a prompt of `prompt` tokens: `tokens`
/// ids in two calls, the first refusing its `stop`-th id (so a pass run ahead is undone), the second going on from
/// there (over a segment end when `prompt + tokens` passes 1,024), then one token pushed with its logits copied. The
/// ids, those logits and the memory state after, bitwise.
pub fn decode_ahead_check(prompt: usize, tokens: usize, stop: usize, seed: u64) -> Result<Check, EngineError> {
    let was = dbrmt_model::gpu::decode_ahead_enabled();
    let (engine, ids) = random_1b(prompt + 1, seed)?;
    let ids: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
    let run = |ahead: bool| -> Result<(Vec<f32>, usize), EngineError> {
        dbrmt_model::gpu::set_decode_ahead(ahead);
        let mut session = engine.session()?;
        session.prefill(&ids[..prompt])?;
        let mut got: Vec<u32> = Vec::new();
        let mut pushes = session.generate_greedy(tokens, |id| -> Result<bool, EngineError> {
            got.push(id);
            Ok(got.len() <= stop)
        })?;
        pushes += session.generate_greedy(tokens - stop, |id| -> Result<bool, EngineError> {
            got.push(id);
            Ok(true)
        })?;
        session.set_greedy_ids(false);
        let mut out: Vec<f32> = got.iter().map(|&id| id as f32).collect();
        out.extend_from_slice(session.push(ids[prompt])?);
        for layer in session.saved()?.state.layers {
            out.extend_from_slice(&layer.a);
            out.extend_from_slice(&layer.z);
        }
        Ok((out, pushes))
    };
    let runs = run(true).and_then(|a| Ok((a, run(false)?)));
    dbrmt_model::gpu::set_decode_ahead(was);
    let ((ahead, pushes), (waiting, pushes_waiting)) = runs?;
    let shape = format!("1B shape, {prompt} + {tokens} greedy ids (stopped after {stop}), then one pushed");
    let check = check::bitwise("gpu greedy decode ahead = waiting", shape, &waiting, &ahead);
    Ok(check::harness::fail_if(
        check,
        usize::from(pushes != pushes_waiting || pushes + 1 != tokens),
        "the two ran different numbers of passes",
    ))
}

/// A random 1B-shaped ARMT's logits after a prompt of `prompt` tokens and after each of `pushed` more, with `set`
/// called with true, then false, before each run; and how many pass shapes its session captured as graphs.
type DecodeRun = (Vec<f32>, usize);
fn decode_on_off(
    prompt: usize,
    pushed: usize,
    seed: u64,
    set: fn(bool),
) -> Result<(DecodeRun, DecodeRun), EngineError> {
    let (engine, ids) = random_1b(prompt + pushed, seed)?;
    let ids: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
    let run = |on: bool| -> Result<DecodeRun, EngineError> {
        set(on);
        let mut session = engine.session()?;
        session.prefill(&ids[..prompt])?;
        let mut logits = session.logits().to_vec();
        for &id in &ids[prompt..] {
            logits.extend_from_slice(session.push(id)?);
        }
        Ok((logits, session.captured_graphs()))
    };
    Ok((run(true)?, run(false)?))
}

/// How much of the self-test to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only the golden cases: every kernel of a forward at small shapes (for compute-sanitizer).
    Small,
    /// Kernels at all their shapes, and the golden cases.
    Quick,
    /// Also the Llama-3.2-1B-shaped bitwise checks: diagonal against sequential over 16K tokens with a short last
    /// segment, PDL on against off over 8K, decode graphs and the decode norms' fusion on against off over a segment
    /// end, the q/k/v product's RoPE on against off over 4K.
    Full,
}

/// The checks of `scope`: the generated cases always, the golden files of `fixtures` where given.
pub fn all(fixtures: Option<&Path>, seed: u64, scope: Scope) -> Result<Vec<Check>, EngineError> {
    let mut checks = if scope == Scope::Small {
        Vec::new()
    } else {
        kernel_checks(seed)?
    };
    let mut cases = generated_cases(seed);
    if let Some(dir) = fixtures {
        cases.extend(fixture_cases(dir)?);
    }
    for case in cases {
        checks.extend(case_checks(case)?);
    }
    if scope == Scope::Full {
        checks.push(llama_1b_bitwise_check(16 * 1024 - 300, seed)?);
        checks.push(pdl_bitwise_check(8 * 1024 - 100, seed ^ 0x9d1)?);
        checks.push(graphs_bitwise_check(1000, 40, seed ^ 0x6a7)?);
        checks.push(decode_norm_bitwise_check(1000, 40, seed ^ 0x3b5)?);
        checks.push(decode_ahead_check(1000, 40, 9, seed ^ 0x4c1)?);
        checks.push(qkv_rope_bitwise_check(4 * 1024 - 300, seed ^ 0x71f)?);
        checks.push(two_streams_bitwise_check(24 * 1024 - 300, seed ^ 0x2c9)?);
        checks.push(attention_wg3_bitwise_check(8 * 1024 - 200, seed ^ 0x5e3)?);
    }
    Ok(checks)
}

/// The golden fixtures if this runs in a checkout: `$DBRMT_REPO_ROOT/testdata/fixtures`, else
/// `testdata/fixtures` under the current directory, when that directory exists.
pub fn default_fixtures() -> Option<PathBuf> {
    let dir = std::env::var_os("DBRMT_REPO_ROOT")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join("testdata/fixtures");
    dir.is_dir().then_some(dir)
}

fn flat_state(o: &Output) -> (Vec<f32>, Vec<f32>) {
    let a = o.state.layers.iter().flat_map(|l| l.a.iter().copied()).collect();
    let z = o.state.layers.iter().flat_map(|l| l.z.iter().copied()).collect();
    (a, z)
}

/// Logits, final hidden states and state, bit for bit ([`check::bitwise`]): a check that passes only when they are
/// identical.
fn bitwise(kernel: &'static str, shape: String, a: &Output, b: &Output) -> Check {
    let words = |o: &Output| -> Vec<f32> {
        let mut v = o.logits.clone();
        v.extend(o.hidden.iter().flatten());
        for l in &o.state.layers {
            v.extend(l.a.iter().chain(&l.z));
        }
        v
    };
    check::bitwise(kernel, shape, &words(a), &words(b))
}
