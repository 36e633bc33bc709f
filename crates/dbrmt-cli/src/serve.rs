//! `dbrmt serve`: load the model (on the GPU where there is one) and its tokenizer, then serve the OpenAI-style
//! HTTP API until Ctrl-C (`dbrmt-server`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use dbrmt_server::{Limits, ServerConfig};
use dbrmt_tokenizer::Tokenizer;

use crate::args::{ArmtInitArgs, DeviceArg};
use crate::engine::open_engine;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A GGUF file, or a model directory (config.json + safetensors, and tokenizer.json for text).
    #[arg(long = "model", value_name = "PATH")]
    pub model: PathBuf,
    #[command(flatten)]
    pub armt: ArmtInitArgs,
    /// Where the model runs: `auto` takes the GPU when there is a usable one.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// 0 takes a free port (printed on stderr).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// The model name clients send (default: the model file's or directory's name).
    #[arg(long, value_name = "NAME")]
    pub served_model_name: Option<String>,
    /// Requests computed at once, together in the engine's packed schedule.
    #[arg(long, default_value_t = Limits::default().max_concurrent)]
    pub max_concurrent: usize,
    /// Requests waiting for a slot; past both bounds the answer is 429.
    #[arg(long, default_value_t = Limits::default().max_queued)]
    pub max_queued: usize,
    /// The largest `max_tokens` a request may ask for.
    #[arg(long, default_value_t = Limits::default().max_tokens)]
    pub max_tokens: usize,
    /// Largest request body, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = Limits::default().max_body_bytes >> 20)]
    pub max_body_mb: usize,
    /// Stored memory states at most (least recently used evicted first; 0 stores none).
    #[arg(long, default_value_t = Limits::default().max_states)]
    pub max_states: usize,
    /// Host memory for stored states, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = Limits::default().max_state_bytes >> 20)]
    pub max_state_mb: usize,
    /// Device memory the live requests may hold, in MiB (default: what the GPU has free, less a reserve); a
    /// request that does not fit waits for one to finish.
    #[arg(long, value_name = "MIB")]
    pub max_device_mb: Option<usize>,
}

pub fn serve(a: &ServeArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.max_concurrent >= 1, "--max-concurrent must be at least 1");
    let tokenizer = match Tokenizer::for_model(&a.model) {
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!("note: no tokenizer ({e}); the server takes token-id prompts only");
            None
        }
    };
    let engine = open_engine(a.device, &a.model, &a.armt.load_options())?;
    let model_name = match &a.served_model_name {
        Some(n) => n.clone(),
        None => a
            .model
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .context("--model has no file name; pass --served-model-name")?,
    };
    let limits = Limits {
        max_concurrent: a.max_concurrent,
        max_queued: a.max_queued,
        max_tokens: a.max_tokens,
        max_body_bytes: a.max_body_mb << 20,
        max_states: a.max_states,
        max_state_bytes: a.max_state_mb << 20,
        max_device_bytes: a.max_device_mb.map(|m| m << 20),
        keep_alive: Duration::from_secs(5),
        ..Limits::default()
    };
    let config = ServerConfig {
        host: a.host.clone(),
        port: a.port,
        model_name,
        limits,
    };
    dbrmt_server::run(engine, tokenizer, config).context("dbrmt serve")
}
