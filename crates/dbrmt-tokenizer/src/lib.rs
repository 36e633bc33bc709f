//! Tokenizers for dbrmt models: byte-level BPE built from a GGUF file's `tokenizer.ggml.*` metadata (as Hugging
//! Face transformers builds it, so the ids match HF's), or any Hugging Face `tokenizer.json`; a streaming decoder
//! for generation; and the ChatML chat prompt of `--chat`.
//!
//! ```no_run
//! # fn main() -> Result<(), dbrmt_tokenizer::TokenizerError> {
//! let tok = dbrmt_tokenizer::Tokenizer::for_model("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf".as_ref())?;
//! let ids = tok.encode_chat("What is the capital of France?")?;
//! let mut stream = tok.decode_stream(true);
//! for id in ids {
//!     if let Some(piece) = stream.push(id)? {
//!         print!("{piece}");
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod byte_level;
mod chat;
mod decode_stream;
mod error;
mod gguf_vocab;
mod source;
mod tokenizer;
mod tokenizer_json;

use dbrmt_formats::gguf;

pub use chat::{ChatMessage, ChatTemplate};
pub use decode_stream::DecodeStream;
pub use error::TokenizerError;
pub use tokenizer::{SpecialIds, Tokenizer};
