//! `dbrmt generate` with several prompts, files or id arrays: one generation request each, all in one packed schedule
//! (prefill segments of some beside the decode rows of others), each giving the tokens it gives alone. The texts are
//! printed per request when all are done, with how each finished.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use dbrmt_formats::{npy, SavedState, StateExpect};
use dbrmt_runtime::{Event, FinishReason, Generate, Limits, Request};
use dbrmt_tokenizer::Tokenizer;

use crate::engine::open_engine;
use crate::generate::{peak_rss, GenerateArgs};
use crate::progress::{Basis, Progress};

/// One input and the name its results go by.
struct Input {
    name: String,
    ids: Vec<i64>,
}

pub fn generate_many(a: &GenerateArgs) -> anyhow::Result<()> {
    let tokenizer = match Tokenizer::for_model(&a.model) {
        Ok(t) => Some(t),
        Err(e) if a.prompt.is_empty() && a.file.is_empty() && !a.chat => {
            eprintln!("note: no tokenizer ({e}); printing token ids");
            None
        }
        Err(e) => return Err(e).context("loading the tokenizer"),
    };
    // a tokenizer whose ids the model does not have is found now, not mid-generation
    if let Some(t) = &tokenizer {
        crate::tokenize::check_pairing(t, &a.model)?;
    }
    let inputs = inputs(a, tokenizer.as_ref())?;
    if let Some(dir) = &a.save_state {
        crate::outputs::check_dir("--save-state", dir)?;
    }
    let engine = open_engine(a.device, &a.model, &a.armt.load_options())?;
    let cfg = engine.config();
    let identity = &engine.info().identity;
    let resume = match &a.load_state {
        Some(path) => {
            let loaded = SavedState::load_checked(
                path,
                &StateExpect::for_model(identity, cfg).with_parts(engine.info().parts()),
            )
            .with_context(|| "--load-state")?;
            if let Some(w) = &loaded.warning {
                eprintln!("warning: {}", crate::terminal_safe(w));
            }
            Some(loaded.saved)
        }
        None => None,
    };
    let stop: Vec<u32> = tokenizer.as_ref().map(|t| t.stop_ids().to_vec()).unwrap_or_default();
    let limits = Limits {
        max_requests: inputs.len(),
        device_bytes: None,
    };
    let mut set = engine.requests(limits)?;
    // the final states are copied out only for --save-state
    set.keep_states(a.save_state.is_some());
    let t0 = Instant::now();
    let mut ids = Vec::new();
    for input in &inputs {
        let request = Generate {
            prompt: input.ids.clone(),
            max_new_tokens: a.max_new_tokens,
            temperature: a.temperature,
            top_p: a.top_p,
            seed: a.seed,
            stop: stop.clone(),
            resume: resume.clone(),
            keep_last_token: false,
            // only the ids are printed: a greedy token is chosen on the device
            token_logits: false,
        };
        ids.push(
            set.add(Request::Generate(request))
                .with_context(|| input.name.clone())?,
        );
    }
    let total: usize = inputs.iter().map(|x| x.ids.len()).sum();
    let progress = Progress::new("prefill", total as u64, Basis::Tokens);
    let mut done = vec![0usize; inputs.len()];
    let mut tokens: Vec<Vec<u32>> = vec![Vec::new(); inputs.len()];
    let mut finished: Vec<Option<(FinishReason, Option<SavedState>)>> = vec![None; inputs.len()];
    set.run_to_end(|e| {
        let Some(i) = ids.iter().position(|&id| id == e.id()) else {
            return;
        };
        match e {
            Event::Token { token, .. } => tokens[i].push(token),
            Event::Finished { reason, state, .. } => finished[i] = Some((reason, state)),
            Event::Progress { done: d, .. } => {
                done[i] = d;
                let all = done.iter().sum::<usize>() as u64;
                progress.set(all, all);
            }
            Event::Logits { .. } => {}
        }
    })?;
    progress.finish();
    let secs = t0.elapsed().as_secs_f64();
    let occupancy = set.occupancy();

    for (i, input) in inputs.iter().enumerate() {
        let (reason, state) = finished[i].take().context("a request ended without finishing")?;
        let why = match reason {
            FinishReason::Stop(id) => format!("stop token {id}"),
            FinishReason::Length => "--max-new-tokens".into(),
            FinishReason::Prefilled => "prefilled".into(),
            FinishReason::Ended => "ended".into(),
        };
        println!(
            "=== [{i}] {}: {} prompt tokens, {} generated ({why})",
            input.name,
            input.ids.len(),
            tokens[i].len()
        );
        match tokenizer.as_ref() {
            Some(t) => println!("{}", t.decode(&tokens[i])?),
            None => println!("{}", tokens[i].iter().map(u32::to_string).collect::<Vec<_>>().join(" ")),
        }
        if let Some(dir) = &a.save_state {
            let path = dir.join(format!("{}.safetensors", input.name));
            let state = state.as_ref().context("the set kept no state")?;
            state
                .save_with_parts(&path, identity, &engine.info().parts())
                .with_context(|| "--save-state")?;
        }
    }
    let generated: usize = tokens.iter().map(Vec::len).sum();
    let prompt: usize = inputs.iter().map(|x| x.ids.len()).sum();
    eprintln!(
        "{} requests: {prompt} prompt tokens and {generated} generated in {secs:.2} s ({:.1} generated tokens/s); \
         {} steps, {} whole-segment and {} decode cells; {}; host peak RSS {}",
        inputs.len(),
        generated as f64 / secs.max(1e-9),
        occupancy.steps,
        occupancy.whole_cells,
        occupancy.open_cells,
        if engine.gpu_executor().is_some() {
            "on the GPU"
        } else {
            "on the CPU model"
        },
        peak_rss()
    );
    Ok(())
}

/// Every input as token ids, named: a prompt `prompt-<i>`, a file or id array by its stem (names must differ, as
/// they name the saved states).
fn inputs(a: &GenerateArgs, tokenizer: Option<&Tokenizer>) -> anyhow::Result<Vec<Input>> {
    let mut out = Vec::new();
    let need = |what: &str| format!("{what} needs the model's tokenizer");
    for (i, text) in a.prompt.iter().enumerate() {
        let t = tokenizer.with_context(|| need("a text prompt"))?;
        let ids = if a.chat { t.encode_chat(text)? } else { t.encode(text)? };
        out.push(Input {
            name: format!("prompt-{i}"),
            ids: ids.into_iter().map(i64::from).collect(),
        });
    }
    for path in &a.file {
        let t = tokenizer.with_context(|| need("--file"))?;
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let ids = if a.chat {
            t.encode_chat(&text)?
        } else {
            t.encode(&text)?
        };
        out.push(Input {
            name: stem(path)?,
            ids: ids.into_iter().map(i64::from).collect(),
        });
    }
    for path in &a.input_ids {
        out.push(Input {
            name: stem(path)?,
            ids: npy::read_ids(path).with_context(|| format!("reading {}", path.display()))?,
        });
    }
    for (i, x) in out.iter().enumerate() {
        if out[..i].iter().any(|y| y.name == x.name) {
            bail!(
                "two inputs are named `{}`: their saved states would overwrite each other",
                x.name
            );
        }
    }
    Ok(out)
}

fn stem(path: &Path) -> anyhow::Result<String> {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .with_context(|| format!("{} has no file name", PathBuf::from(path).display()))
}
