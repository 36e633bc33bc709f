//! The tokenizer on a tiny hand-made byte-level BPE, built through the GGUF path: merges, special tokens,
//! unicode, BOS/EOS options, streaming decode, the chat prompt, and every malformed-metadata error.

mod support;

use dbrmt_formats::gguf::GgufFile;
use dbrmt_formats::gguf::MetaValue;
use dbrmt_testkit::gguf::{i32_array, str_array};
use dbrmt_tokenizer::{Tokenizer, TokenizerError};
use support::tiny_vocab::{self, metadata, with};

fn load(test: &str, kvs: &[(&str, MetaValue)]) -> Result<Tokenizer, TokenizerError> {
    let path = tiny_vocab::write(&tiny_vocab::temp_dir(test), kvs);
    let file = GgufFile::open(&path).expect("the test GGUF file parses");
    Tokenizer::from_gguf(&file)
}

fn tiny(test: &str) -> Tokenizer {
    load(test, &metadata(&[])).expect("the tiny vocabulary loads")
}

/// Ids of tokens given in the vocabulary's spelling.
fn ids(tok: &Tokenizer, tokens: &[&str]) -> Vec<u32> {
    tokens
        .iter()
        .map(|t| {
            tok.token_to_id(t)
                .unwrap_or_else(|| panic!("`{t}` is in the tiny vocabulary"))
        })
        .collect()
}

#[test]
fn merges_apply_in_rank_order() {
    let tok = tiny("merges");
    assert_eq!(tok.encode("hello world").unwrap(), ids(&tok, &["hello", "Ġworld"]));
    // `a b` (rank 9) before `b c` (rank 10).
    assert_eq!(tok.encode("abc").unwrap(), ids(&tok, &["ab", "c"]));
    assert_eq!(tok.encode("bc").unwrap(), ids(&tok, &["bc"]));
    assert_eq!(
        tok.encode("helloworld").unwrap(),
        ids(&tok, &["hello", "w", "or", "ld"])
    );
}

#[test]
fn spaces_and_newlines_split_as_gpt2() {
    let tok = tiny("spaces");
    // ` ?\p{L}+`: the space joins the word after it; `\s+(?!\S)`: of a run of spaces, the last joins the word.
    assert_eq!(
        tok.encode("hello  world").unwrap(),
        ids(&tok, &["hello", "Ġ", "Ġworld"])
    );
    assert_eq!(
        tok.encode("hello\nworld").unwrap(),
        ids(&tok, &["hello", "Ċ", "w", "or", "ld"])
    );
}

#[test]
fn digits_split_as_hugging_face_does() {
    let tok = tiny("digits");
    // HF's GGUF loader uses the GPT-2 split (` ?\p{N}+`), so the run `12` reaches BPE whole and merges.
    assert_eq!(tok.encode("x12").unwrap(), ids(&tok, &["x", "12"]));
    assert_eq!(tok.encode(" 12").unwrap(), ids(&tok, &["Ġ", "12"]));
    assert_eq!(tok.encode("123").unwrap(), ids(&tok, &["12", "3"]));
}

#[test]
fn control_tokens_are_matched_whole() {
    let tok = tiny("specials");
    let got = tok.encode("<|im_start|>user\nhello<|im_end|>").unwrap();
    let mut want = vec![1];
    want.extend(ids(&tok, &["u", "s", "e", "r", "Ċ", "hello"]));
    want.push(2);
    assert_eq!(got, want);
    assert_eq!(tok.decode(&got).unwrap(), "<|im_start|>user\nhello<|im_end|>");
    assert_eq!(tok.decode_with(&got, true).unwrap(), "user\nhello");
}

#[test]
fn unicode_round_trips_through_bytes() {
    let tok = tiny("unicode");
    let e_acute = tok.encode("é").unwrap();
    assert_eq!(e_acute, ids(&tok, &["Ã", "©"]), "é is the bytes C3 A9");
    for s in [
        "é ü 😀 中文\n\t  x",
        "  leading and trailing  ",
        "",
        "\r\n\u{a0}",
        "a'll 's 've",
    ] {
        let encoded = tok.encode(s).unwrap();
        assert_eq!(tok.decode(&encoded).unwrap(), s, "{encoded:?}");
    }
}

#[test]
fn a_byte_missing_from_the_vocabulary_is_dropped_as_hf_does() {
    // SmolLM2's vocabulary lacks 21 of the 256 byte characters (six ASCII control bytes, bytes invalid in UTF-8).
    // HF 5.23's BPE has no unknown token, so such a byte is left out of the ids.
    let tok = load("unknown", &metadata(&[0x01])).unwrap();
    let want = ids(&tok, &["a", "b"]);
    assert_eq!(tok.encode("a\u{1}b").unwrap(), want);
    assert_eq!(tok.encode("a\u{1}\u{1}b").unwrap(), want);
}

#[test]
fn bos_and_eos_follow_the_metadata() {
    let text = "hello";
    let hello = ids(&tiny("bos-none"), &["hello"]);
    let off = load("bos-off", &metadata(&[])).unwrap();
    assert_eq!(off.encode(text).unwrap(), hello);
    assert!(!off.adds_bos());
    let absent = load("bos-absent", &with(metadata(&[]), "tokenizer.ggml.add_bos_token", None)).unwrap();
    assert_eq!(
        absent.encode(text).unwrap(),
        hello,
        "absent means no BOS for a byte-level vocabulary"
    );
    let on = with(
        metadata(&[]),
        "tokenizer.ggml.add_bos_token",
        Some(MetaValue::Bool(true)),
    );
    let on = with(on, "tokenizer.ggml.add_eos_token", Some(MetaValue::Bool(true)));
    let on = load("bos-on", &on).unwrap();
    assert_eq!(on.encode(text).unwrap(), [vec![1], hello.clone(), vec![2]].concat());
    assert_eq!(on.encode_plain(text).unwrap(), hello, "encode_plain adds nothing");
}

#[test]
fn special_ids_and_stop_ids() {
    let tok = tiny("ids");
    assert_eq!((tok.bos_id(), tok.eos_id()), (Some(1), Some(2)));
    let s = tok.special_ids();
    assert_eq!((s.pad, s.unk), (Some(2), Some(0)));
    assert_eq!(tok.stop_ids(), &[0, 2], "EOS and <|endoftext|>");
    assert_eq!(tok.vocab_size(), tiny_vocab::tokens(&[]).len());
}

#[test]
fn decode_stream_releases_whole_characters() {
    let tok = tiny("stream");
    let text = "héllo 😀 world<|im_end|>";
    let encoded = tok.encode(text).unwrap();
    let mut stream = tok.decode_stream(false);
    let mut pieces = Vec::new();
    for &id in &encoded {
        pieces.push(stream.push(id).unwrap());
    }
    assert_eq!(stream.finish().unwrap(), "");
    let joined: String = pieces.iter().flatten().map(String::as_str).collect();
    assert_eq!(joined, text);
    // `h` is released at once; the first byte of `é` is held until its second byte arrives.
    assert_eq!(pieces[0].as_deref(), Some("h"));
    assert_eq!(pieces[1], None);
    assert_eq!(pieces[2].as_deref(), Some("é"));
    // The emoji is four byte tokens (after the space's): three held, then the whole character.
    assert_eq!(
        pieces[5..10],
        [Some(" ".into()), None, None, None, Some("😀".into())],
        "{pieces:?}"
    );

    let mut skipping = tok.decode_stream(true);
    let mut out = String::new();
    for &id in &encoded {
        out.extend(skipping.push(id).unwrap());
    }
    assert_eq!(out, "héllo 😀 world");
}

/// Found by the tokenizer fuzz target: text that really ends in U+FFFD used to be held back for ever, each id
/// re-decoding every held one (quadratic: a few thousand ids took minutes). Now a run is released in linear work,
/// with the same text as decoding everything at once, a character after the run included.
#[test]
fn decode_stream_releases_a_run_of_real_replacement_characters() {
    let tok = tiny("stream-fffd");
    let text = format!("a{}東京 b", "\u{fffd}".repeat(20_000));
    let encoded = tok.encode(&text).unwrap();
    assert!(encoded.len() >= 60_000);
    let start = std::time::Instant::now();
    let mut stream = tok.decode_stream(false);
    let mut out = String::new();
    for &id in &encoded {
        out.extend(stream.push(id).unwrap());
    }
    out.push_str(&stream.finish().unwrap());
    assert_eq!(out, text);
    assert!(start.elapsed().as_secs() < 10, "{:?}", start.elapsed());
}

#[test]
fn decode_stream_finish_returns_an_incomplete_character() {
    let tok = tiny("stream-finish");
    let emoji = tok.encode("😀").unwrap();
    let mut stream = tok.decode_stream(false);
    assert_eq!(stream.push(emoji[0]).unwrap(), None);
    assert_eq!(stream.finish().unwrap(), "\u{fffd}");
}

#[test]
fn decode_refuses_an_id_outside_the_vocabulary() {
    let tok = tiny("decode-range");
    let n = tok.vocab_size() as u32;
    let e = tok.decode(&[1, n]).unwrap_err();
    assert!(matches!(e, TokenizerError::IdOutOfRange { id, .. } if id == n), "{e}");
    let mut stream = tok.decode_stream(false);
    assert!(stream.push(n).is_err());
}

#[test]
fn chat_prompt_from_the_metadata_template() {
    let tok = tiny("chat");
    let prompt = tok.apply_chat("hello").unwrap();
    assert_eq!(
        prompt,
        "<|im_start|>system\nYou are a test.<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
    );
    let encoded = tok.encode_chat("hello").unwrap();
    assert_eq!(encoded, tok.encode_plain(&prompt).unwrap());
    assert_eq!(encoded.iter().filter(|&&id| id == 1).count(), 3, "three <|im_start|>");

    let none = load("chat-none", &with(metadata(&[]), "tokenizer.chat_template", None)).unwrap();
    assert!(matches!(none.apply_chat("hi"), Err(TokenizerError::NoChatTemplate)));
    let other = with(
        metadata(&[]),
        "tokenizer.chat_template",
        Some(MetaValue::Str("{{ messages }}".into())),
    );
    let other = load("chat-other", &other).unwrap();
    assert!(matches!(
        other.apply_chat("hi"),
        Err(TokenizerError::UnsupportedChatTemplate { .. })
    ));
    assert!(
        other.encode("hi").is_ok(),
        "an unknown template does not stop plain tokenisation"
    );
}

#[test]
fn for_model_finds_the_gguf_file_or_its_directory() {
    let dir = tiny_vocab::temp_dir("for-model");
    let path = tiny_vocab::write(&dir, &metadata(&[]));
    let by_file = Tokenizer::for_model(&path).unwrap();
    let by_dir = Tokenizer::for_model(&dir).unwrap();
    assert_eq!(by_file.encode("hello").unwrap(), by_dir.encode("hello").unwrap());
    assert!(Tokenizer::for_model(&dir.join("absent.gguf")).is_err());
    let empty = tiny_vocab::temp_dir("for-model-empty");
    assert!(matches!(
        Tokenizer::for_model(&empty),
        Err(TokenizerError::NotFound { .. })
    ));
    // Two GGUF files: which one is meant is unclear, as for the model loader.
    std::fs::copy(&path, dir.join("other.gguf")).unwrap();
    assert!(matches!(Tokenizer::for_model(&dir), Err(TokenizerError::Gguf(_))));
}

#[test]
fn a_truncated_gguf_file_is_an_error() {
    let dir = tiny_vocab::temp_dir("truncated");
    let path = tiny_vocab::write(&dir, &metadata(&[]));
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(Tokenizer::for_model(&path), Err(TokenizerError::Gguf(_))));
}

#[test]
fn missing_metadata_is_named() {
    for key in ["tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.merges"] {
        let e = load("missing", &with(metadata(&[]), key, None)).unwrap_err();
        assert_eq!(e.to_string(), format!("tokenizer metadata missing: {key}"));
    }
}

#[test]
fn other_tokenizer_models_are_refused() {
    let kvs = with(
        metadata(&[]),
        "tokenizer.ggml.model",
        Some(MetaValue::Str("llama".into())),
    );
    let e = load("model", &kvs).unwrap_err();
    assert!(
        matches!(e, TokenizerError::UnsupportedModel { ref model } if model == "llama"),
        "{e}"
    );
    assert!(e.to_string().contains("gpt2"), "{e}");
}

/// Loads with one key replaced and returns the error, which must name the key.
fn bad(test: &str, key: &'static str, value: MetaValue) -> TokenizerError {
    let e = load(test, &with(metadata(&[]), key, Some(value))).unwrap_err();
    assert!(e.to_string().contains(key), "{e}");
    e
}

#[test]
fn malformed_metadata_is_an_error_not_a_panic() {
    let n = tiny_vocab::tokens(&[]).len() as u32;
    bad("pre", "tokenizer.ggml.pre", MetaValue::Str("llama-bpe".into()));
    bad("model-type", "tokenizer.ggml.model", MetaValue::U32(2));
    bad("tokens-type", "tokenizer.ggml.tokens", i32_array(vec![1, 2]));
    bad("tokens-empty", "tokenizer.ggml.tokens", str_array(Vec::<String>::new()));
    bad("types-len", "tokenizer.ggml.token_type", i32_array(vec![3, 1]));
    bad("bos-range", "tokenizer.ggml.bos_token_id", MetaValue::U32(n));
    bad("eos-negative", "tokenizer.ggml.eos_token_id", MetaValue::I32(-1));
    bad("add-bos-type", "tokenizer.ggml.add_bos_token", MetaValue::U32(1));
    bad("merge-spaces", "tokenizer.ggml.merges", str_array(["a  b"]));
    bad("merge-one", "tokenizer.ggml.merges", str_array(["ab"]));
    bad("template-type", "tokenizer.chat_template", MetaValue::U32(0));
    // A merge of tokens the vocabulary lacks is refused by the BPE builder.
    let kvs = with(metadata(&[]), "tokenizer.ggml.merges", Some(str_array(["q z"])));
    let e = load("merge-unknown", &kvs).unwrap_err();
    assert!(matches!(e, TokenizerError::Library(_)), "{e}");
}

#[test]
fn user_defined_tokens_are_matched_whole_but_not_special() {
    let tok = tiny("user-defined");
    let think = tok.token_to_id("<think>").unwrap();
    assert_eq!(
        tok.encode("a<think>b").unwrap(),
        [ids(&tok, &["a"]), vec![think], ids(&tok, &["b"])].concat()
    );
    assert_eq!(
        tok.decode_with(&[think], true).unwrap(),
        "<think>",
        "not skipped as a special token"
    );
}

#[test]
fn without_token_types_no_token_is_matched_whole() {
    let tok = load("no-types", &with(metadata(&[]), "tokenizer.ggml.token_type", None)).unwrap();
    let text = "<|im_start|>";
    let encoded = tok.encode(text).unwrap();
    assert_eq!(
        encoded,
        ids(&tok, &["<", "|", "i", "m", "_", "s", "t", "a", "r", "t", "|", ">"])
    );
    assert_eq!(tok.decode(&encoded).unwrap(), text);
    assert_eq!(tok.stop_ids(), &[2], "only EOS: no special end-of-turn token");
}

#[test]
fn a_space_prefix_is_added_where_the_metadata_asks() {
    let kvs = with(
        metadata(&[]),
        "tokenizer.ggml.add_space_prefix",
        Some(MetaValue::Bool(true)),
    );
    let tok = load("space-prefix", &kvs).unwrap();
    assert_eq!(tok.encode("hello").unwrap(), ids(&tok, &["Ġ", "hello"]));
    assert_eq!(tiny("no-space-prefix").encode("hello").unwrap(), ids(&tok, &["hello"]));
}
