//! `dbrmt tokenize`: the token ids of a text (or of its chat prompt), on one line.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
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
