//! `dbrmt tokenize`: the token ids of a text (or of its chat prompt), on one line.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use dbrmt_formats::config::ConfigFile;
use dbrmt_formats::gguf::{self, GgufFile};

use dbrmt_formats::load::CONFIG_FILE;
use dbrmt_tokenizer::Tokenizer;

#[derive(Debug, Args)]
pub struct TokenizeArgs {
    /// A GGUF file (its metadata's tokenizer), or a safetensors model directory with a tokenizer.json.
    #[arg(long = "model", value_name = "PATH")]
    pub model: PathBuf,
    /// The text to tokenise. BOS / EOS are added only where the model's tokenizer asks for them.
    #[arg(long)]
    pub text: String,
    /// Tokenise the chat prompt of the text as one user turn (as `generate --chat` builds it).
    #[arg(long)]
    pub chat: bool,
}

pub fn tokenize(a: &TokenizeArgs) -> anyhow::Result<()> {
    let tokenizer =
        Tokenizer::for_model(&a.model).with_context(|| format!("loading the tokenizer of {}", a.model.display()))?;
    check_pairing(&tokenizer, &a.model)?;
    if let Some((at, byte)) = tokenizer.unspellable_in(&a.text) {
        eprintln!(
            "{}",
            crate::generate::unspellable_warning(byte, &format!("byte {at} of --text"))
        );
    }
    let ids = if a.chat {
        tokenizer.encode_chat(&a.text)?
    } else {
        tokenizer.encode(&a.text)?
    };
    println!("{}", ids_line(&ids));
    Ok(())
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
