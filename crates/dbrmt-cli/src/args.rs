//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use dbrmt_formats::{ArmtParams, LoadOptions};
use dbrmt_model::LogitsMode;
use dbrmt_runtime::ScheduleKind;

use crate::{examples, numbers};

#[derive(Debug, Parser)]
#[command(
    name = "dbrmt",
    version,
    about = "ARMT-LLaMA inference with diagonal batching",
    after_help = examples::MAIN
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Prefill token ids through the model; print a summary, optionally dump logits and memory state.
    #[command(after_help = examples::RUN)]
    Run(RunArgs),
    /// Print a model's config, parameter count, memory-state size and tensor-name layout.
    #[command(after_help = examples::INSPECT)]
    Inspect(InspectArgs),
    /// Prefill a prompt and generate text token by token, with no length limit (segments close as they fill).
    #[command(after_help = examples::GENERATE)]
    Generate(crate::generate::GenerateArgs),
    /// Serve the model over HTTP: OpenAI-compatible completions and chat, streaming, stored memory states.
    Serve(crate::serve::ServeArgs),
    /// The token ids of a text (or a file, or standard input): printed on one line, or written as .npy.
    #[command(after_help = examples::TOKENIZE)]
    Tokenize(crate::tokenize::TokenizeArgs),
    /// On a CUDA GPU: every kernel against its CPU reference on fresh random inputs, then whole forwards against
    /// the CPU model and diagonal against sequential (bitwise). Prints a table; exits non-zero on any failure.
    Selftest(SelftestArgs),
    /// On a CUDA GPU: the benchmark matrix, load times (see benches/README.md); results as JSON lines.
    Bench(crate::bench::BenchArgs),
}

#[derive(Debug, Args)]
pub struct SelftestArgs {
    /// Also run the golden cases in DIR (default: testdata/fixtures under $DBRMT_REPO_ROOT or the current
    /// directory, when there is one; the generated cases always run).
    #[arg(long, value_name = "DIR")]
    pub fixtures: Option<PathBuf>,
    /// Seed of the random inputs (default: a fresh one, printed).
    #[arg(long, value_parser = numbers::seed, allow_negative_numbers = true)]
    pub seed: Option<u64>,
    /// Skip the Llama-3.2-1B-shaped 16K-token bitwise check (the slow one).
    #[arg(long)]
    pub quick: bool,
    /// Only the golden cases: every kernel of a forward at small shapes (for compute-sanitizer runs).
    #[arg(long, conflicts_with = "quick")]
    pub small: bool,
}

/// ARMT parameters for a plain LLaMA checkpoint (a GGUF file, or safetensors without memory tensors).
#[derive(Debug, Args)]
pub struct ArmtInitArgs {
    /// Seed of the ARMT memory parameters of a plain LLaMA checkpoint (which has none: they are initialised as the
    /// original does, untrained, W_v = 0, so the model equals its backbone per segment). Default 0; refused for a
    /// checkpoint with trained memory.
    #[arg(long, value_name = "SEED", value_parser = numbers::seed, allow_negative_numbers = true)]
    pub armt_init: Option<u64>,
    /// Apply a trained ARMT memory to a GGUF backbone: a safetensors file of the memory tensors under the
    /// original ARMT code's names, whose metadata gives d_mem, ν, M, T and the sha256 of the GGUF it was trained
    /// on (refused for any other file).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["armt_init", "segment_size", "mem_tokens", "d_mem"])]
    pub armt: Option<PathBuf>,
    /// Text tokens per segment, for a model without an `armt` config (a GGUF file, a plain LLaMA directory).
    #[arg(long, value_name = "T", default_value_t = 1024, value_parser = numbers::at_least_one, allow_negative_numbers = true)]
    pub segment_size: usize,
    /// Memory tokens per segment, for a model without an `armt` config.
    #[arg(long, value_name = "M", default_value_t = 16, value_parser = numbers::at_least_one, allow_negative_numbers = true)]
    pub mem_tokens: usize,
    /// Key width before the feature map, for a model without an `armt` config.
    #[arg(long, value_name = "D", default_value_t = 64, value_parser = numbers::at_least_one, allow_negative_numbers = true)]
    pub d_mem: usize,
}

/// The seed of a plain LLaMA checkpoint's memory when `--armt-init` is not given.
pub const DEFAULT_ARMT_SEED: u64 = 0;

impl ArmtInitArgs {
    /// A plain LLaMA checkpoint runs as it is (memory from seed 0 unless `--armt-init` says otherwise); the
    /// parameters apply to a model whose config has no `armt` object.
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            armt_init: self.armt_init,
            armt_init_when_missing: if self.armt.is_some() {
                None
            } else {
                Some(DEFAULT_ARMT_SEED)
            },
            armt_params: Some(ArmtParams {
                num_mem_tokens: self.mem_tokens,
                d_mem: self.d_mem,
                segment_size: self.segment_size,
                nu: 3,
                correction: true,
            }),
            armt_file: self.armt.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A LLaMA GGUF file, or a model directory (config.json and model.safetensors, or shards with
    /// model.safetensors.index.json).
    #[arg(long = "model", value_name = "PATH")]
    pub model: PathBuf,
    #[command(flatten)]
    pub armt: ArmtInitArgs,
    /// Token ids: a .npy array of int32 or int64, shape [N] (or [1, N]). Several files are several requests, run
    /// together in one packed schedule (each gives bitwise what it gives alone).
    #[arg(long, value_name = "IDS.npy", num_args = 1.., required = true)]
    pub input_ids: Vec<PathBuf>,
    /// Where to run: `auto` takes the GPU when there is a usable one (and kernels were built), else the CPU model.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// The order of the (layer, segment) cells: `diagonal` runs each anti-diagonal as one grouped step,
    /// `sequential` one segment after another; both give the same bits.
    #[arg(long, value_enum, default_value_t = ScheduleArg::Diagonal)]
    pub schedule: ScheduleArg,
    /// Which logits to keep: none, the last token's, or every token's (tokens × vocabulary × 4 bytes of memory).
    #[arg(long, value_enum, default_value_t = LogitsArg::Last)]
    pub logits: LogitsArg,
    /// Write the logits as float32 [rows, vocab] .npy (rows = tokens for --logits all, 1 for last). With several
    /// inputs, a directory: `<input file stem>.npy` per request.
    #[arg(long, value_name = "OUT.npy|DIR")]
    pub dump_logits: Option<PathBuf>,
    /// Write every layer's memory state (layers.{i}.A, layers.{i}.z, f32) as safetensors. With several inputs, a
    /// directory: `<input file stem>.safetensors` per request.
    #[arg(long, value_name = "STATE.safetensors|DIR")]
    pub dump_state: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A GGUF file or a model directory.
    #[arg(value_name = "PATH")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub armt: ArmtInitArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    Auto,
    Cpu,
    Cuda,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScheduleArg {
    Sequential,
    Diagonal,
}

impl From<ScheduleArg> for ScheduleKind {
    fn from(s: ScheduleArg) -> Self {
        match s {
            ScheduleArg::Sequential => ScheduleKind::Sequential,
            ScheduleArg::Diagonal => ScheduleKind::Diagonal,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogitsArg {
    None,
    Last,
    All,
}

impl From<LogitsArg> for LogitsMode {
    fn from(l: LogitsArg) -> Self {
        match l {
            LogitsArg::None => LogitsMode::None,
            LogitsArg::Last => LogitsMode::Last,
            LogitsArg::All => LogitsMode::All,
        }
    }
}
