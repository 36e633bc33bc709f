//! The `Tokenizer`: encode text to ids, decode ids to text, the special ids, and the chat prompt.

use std::collections::BTreeMap;
use std::fmt;

use crate::chat::{ChatMessage, ChatTemplate};
use crate::decode_stream::DecodeStream;
use crate::gguf::{GgufFile, MetaValue};
use crate::gguf_vocab::GgufVocab;
use crate::{byte_level, TokenizerError};

/// Texts of the special tokens that end a generation besides EOS (llama.cpp's end-of-generation list).
const END_OF_GENERATION: &[&str] = &[
    "<|endoftext|>",
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end|>",
    "<end_of_turn>",
];

/// The special token ids a model defines (each optional).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpecialIds {
    /// Beginning of sequence.
    pub bos: Option<u32>,
    /// End of sequence.
    pub eos: Option<u32>,
    /// Padding.
    pub pad: Option<u32>,
    /// The id given to text the vocabulary cannot spell.
    pub unk: Option<u32>,
}

/// A model's tokenizer: byte-level BPE from GGUF metadata, or any `tokenizer.json`.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    special: SpecialIds,
    /// Prepend BOS / append EOS in `encode` (from the GGUF metadata; a `tokenizer.json` does this in its own
    /// post-processor, so both are false there).
    add_bos: bool,
    add_eos: bool,
    vocab_size: usize,
    chat_template: Option<String>,
    stop_ids: Vec<u32>,
    /// One more than the largest id the tokenizer can produce (added tokens included).
    id_bound: usize,
    /// Bytes the vocabulary cannot spell (left out of the ids, as Hugging Face does): ASCII controls, unassigned planes.
    unspellable: Vec<u8>,
}

impl Tokenizer {
    /// The tokenizer stored in a GGUF file's metadata (`tokenizer.ggml.*`, byte-level BPE only).
    pub fn from_gguf(file: &GgufFile) -> Result<Self, TokenizerError> {
        Self::from_gguf_metadata(file.metadata())
    }

    /// As [`Tokenizer::from_gguf`], from the metadata alone.
    pub fn from_gguf_metadata(meta: &BTreeMap<String, MetaValue>) -> Result<Self, TokenizerError> {
        let vocab = GgufVocab::from_metadata(meta)?;
        let (inner, unspellable) = byte_level::build(&vocab)?;
        let special = SpecialIds {
            bos: vocab.bos_id,
            eos: vocab.eos_id,
            pad: vocab.pad_id,
            unk: vocab.unk_id,
        };
        Ok(Self::assemble(
            inner,
            special,
            (vocab.add_bos, vocab.add_eos),
            vocab.tokens.len(),
            vocab.chat_template,
            unspellable,
        ))
    }

    /// Puts the parts together and works out the end-of-generation ids.
    pub(crate) fn assemble(
        inner: tokenizers::Tokenizer,
        special: SpecialIds,
        (add_bos, add_eos): (bool, bool),
        vocab_size: usize,
        chat_template: Option<String>,
        unspellable: Vec<u8>,
    ) -> Self {
        let mut stop_ids: Vec<u32> = special.eos.into_iter().collect();
        for (id, token) in inner.get_added_tokens_decoder() {
            if token.special && END_OF_GENERATION.contains(&token.content.as_str()) && !stop_ids.contains(&id) {
                stop_ids.push(id);
            }
        }
        stop_ids.sort_unstable();
        let id_bound = inner
            .get_vocab(true)
            .values()
            .max()
            .map_or(0, |&id| id as usize + 1)
            .max(vocab_size);
        Tokenizer {
            inner,
            special,
            add_bos,
            add_eos,
            vocab_size,
            chat_template,
            stop_ids,
            id_bound,
            unspellable,
        }
    }

    /// One more than the largest id this tokenizer can produce: a model whose vocabulary is smaller cannot take
    /// its ids (checked when the two are paired, before any work).
    pub fn id_bound(&self) -> usize {
        self.id_bound
    }

    /// Refuses pairing with a model of `model_vocab` ids when this tokenizer can produce ids outside it.
    pub fn check_model_vocab(&self, model_vocab: usize) -> Result<(), TokenizerError> {
        if self.id_bound > model_vocab {
            return Err(TokenizerError::VocabMismatch {
                tokenizer: self.id_bound,
                model: model_vocab,
            });
        }
        Ok(())
    }

    /// The first byte of `text` that the vocabulary cannot spell (an ASCII control byte such a vocabulary lacks, say),
    /// with its offset: it would be left out of the ids.
    pub fn unspellable_in(&self, text: &str) -> Option<(usize, u8)> {
        if self.unspellable.is_empty() {
            return None;
        }
        text.bytes().enumerate().find(|(_, b)| self.unspellable.contains(b))
    }

    /// The ids of `text`, with BOS / EOS added where the model asks for them. Special tokens written in the text
    /// (`<|im_start|>`) are matched whole.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        self.encode_with(text, true)
    }

    /// The ids of `text` with no BOS / EOS added (for text that continues other text, and for chat prompts,
    /// whose template writes its own special tokens).
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        self.encode_with(text, false)
    }

    fn encode_with(&self, text: &str, add_special: bool) -> Result<Vec<u32>, TokenizerError> {
        let encoding = self
            .inner
            .encode_fast(text, add_special)
            .map_err(|e| TokenizerError::library("encoding", e))?;
        let mut ids = Vec::with_capacity(encoding.len() + 2);
        if add_special && self.add_bos {
            ids.extend(self.special.bos);
        }
        ids.extend_from_slice(encoding.get_ids());
        if add_special && self.add_eos {
            ids.extend(self.special.eos);
        }
        Ok(ids)
    }

    /// The text of `ids`, special tokens included (so `decode(encode(s)) == s` for text the vocabulary covers).
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.decode_with(ids, false)
    }

    /// The text of `ids`, dropping special tokens where `skip_special` is set.
    pub fn decode_with(&self, ids: &[u32], skip_special: bool) -> Result<String, TokenizerError> {
        if let Some(&id) = ids.iter().find(|&&id| self.inner.id_to_token(id).is_none()) {
            return Err(TokenizerError::IdOutOfRange {
                id,
                vocab_size: self.vocab_size,
            });
        }
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| TokenizerError::library("decoding", e))
    }

    /// A streaming decoder for generation: push ids one at a time, get text pieces as they complete.
    pub fn decode_stream(&self, skip_special: bool) -> DecodeStream<'_> {
        DecodeStream::new(self, skip_special)
    }

    /// The prompt for one user turn in the model's chat template, ending where the assistant's answer begins.
    pub fn apply_chat(&self, user: &str) -> Result<String, TokenizerError> {
        let template = self.chat_template.as_deref().ok_or(TokenizerError::NoChatTemplate)?;
        Ok(ChatTemplate::recognise(template)?.render_user(user))
    }

    /// The prompt for a conversation in the model's chat template, ending where the assistant's answer begins
    /// ([`ChatTemplate::render`]; `continues`: the conversation's earlier turns are already in the model's memory).
    pub fn apply_chat_messages(&self, messages: &[ChatMessage<'_>], continues: bool) -> Result<String, TokenizerError> {
        let template = self.chat_template.as_deref().ok_or(TokenizerError::NoChatTemplate)?;
        Ok(ChatTemplate::recognise(template)?.render(messages, continues))
    }

    /// The ids of [`Tokenizer::apply_chat`]'s prompt. As Hugging Face's `apply_chat_template`, no BOS / EOS is
    /// added: the template writes the special tokens it wants.
    pub fn encode_chat(&self, user: &str) -> Result<Vec<u32>, TokenizerError> {
        self.encode_plain(&self.apply_chat(user)?)
    }

    /// The model's chat template text (Jinja), if it has one.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// The beginning-of-sequence id, if the model defines one.
    pub fn bos_id(&self) -> Option<u32> {
        self.special.bos
    }

    /// The end-of-sequence id, if the model defines one (SmolLM2-Instruct: `<|im_end|>`).
    pub fn eos_id(&self) -> Option<u32> {
        self.special.eos
    }

    /// BOS, EOS, padding and unknown ids.
    pub fn special_ids(&self) -> SpecialIds {
        self.special
    }

    /// Ids after which generation stops: EOS and the special end-of-turn tokens of the vocabulary
    /// (`<|im_end|>`, `<|endoftext|>`, `<|eot_id|>`, …), sorted.
    pub fn stop_ids(&self) -> &[u32] {
        &self.stop_ids
    }

    /// Whether `encode` prepends BOS.
    pub fn adds_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether `encode` appends EOS.
    pub fn adds_eos(&self) -> bool {
        self.add_eos
    }

    /// Number of token ids (the model's embedding rows, for a GGUF vocabulary).
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The string of one token id in the vocabulary's own spelling (byte-level: `Ġ` for a space).
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The id of a token string in the vocabulary's own spelling.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
}

/// A summary: the vocabulary itself is too large to print.
impl fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size)
            .field("special", &self.special)
            .field("add_bos", &self.add_bos)
            .field("add_eos", &self.add_eos)
            .field("stop_ids", &self.stop_ids)
            .field("chat_template", &self.chat_template.is_some())
            .finish()
    }
}
