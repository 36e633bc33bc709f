//! A byte-level BPE `tokenizers::Tokenizer` built the way Hugging Face transformers builds one from GGUF metadata.
//!
//! transformers 5.23 (`integrations/gguf/gguf_tokenizer_mapping.py`, the version the SmolLM2 fixtures were made
//! with) hands a `gpt2` vocabulary to its `GPT2Tokenizer`: a BPE model over the vocabulary and merges with no
//! unknown token (a byte the vocabulary cannot spell is dropped), no normaliser, a `ByteLevel` pre-tokenizer (the
//! GPT-2 split regex; a space prefix only where `add_space_prefix` says so) and a `ByteLevel` decoder. A token
//! written outside the byte-level alphabet is respelled from its UTF-8 bytes; control tokens (`token_type` 3) in
//! the alphabet become special added tokens and user-defined ones (4) plain added tokens, both matched whole and
//! never normalised. The same pieces are used here so that ids match HF's. BOS / EOS are added by
//! `Tokenizer::encode`, following the metadata as HF 5.23 does (older transformers prepended BOS regardless).

use std::collections::HashSet;

use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::AddedToken;

use crate::gguf_vocab::GgufVocab;
use crate::TokenizerError;

/// Builds the tokenizer for `vocab` (no post-processor: BOS and EOS are added by the caller).
/// Also returns the ASCII bytes the vocabulary cannot spell (see [`check_byte_tokens`]).
pub(crate) fn build(vocab: &GgufVocab) -> Result<(tokenizers::Tokenizer, Vec<u8>), TokenizerError> {
    let alphabet = ByteAlphabet::new();
    // As in HF (a dict comprehension), a token string that occurs twice keeps its last id.
    let ids: Vocab = vocab
        .tokens
        .iter()
        .enumerate()
        .map(|(id, token)| (alphabet.respell(token), id as u32))
        .collect();
    let unspellable = check_byte_tokens(&alphabet, |t| ids.contains_key(t))?;
    let bpe = BPE::builder()
        .vocab_and_merges(ids, vocab.merges.clone())
        .build()
        .map_err(|e| TokenizerError::library("building the BPE model", e))?;

    let mut tokenizer = tokenizers::Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(ByteLevel::new(vocab.add_space_prefix, true, true)));
    tokenizer.with_decoder(Some(ByteLevel::default()));

    // A control token outside the alphabet is a llama.cpp mislabel of a byte sequence: HF leaves it to the merges.
    let specials: Vec<AddedToken> = vocab
        .control_ids
        .iter()
        .filter_map(|&id| vocab.tokens.get(id as usize))
        .filter(|token| alphabet.spells(token))
        .map(|token| AddedToken::from(token.clone(), true))
        .collect();
    tokenizer.add_special_tokens(&specials);
    let user_defined: Vec<AddedToken> = vocab
        .user_defined_ids
        .iter()
        .filter_map(|&id| vocab.tokens.get(id as usize))
        .filter(|token| alphabet.spells(token))
        .map(|token| AddedToken::from(token.clone(), false).normalized(false))
        .collect();
    tokenizer.add_tokens(&user_defined);
    Ok((tokenizer, unspellable))
}

/// Whether text may hold byte `b` and a byte-level vocabulary must therefore spell it: every byte but the ASCII
/// control bytes other than tab, newline and carriage return, the lead bytes 0xF1 and 0xF2 (which only start code
/// points of the unassigned planes 4–11) — real vocabularies lack these: SmolLM2 misses six controls, 0xF1 and
/// 0xF2; such a byte is left out of the ids, as Hugging Face does, and `Tokenizer::unspellable_in` finds them so
/// callers can warn — and the bytes that never occur in UTF-8 (0xC0, 0xC1, 0xF5–0xFF).
fn required_byte(b: u8) -> bool {
    let control = (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0x7f;
    let unassigned_planes = matches!(b, 0xf1 | 0xf2);
    let never_in_utf8 = matches!(b, 0xc0 | 0xc1 | 0xf5..=0xff);
    !control && !unassigned_planes && !never_in_utf8
}

/// Refuses a vocabulary (`has(token)`) without a byte token that text may need: without it, text holding that
/// byte would be dropped without a word (byte-level BPE has no unknown token). Returns the bytes it lacks that
/// text rarely holds (ASCII controls, unassigned planes), to warn about.
pub(crate) fn check_byte_tokens(
    alphabet: &ByteAlphabet,
    has: impl Fn(&str) -> bool,
) -> Result<Vec<u8>, TokenizerError> {
    let missing: Vec<u8> = (0..=255u8)
        .filter(|&b| !has(alphabet.chars[usize::from(b)].to_string().as_str()))
        .collect();
    if let Some(&b) = missing.iter().find(|&&b| required_byte(b)) {
        return Err(TokenizerError::BadMetadata {
            key: "tokenizer.ggml.tokens".into(),
            msg: format!(
                "the vocabulary has no token for byte 0x{b:02x} (`{}`, {} byte tokens missing in all): a byte-level \
                 vocabulary must spell every byte text can hold, or such text would be dropped silently",
                alphabet.chars[usize::from(b)],
                missing.len()
            ),
        });
    }
    Ok(missing)
}

/// GPT-2's byte-level spelling: each byte stands for one character (printable Latin-1 bytes for themselves, the
/// others shifted to U+0100 and up, in byte order).
pub(crate) struct ByteAlphabet {
    chars: [char; 256],
    set: HashSet<char>,
}

impl ByteAlphabet {
    pub(crate) fn new() -> Self {
        let printable = |b: u32| (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
        let mut chars = ['\0'; 256];
        let mut shifted = 0;
        for (b, c) in (0u32..).zip(chars.iter_mut()) {
            let code = if printable(b) {
                b
            } else {
                shifted += 1;
                255 + shifted
            };
            // Every code is below U+0200, so a valid char.
            *c = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
        }
        ByteAlphabet {
            chars,
            set: chars.into_iter().collect(),
        }
    }

    /// Whether `token` is written in the alphabet (as every token of a well-formed byte-level vocabulary is).
    fn spells(&self, token: &str) -> bool {
        token.chars().all(|c| self.set.contains(&c))
    }

    /// `token` in the alphabet: as is when it already is, else spelled from its UTF-8 bytes (llama.cpp stores a
    /// token whose bytes are not valid UTF-8 raw, while the merges spell it in the alphabet).
    fn respell(&self, token: &str) -> String {
        if self.spells(token) {
            token.to_string()
        } else {
            token.bytes().map(|b| self.chars[usize::from(b)]).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alphabet_is_gpt2s() {
        let a = ByteAlphabet::new();
        assert_eq!(a.set.len(), 256);
        assert_eq!(
            (a.chars[b' ' as usize], a.chars[b'\n' as usize], a.chars[b'A' as usize]),
            ('Ġ', 'Ċ', 'A')
        );
        assert_eq!((a.chars[0], a.chars[0x7f], a.chars[0xad]), ('Ā', 'ġ', 'Ń'));
        assert_eq!(a.respell("Ġhello"), "Ġhello");
        assert_eq!(
            a.respell("\u{fffd}"),
            "ï¿½",
            "Phi-4's raw U+FFFD, as its merges spell it"
        );
        assert_eq!(a.respell("a b"), "aĠb");
    }
}
