//! Streaming detokenisation for generation: one id in, the new text out once it is complete UTF-8.

use crate::{Tokenizer, TokenizerError};

/// Ids held back while the decoded text keeps ending in U+FFFD. A character is at most 4 bytes, so an incomplete
/// one spans at most 3 ids; a longer run of ids ending in U+FFFD is a real U+FFFD (or invalid bytes), which must
/// not hold the stream back for ever — each push re-decodes every held id, so holding without bound is quadratic.
const MAX_HELD: usize = 16;

/// Turns a stream of generated ids into text pieces.
///
/// A byte-level token can hold part of a character (an emoji is often three tokens), so a piece is released only
/// when the decoded text no longer ends in an incomplete sequence (U+FFFD). The text of earlier tokens is kept as
/// context, as in `tokenizers`' `DecodeStream`, so decoders that look at neighbours (a stripped leading space)
/// give the same text as decoding all ids at once. Text that really ends in U+FFFD (a model emitting the
/// replacement character or invalid bytes) is released once [`MAX_HELD`] ids are held, all but the last few (which
/// may be a character still incomplete), cut where both halves decode to the whole, and the stream goes on from
/// there without context: bounded work per id, and the same text as decoding all ids at once (unless no such cut
/// is found among 8 positions, where a character may come out as U+FFFD).
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
        let held = self.ids.len() - self.context;
        if held >= MAX_HELD && text.ends_with(char::REPLACEMENT_CHARACTER) {
            // a real U+FFFD run: release all but the last few ids, cut where the two halves decode to the whole
            // (a character boundary), and go on from the rest without context
            let n = self.ids.len();
            let mut chosen = None;
            for cut in (self.context + 1..=n - 3).rev().take(8) {
                let left = self.tokenizer.decode_with(&self.ids[..cut], self.skip_special)?;
                let right = self.tokenizer.decode_with(&self.ids[cut..], self.skip_special)?;
                if left.len() + right.len() == text.len() && text.starts_with(&left) && text.ends_with(&right) {
                    chosen = Some((cut, left));
                    break;
                }
            }
            let (cut, released) = match chosen {
                Some(found) => found,
                None => (
                    n - 3,
                    self.tokenizer.decode_with(&self.ids[..n - 3], self.skip_special)?,
                ),
            };
            let piece = self.new_text(released)?;
            self.ids.drain(..cut);
            self.context = 0;
            self.prefix.clear();
            return Ok(Some(piece));
        }
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
