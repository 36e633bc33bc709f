//! `dbrmt tokenize`: the token ids of a text (or of its chat prompt), on one line or as a `.npy` array for
//! `run --input-ids`.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use dbrmt_formats::config::ConfigFile;
use dbrmt_formats::gguf::{self, GgufFile};
use dbrmt_formats::npy;

use dbrmt_formats::load::CONFIG_FILE;
use dbrmt_tokenizer::Tokenizer;

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["text", "file"]))]
pub struct TokenizeArgs {
    /// A GGUF file (its metadata's tokenizer), or a safetensors model directory with a tokenizer.json.
    #[arg(long = "model", value_name = "PATH")]
    pub model: PathBuf,
    /// The text to tokenise. BOS / EOS are added only where the model's tokenizer asks for them.
    #[arg(long)]
    pub text: Option<String>,
    /// Read the text from a file (`-`: standard input).
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Tokenise the chat prompt of the text as one user turn (as `generate --chat` builds it).
    #[arg(long)]
    pub chat: bool,
    /// Write the ids as a 1-D int32 .npy array (what `run --input-ids` takes) instead of printing them.
    #[arg(long, value_name = "IDS.npy")]
    pub out: Option<PathBuf>,
}

/// Text read whole for `tokenize --file` (a prompt, not a book: `generate --file` streams any length).
const MAX_TEXT: usize = 64 << 20;

pub fn tokenize(a: &TokenizeArgs) -> anyhow::Result<()> {
    if let Some(path) = &a.out {
        crate::outputs::check_file("--out", path)?;
    }
    let (text, source) = match (&a.text, &a.file) {
        (Some(text), _) => (text.clone(), "--text".to_string()),
        (None, Some(path)) => (read_text(path)?, format!("--file {}", path.display())),
        (None, None) => bail!("give --text TEXT or --file PATH"),
    };
    let tokenizer =
        Tokenizer::for_model(&a.model).with_context(|| format!("loading the tokenizer of {}", a.model.display()))?;
    check_pairing(&tokenizer, &a.model)?;
    if let Some((at, byte)) = tokenizer.unspellable_in(&text) {
        eprintln!(
            "{}",
            crate::generate::unspellable_warning(byte, &format!("byte {at} of {source}"))
        );
    }
    let ids = if a.chat {
        tokenizer.encode_chat(&text)?
    } else {
        tokenizer.encode(&text)?
    };
    match &a.out {
        Some(path) => {
            npy::write_ids(path, &ids).with_context(|| "writing --out")?;
            eprintln!("{} ids → {}", ids.len(), path.display());
        }
        None => println!("{}", ids_line(&ids)),
    }
    Ok(())
}

/// The text of `path` (`-`: standard input), UTF-8, at most [`MAX_TEXT`] bytes.
fn read_text(path: &Path) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    let limit = MAX_TEXT as u64 + 1;
    if path == Path::new("-") {
        std::io::stdin()
            .lock()
            .take(limit)
            .read_to_end(&mut bytes)
            .context("reading standard input")?;
    } else {
        let file = std::fs::File::open(path).with_context(|| format!("reading --file {}", path.display()))?;
        file.take(limit)
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading --file {}", path.display()))?;
    }
    if bytes.len() > MAX_TEXT {
        bail!(
            "{} holds more than {} MiB: tokenize reads its text whole (generate --file streams any length)",
            path.display(),
            MAX_TEXT >> 20
        );
    }
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{}: byte {} is not UTF-8 (not a text file?)",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

/// The ids separated by single spaces.
fn ids_line(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
}

/// The tokenizer must fit the model it comes with: every id it can produce inside the model's vocabulary (from the
/// GGUF metadata, or the `config.json` beside a `tokenizer.json`). Checked when the two are paired, before any
/// work, not when a token outside the vocabulary turns up mid-generation.
pub fn check_pairing(t: &Tokenizer, model: &Path) -> anyhow::Result<()> {
    let vocab = match gguf::gguf_path(model)? {
        Some(file) => {
            // the rows of the embedding where there is one (a tokenizer-only file has none)
            let file = GgufFile::open(&file)?;
            match file
                .tensor("token_embd.weight")
                .and_then(|t| t.shape().first().copied())
            {
                Some(rows) => rows,
                None => return Ok(()),
            }
        }
        None => {
            let dir = if model.is_dir() {
                model.to_path_buf()
            } else {
                model.parent().map(Path::to_path_buf).unwrap_or_default()
            };
            let config = dir.join(CONFIG_FILE);
            if !config.is_file() {
                return Ok(()); // a tokenizer.json on its own: no model to pair it with
            }
            ConfigFile::read(&config)?.llama.vocab_size
        }
    };
    t.check_model_vocab(vocab)
        .with_context(|| format!("pairing the tokenizer with the model {}", model.display()))
}
