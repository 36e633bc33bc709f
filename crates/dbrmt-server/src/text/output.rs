//! One request's generated text: ids are detokenised as they come ([`DecodeStream`]: a piece only once its
//! characters are complete) and passed through the request's stop strings.

use dbrmt_tokenizer::{DecodeStream, Tokenizer, TokenizerError};

use super::stop::StopMatcher;

/// Ids in, text out, for one request.
#[derive(Debug)]
pub struct TextOutput<'t> {
    decode: DecodeStream<'t>,
    stops: StopMatcher,
}

/// The text one id gave, and whether it completed a stop string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub text: String,
    pub stopped: bool,
}

impl<'t> TextOutput<'t> {
    /// Special tokens (end of turn, …) are not part of the text.
    pub fn new(tokenizer: &'t Tokenizer, stops: Vec<String>) -> Self {
        Self {
            decode: tokenizer.decode_stream(true),
            stops: StopMatcher::new(stops),
        }
    }

    /// Adds one generated id.
    pub fn push(&mut self, id: u32) -> Result<Piece, TokenizerError> {
        let text = self.decode.push(id)?.unwrap_or_default();
        let r = self.stops.push(&text);
        Ok(Piece {
            text: r.text,
            stopped: r.stopped,
        })
    }

    /// The text still held back when generation ends without a stop string.
    pub fn finish(mut self) -> Result<String, TokenizerError> {
        let tail = self.decode.finish()?;
        let r = self.stops.push(&tail);
        let mut text = r.text;
        if !r.stopped {
            text.push_str(&self.stops.finish());
        }
        Ok(text)
    }
}
