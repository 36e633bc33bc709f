//! `dbrmt generate`: prefill a prompt, then generate token by token, streaming the text — on the GPU where there is
//! one, on the CPU model otherwise.
//!
//! `--file` is streamed: read and tokenised in pieces and prefilled as they come (host memory flat in the file's
//! length). Full segments of the prompt are prefilled with the diagonal schedule; the open segment decodes with a KV
//! cache; when generation fills a segment, it is closed and generation continues in a fresh one (no length limit).

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use dbrmt_formats::{npy, SavedState, StateExpect};
use dbrmt_model::{input::validate_ids, sampling::Sampler};
use dbrmt_runtime::Session;
use dbrmt_tokenizer::Tokenizer;

use crate::args::{ArmtInitArgs, DeviceArg};
use crate::engine::open_engine;
use crate::numbers;
use crate::progress::{Basis, Progress};
use crate::text_chunks::TextChunks;

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("input").required(true).multiple(true).args(["prompt", "file", "input_ids"]))]
pub struct GenerateArgs {
    /// A GGUF file, or a model directory (config.json + safetensors, and tokenizer.json for text).
    #[arg(long = "model", value_name = "PATH")]
    pub model: PathBuf,
    #[command(flatten)]
    pub armt: ArmtInitArgs,
    /// The prompt text. Several prompts, files and id arrays (repeat the options, or give several values) are
    /// several requests, generated together in one packed schedule, each as it would be alone.
    #[arg(long, num_args = 1..)]
    pub prompt: Vec<String>,
    /// Read the prompt from a file.
    #[arg(long, value_name = "PATH", num_args = 1..)]
    pub file: Vec<PathBuf>,
    /// The prompt as token ids (.npy, int32 or int64).
    #[arg(long, value_name = "IDS.npy", num_args = 1..)]
    pub input_ids: Vec<PathBuf>,
    /// Wrap the prompt in the model's chat template (one user turn; ChatML for SmolLM2). Text only: token ids
    /// are taken as they are.
    #[arg(long, conflicts_with = "input_ids")]
    pub chat: bool,
    /// Tokens to generate (at least 1); generation also stops at an end-of-sequence token.
    #[arg(long, default_value_t = 128, value_parser = numbers::at_least_one, allow_negative_numbers = true)]
    pub max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy (always the most likely token).
    #[arg(long, default_value_t = 0.0, value_parser = numbers::temperature, allow_negative_numbers = true)]
    pub temperature: f32,
    /// Sample from the smallest set of tokens whose probability reaches P (1: all tokens).
    #[arg(long, default_value_t = 1.0, value_parser = numbers::top_p, allow_negative_numbers = true)]
    pub top_p: f32,
    /// Seed of the sampling (with a temperature above 0).
    #[arg(long, default_value_t = 0, value_parser = numbers::seed, allow_negative_numbers = true)]
    pub seed: u64,
    /// Where the prefill and the decoding run: `auto` takes the GPU when there is a usable one.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// Write the memory state after the prefill (A, z per layer; the model's identity, segments consumed and the
    /// open segment's ids in the metadata). With several inputs, a directory: `<name>.safetensors` per request,
    /// written when it finishes (after its generated tokens that ran).
    #[arg(long, value_name = "STATE.safetensors|DIR")]
    pub save_state: Option<PathBuf>,
    /// Continue from a saved state of the same model (the prompt is appended to it).
    #[arg(long, value_name = "STATE.safetensors")]
    pub load_state: Option<PathBuf>,
}

pub fn generate(a: &GenerateArgs) -> anyhow::Result<()> {
    if a.max_new_tokens == 0 {
        bail!("--max-new-tokens must be at least 1");
    }
    if a.prompt.len() + a.file.len() + a.input_ids.len() > 1 {
        return crate::generate_many::generate_many(a);
    }
    let mut sampler = Sampler::new(a.temperature, a.top_p, a.seed)?;
    let tokenizer = match Tokenizer::for_model(&a.model) {
        Ok(t) => Some(t),
        Err(e) if !a.input_ids.is_empty() && !a.chat => {
            eprintln!(
                "note: no tokenizer ({}); printing token ids",
                crate::terminal_safe(&e.to_string())
            );
            None
        }
        Err(e) => return Err(e).with_context(|| format!("loading the tokenizer of {}", a.model.display())),
    };
    // a tokenizer whose ids the model does not have is found now, not mid-generation
    if let Some(t) = &tokenizer {
        crate::tokenize::check_pairing(t, &a.model)?;
    }

    // inputs and outputs are checked before the model loads and the work starts
    for path in &a.file {
        std::fs::File::open(path).with_context(|| format!("reading --file {}", path.display()))?;
    }
    if let Some(path) = &a.load_state {
        std::fs::File::open(path).with_context(|| format!("reading --load-state {}", path.display()))?;
    }
    let prompt = match a.file.is_empty() {
        true => Some(prompt_ids(a, tokenizer.as_ref())?),
        false => None,
    };
    if let Some(path) = &a.save_state {
        crate::outputs::check_file("--save-state", path)?;
    }
    let engine = open_engine(a.device, &a.model, &a.armt.load_options())?;
    let on_gpu = engine.gpu_executor().is_some();
    let cfg = engine.config();
    let identity = &engine.info().identity;
    let mut session = match &a.load_state {
        Some(path) => {
            let loaded = SavedState::load_checked(
                path,
                &StateExpect::for_model(identity, cfg).with_parts(engine.info().parts()),
            )
            .with_context(|| "--load-state")?;
            if let Some(w) = &loaded.warning {
                eprintln!("warning: {}", crate::terminal_safe(w));
            }
            engine.resume(loaded.saved)?
        }
        None => engine.session()?,
    };

    let per_update = segments_per_update(on_gpu);
    let t0 = Instant::now();
    let prompt_tokens = match (a.file.first(), tokenizer.as_ref(), prompt) {
        (Some(path), Some(t), _) => prefill_file(&mut session, t, path, a.chat, per_update)?,
        (_, _, None) => bail!("--file needs the model's tokenizer"),
        (_, _, Some(prompt)) => {
            let source = match a.input_ids.first() {
                Some(path) => format!("--input-ids {}", path.display()),
                None => "the prompt".to_string(),
            };
            let ids = validate_ids(&prompt, cfg.llama.vocab_size)
                .with_context(|| format!("checking {source} against the model's vocabulary"))?;
            let progress = Progress::new("prefill", ids.len() as u64, Basis::Tokens);
            session.prefill_chunked(&ids, per_update, |done| progress.set(done as u64, done as u64))?;
            progress.finish();
            ids.len()
        }
    };
    let prefill_s = t0.elapsed().as_secs_f64();
    if let Some(path) = &a.save_state {
        session
            .saved()?
            .save_with_parts(path, identity, &engine.info().parts())
            .with_context(|| "--save-state")?;
        eprintln!(
            "state after {} (+{} in the open one) → {}",
            plural(session.segments_closed(), "closed segment"),
            plural(session.open_tokens().len(), "token"),
            path.display()
        );
    }

    let t1 = Instant::now();
    let mut steps = 0usize;
    let mut out = std::io::stdout().lock();
    let mut stream = tokenizer.as_ref().map(|t| t.decode_stream(true));
    let stop: Vec<u32> = tokenizer.as_ref().map(|t| t.stop_ids().to_vec()).unwrap_or_default();
    let mut generated = 0;
    let mut emit = |id: u32| -> anyhow::Result<bool> {
        if stop.contains(&id) {
            return Ok(false);
        }
        generated += 1;
        match stream.as_mut() {
            Some(s) => {
                if let Some(piece) = s.push(id)? {
                    write!(out, "{piece}")?;
                }
            }
            None => write!(out, "{id} ")?,
        }
        out.flush()?;
        Ok(true)
    };
    if sampler.is_greedy() {
        // greedy decoding needs only the ids: on the GPU each one is chosen on the device and handed to the next pass
        // there, one pass ahead of this loop (the prompt's logits, copied out, are checked and give the first token;
        // DBRMT_DEVICE_ARGMAX=off copies every token's logits, DBRMT_DECODE_AHEAD=off waits for each id)
        steps = session.generate_greedy(a.max_new_tokens, &mut emit)?;
    } else {
        for i in 0..a.max_new_tokens {
            check_finite(session.logits(), prompt_tokens + i)?;
            let id = sampler.sample(session.logits());
            if !emit(id)? {
                break;
            }
            if i + 1 < a.max_new_tokens {
                session.push(id)?;
                steps += 1;
            }
        }
    }
    writeln!(out)?;
    let speeds = Speeds {
        prompt_tokens,
        prefill_s,
        generated,
        steps,
        decode_s: t1.elapsed().as_secs_f64(),
    };
    eprintln!(
        "{speeds}; {}; host peak RSS {}",
        if on_gpu { "on the GPU" } else { "on the CPU model" },
        peak_rss()
    );
    Ok(())
}

/// Segments a prefill closes between two progress updates: on the CPU model, one per core (a diagonal step of that
/// many cells keeps every core busy, so the update costs no speed); a GPU session closes them all in one diagonal run
/// and reports every segment whatever this says (runs of a few segments would ramp the diagonal up and down).
pub fn segments_per_update(on_gpu: bool) -> usize {
    if on_gpu {
        usize::MAX
    } else {
        std::thread::available_parallelism().map_or(2, |n| n.get()).max(2)
    }
}

/// The speeds of one generation, counted honestly: the first new token is sampled from the prefill's last logits
/// (its forward pass is the prefill's), so the decode rate is decode forward passes over their time, and a run
/// with none says so instead of dividing one token by the microseconds of sampling.
#[derive(Debug, Clone, Copy)]
pub struct Speeds {
    pub prompt_tokens: usize,
    pub prefill_s: f64,
    /// Tokens printed.
    pub generated: usize,
    /// Forward passes of one token each after the prefill.
    pub steps: usize,
    /// Seconds from the end of the prefill to the last token.
    pub decode_s: f64,
}

impl std::fmt::Display for Speeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "prefill {} in {:.2} s ({:.0} tokens/s); {} generated",
            plural(self.prompt_tokens, "token"),
            self.prefill_s,
            self.prompt_tokens as f64 / self.prefill_s.max(1e-9),
            plural(self.generated, "token")
        )?;
        match self.steps {
            0 => write!(f, " (sampled from the prefill's logits, no decode step)"),
            n => write!(
                f,
                ", {} in {:.2} s ({:.1} tokens/s)",
                plural(n, "decode step"),
                self.decode_s,
                n as f64 / self.decode_s.max(1e-9)
            ),
        }
    }
}

/// Refuses logits holding a NaN or an infinity (broken weights or state): sampling from them would print
/// garbage with exit 0.
pub fn check_finite(logits: &[f32], after_tokens: usize) -> anyhow::Result<()> {
    if let Some(i) = logits.iter().position(|x| !x.is_finite()) {
        bail!(
            "the model produced a non-finite logit ({} for token id {i}) after {after_tokens} tokens: its weights or \
             memory state are broken",
            logits[i]
        );
    }
    Ok(())
}

/// Streams `--file` into the session: its text (inside the chat template with `--chat`) is read and tokenised in
/// pieces that tokenise exactly as the whole text ([`TextChunks`]) and prefilled as they come, so host memory holds
/// one piece and the open segment, whatever the file's length. Returns the number of tokens.
fn prefill_file(
    session: &mut Session<'_>,
    t: &Tokenizer,
    path: &Path,
    chat: bool,
    per_update: usize,
) -> anyhow::Result<usize> {
    const PIECE: usize = 1 << 16;
    let file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    // a regular file is checked as text (UTF-8, no NUL) in one pass before any of it is prefilled, so that a bad
    // byte anywhere is reported (at its position) before minutes of work; a pipe or device is checked as it streams
    if file.metadata().is_ok_and(|m| m.is_file()) {
        let check = File::open(path).with_context(|| format!("reading {}", path.display()))?;
        for piece in TextChunks::new(BufReader::new(check), PIECE) {
            piece.with_context(|| format!("reading {}", path.display()))?;
        }
    }
    let (prefix, suffix) = if chat {
        // the template around a marker: everything before the user's text, and after it
        let rendered = t.apply_chat("\u{1}")?;
        let (p, s) = rendered.split_once('\u{1}').context("chat template")?;
        (p.to_string(), s.to_string())
    } else {
        (String::new(), String::new())
    };
    let reader = prefix.as_bytes().chain(BufReader::new(file)).chain(suffix.as_bytes());
    let progress = Progress::new("prefill", bytes.max(1), Basis::Bytes);
    let (mut tokens, mut read) = (0usize, 0u64);
    let mut first = true;
    let mut warned = false;
    for piece in TextChunks::new(reader, PIECE).with_origin(prefix.len() as u64) {
        let piece = piece.with_context(|| format!("reading {}", path.display()))?;
        if !warned {
            if let Some((at, byte)) = t.unspellable_in(&piece) {
                let at = (read + at as u64).saturating_sub(prefix.len() as u64);
                eprintln!(
                    "{}",
                    unspellable_warning(byte, &format!("byte {at} of {}", path.display()))
                );
                warned = true;
            }
        }
        let mut ids = t.encode_plain(&piece)?;
        if first && !chat && t.adds_bos() {
            ids.splice(0..0, t.bos_id());
        }
        first = false;
        // within a piece, the file position advances with its tokens
        let (before, piece_bytes, n) = (tokens as u64, piece.len() as u64, ids.len().max(1) as u64);
        session.prefill_chunked(&ids, per_update, |done| {
            let at = read + piece_bytes * done as u64 / n;
            progress.set(before + done as u64, at.saturating_sub(prefix.len() as u64));
        })?;
        tokens += ids.len();
        read += piece_bytes;
    }
    if !chat && t.adds_eos() {
        session.prefill(&t.eos_id().into_iter().collect::<Vec<u32>>())?;
        tokens += 1;
    }
    progress.finish();
    if tokens == 0 {
        bail!("{} holds no text", path.display());
    }
    Ok(tokens)
}

/// `1 token`, `2 tokens`.
pub(crate) fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// The process's peak resident memory (`VmHWM` of /proc, Linux) in MiB, or "unknown".
pub(crate) fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
            let kib: u64 = line["VmHWM:".len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            Some(format!("{} MiB", kib / 1024))
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The prompt's ids: from text (optionally in the chat template), a file, or a .npy array.
fn prompt_ids(a: &GenerateArgs, tokenizer: Option<&Tokenizer>) -> anyhow::Result<Vec<i64>> {
    if let Some(path) = a.input_ids.first() {
        return npy::read_ids(path).context("reading --input-ids");
    }
    let Some(text) = a.prompt.first() else {
        bail!("--file needs the model's tokenizer")
    };
    let Some(t) = tokenizer else {
        bail!("a text prompt needs the model's tokenizer")
    };
    if let Some((at, byte)) = t.unspellable_in(text) {
        eprintln!("{}", unspellable_warning(byte, &format!("byte {at} of the prompt")));
    }
    let ids = if a.chat { t.encode_chat(text)? } else { t.encode(text)? };
    Ok(ids.into_iter().map(i64::from).collect())
}

/// The warning for a byte the vocabulary cannot spell (it is left out of the ids, as Hugging Face does).
pub fn unspellable_warning(byte: u8, at: &str) -> String {
    format!(
        "warning: the text holds byte 0x{byte:02x} ({at}, and maybe more), which the model's vocabulary cannot \
         spell: it is left out of the ids"
    )
}
