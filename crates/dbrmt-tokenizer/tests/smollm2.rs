//! The tokenizer of SmolLM2-135M-Instruct's GGUF file against Hugging Face transformers' (fixtures made by
//! `testdata/smollm2/make_reference.py`): ids of every case, decode round trips, the chat prompt.

use std::path::PathBuf;

use dbrmt_formats::gguf::GgufFile;
use dbrmt_tokenizer::Tokenizer;
use serde_json::Value;

const NEEDS_MODEL: &str = "needs models/smollm2: cargo xtask fetch-model smollm2";
const MODEL: &str = "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

fn repo_root() -> PathBuf {
    std::env::var_os("DBRMT_REPO_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

fn smollm2() -> Tokenizer {
    let path = repo_root().join(MODEL);
    let file = GgufFile::open(&path).unwrap_or_else(|e| panic!("{e} ({NEEDS_MODEL})"));
    Tokenizer::from_gguf(&file).expect("SmolLM2's tokenizer loads")
}

fn fixture(name: &str) -> Value {
    let path = repo_root().join("testdata/smollm2").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn ids_of(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("ids are an array")
        .iter()
        .map(|id| {
            id.as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .expect("an id is a u32")
        })
        .collect()
}

/// `(text, HF's ids)` of every case of `tokenizer_cases.json`.
fn cases() -> Vec<(String, Vec<u32>)> {
    let cases = fixture("tokenizer_cases.json");
    let cases = cases.as_array().expect("tokenizer_cases.json is an array");
    assert!(!cases.is_empty(), "tokenizer_cases.json has no cases");
    cases
        .iter()
        .map(|c| {
            (
                c["text"].as_str().expect("a case has text").to_string(),
                ids_of(&c["ids"]),
            )
        })
        .collect()
}

#[test]
#[ignore = "SmolLM2 on the CPU model: cargo xtask ci runs it in release (after cargo xtask fetch-model smollm2)"]
fn metadata_is_read_as_stated() {
    let tok = smollm2();
    assert_eq!(tok.vocab_size(), 49152);
    assert_eq!((tok.bos_id(), tok.eos_id()), (Some(1), Some(2)));
    assert!(!tok.adds_bos(), "tokenizer.ggml.add_bos_token = false");
    assert_eq!(tok.stop_ids(), &[0, 2], "<|im_end|> (EOS) and <|endoftext|>");
    assert_eq!(tok.id_to_token(1).as_deref(), Some("<|im_start|>"));
}

#[test]
#[ignore = "SmolLM2 on the CPU model: cargo xtask ci runs it in release (after cargo xtask fetch-model smollm2)"]
fn every_case_gives_hf_ids_and_round_trips() {
    let tok = smollm2();
    let mut failures = Vec::new();
    let cases = cases();
    for (text, want) in &cases {
        let got = tok.encode(text).expect("encodes");
        if &got != want {
            failures.push(format!("{text:?}: ids {got:?}, HF {want:?}"));
        }
        let back = tok.decode(&got).expect("decodes");
        if &back != text {
            failures.push(format!("{text:?}: decodes to {back:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
#[ignore = "SmolLM2 on the CPU model: cargo xtask ci runs it in release (after cargo xtask fetch-model smollm2)"]
fn streaming_decode_gives_the_same_text() {
    let tok = smollm2();
    for (text, ids) in cases() {
        let mut stream = tok.decode_stream(false);
        let mut out = String::new();
        for id in ids {
            out.extend(stream.push(id).expect("decodes"));
        }
        out.push_str(&stream.finish().expect("decodes"));
        assert_eq!(out, text);
    }
}

#[test]
#[ignore = "SmolLM2 on the CPU model: cargo xtask ci runs it in release (after cargo xtask fetch-model smollm2)"]
fn chat_prompt_matches_hf() {
    let tok = smollm2();
    let chat = fixture("chat_template.json");
    let user = chat["message"]
        .as_str()
        .expect("chat_template.json has the user `message`");
    let rendered = chat["rendered"].as_str().expect("chat_template.json has `rendered`");
    assert_eq!(
        tok.chat_template(),
        chat["template"].as_str(),
        "the template HF rendered is the model's"
    );
    assert_eq!(tok.apply_chat(user).unwrap(), rendered);
    assert!(rendered.starts_with(
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    ));
    assert_eq!(tok.encode_chat(user).unwrap(), ids_of(&chat["ids"]));
}
