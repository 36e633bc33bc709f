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
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{ArmtInitArgs, DeviceArg};
use crate::engine::open_engine;
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
    /// Wrap the prompt in the model's chat template (one user turn; ChatML for SmolLM2).
    #[arg(long)]
    pub chat: bool,
    /// Tokens to generate (at least 1); generation also stops at an end-of-sequence token.
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0)]
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

    let engine = open_engine(a.device, &a.model, &a.armt.load_options())?;
    let on_gpu = engine.gpu_executor().is_some();
    let cfg = engine.config();
    let identity = &engine.info().identity;
    let mut session = match &a.load_state {
        Some(path) => {
            let loaded = SavedState::load_checked(path, &StateExpect::for_model(identity, cfg))
                .with_context(|| "--load-state")?;
            if let Some(w) = &loaded.warning {
                eprintln!("warning: {}", crate::terminal_safe(w));
            }
            engine.resume(loaded.saved)?
        }
        None => engine.session()?,
    };

    let t0 = Instant::now();
    let prompt_tokens = match (a.file.first(), tokenizer.as_ref()) {
        (Some(path), Some(t)) => prefill_file(&mut session, t, path, a.chat)?,
        _ => {
            let source = match a.input_ids.first() {
                Some(path) => format!("--input-ids {}", path.display()),
                None => "the prompt".to_string(),
            };
            let ids = validate_ids(&prompt_ids(a, tokenizer.as_ref())?, cfg.llama.vocab_size)
                .with_context(|| format!("checking {source} against the model's vocabulary"))?;
            let bar = progress_bar(ids.len() as u64, ids.len() > 8 * cfg.armt.segment_size, "tokens");
            session.prefill_chunked(&ids, 8, |done| bar.set_position(done as u64))?;
            bar.finish_and_clear();
            ids.len()
        }
    };
    let prefill_s = t0.elapsed().as_secs_f64();
    if let Some(path) = &a.save_state {
        session.saved()?.save(path, identity).with_context(|| "--save-state")?;
        eprintln!(
            "state after {} closed segments (+{} open tokens) → {}",
            session.segments_closed(),
            session.open_tokens().len(),
            path.display()
        );
    }

    let t1 = Instant::now();
    let mut out = std::io::stdout().lock();
    let mut stream = tokenizer.as_ref().map(|t| t.decode_stream(true));
    let stop: Vec<u32> = tokenizer.as_ref().map(|t| t.stop_ids().to_vec()).unwrap_or_default();
    let mut generated = 0;
    for i in 0..a.max_new_tokens {
        check_finite(session.logits(), prompt_tokens + i)?;
        let id = sampler.sample(session.logits());
        if stop.contains(&id) {
            break;
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
        if i + 1 < a.max_new_tokens {
            session.push(id)?;
        }
    }
    writeln!(out)?;
    let decode_s = t1.elapsed().as_secs_f64();
    eprintln!(
        "prefill {prompt_tokens} tokens in {prefill_s:.2} s ({:.0} tokens/s); decode {generated} tokens in {decode_s:.2} s \
         ({:.1} tokens/s); {}; host peak RSS {}",
        prompt_tokens as f64 / prefill_s,
        generated as f64 / decode_s.max(1e-9),
        if on_gpu { "on the GPU" } else { "on the CPU model" },
        peak_rss()
    );
    Ok(())
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
fn prefill_file(session: &mut Session<'_>, t: &Tokenizer, path: &Path, chat: bool) -> anyhow::Result<usize> {
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
    let bar = progress_bar(bytes, bytes > 8 * PIECE as u64, "bytes");
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
        tokens += ids.len();
        read += piece.len() as u64;
        session.prefill(&ids)?;
        bar.set_position(read);
    }
    if !chat && t.adds_eos() {
        session.prefill(&t.eos_id().into_iter().collect::<Vec<u32>>())?;
        tokens += 1;
    }
    bar.finish_and_clear();
    if tokens == 0 {
        bail!("{} holds no text", path.display());
    }
    Ok(tokens)
}

/// A progress bar on stderr when `show`, else a hidden one.
pub(crate) fn progress_bar(len: u64, show: bool, unit: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let template = format!("prefill {{bar:40}} {{pos}}/{{len}} {unit} {{per_sec}} eta {{eta}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

/// The process's peak resident memory, from /proc (Linux), or "unknown".
pub(crate) fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l["VmHWM:".len()..].trim().to_string())
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
