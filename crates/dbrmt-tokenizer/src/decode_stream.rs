//! Streaming detokenisation for generation: one id in, the new text out once it is complete UTF-8.

use crate::{Tokenizer, TokenizerError};

/// Turns a stream of generated ids into text pieces.
///
/// A byte-level token can hold part of a character (an emoji is often three tokens), so a piece is released only
/// when the decoded text no longer ends in an incomplete sequence (U+FFFD). The text of earlier tokens is kept as
/// context, as in `tokenizers`' `DecodeStream`, so decoders that look at neighbours (a stripped leading space)
/// give the same text as decoding all ids at once.
#[derive(Debug)]
pub struct DecodeStream<'t> {
    tokenizer: &'t Tokenizer,
    skip_special: bool,
    /// Context ids, then the ids not yet released.
    ids: Vec<u32>,
    /// The decoded text of `ids[..context]`, already released.
    prefix: String,
    /// How many of `ids` are context.
    context: usize,
}

impl<'t> DecodeStream<'t> {
    pub(crate) fn new(tokenizer: &'t Tokenizer, skip_special: bool) -> Self {
        DecodeStream {
            tokenizer,
            skip_special,
            ids: Vec::new(),
            prefix: String::new(),
            context: 0,
        }
    }

    /// Adds one id; returns the text it completes, or `None` while a character is still incomplete (or the id
    /// is a special token being skipped).
    pub fn push(&mut self, id: u32) -> Result<Option<String>, TokenizerError> {
        self.ids.push(id);
        let text = self.tokenizer.decode_with(&self.ids, self.skip_special)?;
        if text.len() <= self.prefix.len() || text.ends_with(char::REPLACEMENT_CHARACTER) {
            return Ok(None);
        }
        let piece = self.new_text(text)?;
        // The ids just released become the context of the next piece.
        self.ids.drain(..self.context);
        self.context = self.ids.len();
        self.prefix = self.tokenizer.decode_with(&self.ids, self.skip_special)?;
        Ok(Some(piece))
    }

    /// The text of ids still held back (an incomplete character at the end of generation, with U+FFFD for its
    /// bytes); empty when everything was released.
    pub fn finish(self) -> Result<String, TokenizerError> {
        if self.ids.len() == self.context {
            return Ok(String::new());
        }
        let text = self.tokenizer.decode_with(&self.ids, self.skip_special)?;
        self.new_text(text)
    }

    /// `text` less the already released prefix.
    fn new_text(&self, text: String) -> Result<String, TokenizerError> {
        text.strip_prefix(self.prefix.as_str())
            .map(str::to_string)
            .ok_or_else(|| {
                TokenizerError::Library(format!(
                    "streaming decode: the text of ids {:?} does not start with the text already released ({:?})",
                    self.ids, self.prefix
                ))
            })
    }
}
