//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use dbrmt_formats::{ArmtParams, LoadOptions};
use dbrmt_model::LogitsMode;
use dbrmt_runtime::ScheduleKind;

#[derive(Debug, Parser)]
#[command(name = "dbrmt", version, about = "ARMT-LLaMA inference with diagonal batching")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Prefill token ids through the model; print a summary, optionally dump logits and memory state.
    Run(RunArgs),
    /// Print a model's config, parameter count, memory-state size and tensor-name layout.
    Inspect(InspectArgs),
    /// Prefill a prompt and generate text token by token, with no length limit (segments close as they fill).
    Generate(crate::generate::GenerateArgs),
    /// Serve the model over HTTP: OpenAI-compatible completions and chat, streaming, stored memory states.
    Serve(crate::serve::ServeArgs),
    /// Print the token ids of a text on one line, separated by spaces.
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
    #[arg(long)]
    pub seed: Option<u64>,
    /// Skip the Llama-3.2-1B-shaped 16K-token bitwise check (the slow one).
    #[arg(long)]
    pub quick: bool,
    /// Only the golden cases: every kernel of a forward at small shapes (for compute-sanitizer runs).
    #[arg(long, conflicts_with = "quick")]
    pub small: bool,
}

/// ARMT parameters for a plain LLaMA checkpoint that has no memory tensors.
#[derive(Debug, Args)]
pub struct ArmtInitArgs {
    /// Initialise the ARMT memory parameters from this seed (for a plain LLaMA checkpoint without them; W_v = 0
    /// as in the original, so the model equals its backbone per segment).
    #[arg(long, value_name = "SEED")]
    pub armt_init: Option<u64>,
    /// Text tokens per segment, for a config without an `armt` object.
    #[arg(long, value_name = "T", default_value_t = 1024, requires = "armt_init")]
    pub segment_size: usize,
    /// Memory tokens per segment, for a config without an `armt` object.
    #[arg(long, value_name = "M", default_value_t = 16, requires = "armt_init")]
    pub mem_tokens: usize,
    /// Key width before the feature map, for a config without an `armt` object.
    #[arg(long, value_name = "D", default_value_t = 64, requires = "armt_init")]
    pub d_mem: usize,
}

impl ArmtInitArgs {
    pub fn load_options(&self) -> LoadOptions {
        let armt_params = self.armt_init.map(|_| ArmtParams {
            num_mem_tokens: self.mem_tokens,
            d_mem: self.d_mem,
            segment_size: self.segment_size,
            nu: 3,
            correction: true,
        });
        LoadOptions {
            armt_init: self.armt_init,
            armt_params,
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A model directory (config.json and model.safetensors, or shards with model.safetensors.index.json), or a
    /// LLaMA GGUF file (with --armt-init).
    #[arg(long = "model", value_name = "DIR")]
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
    #[arg(long, value_enum, default_value_t = ScheduleArg::Diagonal)]
    pub schedule: ScheduleArg,
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
    /// A model directory or a GGUF file.
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
