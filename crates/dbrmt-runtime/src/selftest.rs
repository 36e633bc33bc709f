//! `dbrmt selftest`: every kernel against its CPU reference, then whole forwards on the GPU — against the CPU
//! model (relative error ≤ 2e-2 on logits, A and z) and diagonal against sequential (bitwise).

use std::path::{Path, PathBuf};

use dbrmt_formats::{
    load_model, npy, random::random_weights, ArmtParams, Llama3Scaling, LlamaConfig, LoadOptions, Model, ModelConfig,
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

/// GPU (bf16 weights and activations, f32 state) against the f32 CPU model.
pub const GPU_VS_CPU_TOL: f64 = 2e-2;

/// Every kernel's checks on GPU 0 (fresh inputs from `seed`).
pub fn kernel_checks(seed: u64) -> Result<Vec<Check>, EngineError> {
    let gpu = dbrmt_kernels::Gpu::new(0)?;
    Ok(dbrmt_kernels::check::all(&gpu, seed)
        .into_iter()
        .collect::<Result<_, _>>()?)
}

/// One golden case on the GPU: against the CPU model, and diagonal against sequential.
pub fn golden_case_checks(fixtures: &Path, case: &'static str) -> Result<Vec<Check>, EngineError> {
    let dir = fixtures.join(case);
    let model = load_model(&dir, &LoadOptions::default())?;
    let ids = npy::read_ids(&dir.join("input_ids.npy"))?;
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
            case.into(),
            &diag.logits,
            &cpu.logits,
            GPU_VS_CPU_TOL,
        ),
        compare("gpu vs cpu: A", case.into(), &a_gpu, &a_cpu, GPU_VS_CPU_TOL),
        compare("gpu vs cpu: z", case.into(), &z_gpu, &z_cpu, GPU_VS_CPU_TOL),
        bitwise("gpu diagonal = sequential", case.into(), &diag, &seq),
    ];
    checks.extend(resume_check(&engine, &ids, &diag, case)?);
    checks.push(session_check(&engine, &checked, &diag.logits, case)?);
    Ok(checks)
}

/// Generation against the whole prefill's logits `whole` (all positions): a session prefills the first third of
/// `ids`, then pushes the rest one token at a time (closing segments as they fill, and halfway through continuing
/// from its saved state in a new session, whose open tokens run again); the logits after every token must have the
/// bits of the prefill's at that position.
pub fn session_check(engine: &Engine, ids: &[u32], whole: &[f32], case: &'static str) -> Result<Check, EngineError> {
    let v = engine.model().config.llama.vocab_size;
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
pub fn resume_check(
    engine: &Engine,
    ids: &[i64],
    whole: &Output,
    case: &'static str,
) -> Result<Option<Check>, EngineError> {
    let cfg = &engine.model().config;
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
    Ok(Some(bitwise(name, case.into(), &rest, &tail)))
}

/// A random ARMT of Llama-3.2-1B's shape (T = 1024, M = 128, d_mem = 64) over `tokens` tokens: diagonal against
/// sequential, bitwise, on logits of the last token, every final hidden state and every layer's A and z.
pub fn llama_1b_bitwise_check(tokens: usize, seed: u64) -> Result<Check, EngineError> {
    let config = llama32_1b_config(1024, 128, 64);
    let weights = random_weights(&config, seed);
    let vocab = config.llama.vocab_size as u64;
    let model = Model {
        config,
        weights,
        layout: dbrmt_formats::NameLayout::Hf,
        unused_tensors: Vec::new(),
        armt_initialised: false,
    };
    let mut x = seed | 1;
    let ids: Vec<i64> = (0..tokens)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % vocab) as i64
        })
        .collect();
    let engine = Engine::from_model(model, Device::Cuda(0))?;
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

/// The shapes of Llama-3.2-1B with an ARMT memory.
pub fn llama32_1b_config(segment_size: usize, num_mem_tokens: usize, d_mem: usize) -> ModelConfig {
    ModelConfig {
        llama: LlamaConfig {
            vocab_size: 128256,
            hidden_size: 2048,
            intermediate_size: 8192,
            num_layers: 16,
            num_heads: 32,
            num_kv_heads: 8,
            head_dim: 64,
            rms_norm_eps: 1e-5,
            rope_theta: 500000.0,
            rope_scaling: Some(Llama3Scaling {
                factor: 32.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 8192.0,
            }),
            tie_word_embeddings: true,
        },
        armt: ArmtParams {
            num_mem_tokens,
            d_mem,
            segment_size,
            nu: 3,
            correction: true,
        },
    }
}

/// How much of the self-test to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only the golden cases: every kernel of a forward at small shapes (for compute-sanitizer).
    Small,
    /// Kernels at all their shapes, and the golden cases.
    Quick,
    /// Also the Llama-3.2-1B-shaped bitwise check over 16K tokens with a short last segment.
    Full,
}

/// The checks of `scope`.
pub fn all(fixtures: &Path, seed: u64, scope: Scope) -> Result<Vec<Check>, EngineError> {
    let mut checks = if scope == Scope::Small {
        Vec::new()
    } else {
        kernel_checks(seed)?
    };
    for case in GOLDEN_CASES {
        checks.extend(golden_case_checks(fixtures, case)?);
    }
    if scope == Scope::Full {
        checks.push(llama_1b_bitwise_check(16 * 1024 - 300, seed)?);
    }
    Ok(checks)
}

/// Where the fixtures are: `$DBRMT_REPO_ROOT/testdata/fixtures`, else `testdata/fixtures` under the current
/// directory.
pub fn default_fixtures() -> PathBuf {
    std::env::var_os("DBRMT_REPO_ROOT")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join("testdata/fixtures")
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
