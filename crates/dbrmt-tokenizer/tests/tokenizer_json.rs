//! The tokenizer of a safetensors checkpoint: `tokenizer.json` with `tokenizer_config.json` (or `config.json`)
//! beside it, found from the model directory or a file in it.

mod support;

use std::path::Path;

use dbrmt_tokenizer::{Tokenizer, TokenizerError};
use serde_json::{json, Value};
use support::tiny_vocab;

/// A `tokenizer.json` for the tiny vocabulary whose post-processor prepends `<|endoftext|>` as BOS.
fn tokenizer_json() -> Value {
    let vocab: serde_json::Map<String, Value> = tiny_vocab::tokens(&[])
        .into_iter()
        .enumerate()
        .map(|(id, t)| (t, json!(id)))
        .collect();
    let added: Vec<Value> = tiny_vocab::SPECIALS
        .iter()
        .enumerate()
        .map(|(id, t)| {
            json!({"id": id, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                              "normalized": false, "special": true})
        })
        .collect();
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added, "normalizer": null,
        "pre_tokenizer": byte_level,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [0], "tokens": ["<|endoftext|>"]}}
        },
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": tiny_vocab::MERGES}
    })
}

fn write_json(path: &Path, v: &Value) {
    std::fs::write(path, serde_json::to_string(v).unwrap()).unwrap();
}

/// A checkpoint directory: a placeholder `model.safetensors`, the tokenizer, and `tokenizer_config.json`.
fn checkpoint(test: &str) -> std::path::PathBuf {
    let dir = tiny_vocab::temp_dir(test);
    std::fs::write(dir.join("model.safetensors"), b"").unwrap();
    write_json(&dir.join("tokenizer.json"), &tokenizer_json());
    let config = json!({
        "bos_token": "<|endoftext|>",
        "eos_token": {"content": "<|im_end|>", "special": true},
        "chat_template": tiny_vocab::CHAT_TEMPLATE,
    });
    write_json(&dir.join("tokenizer_config.json"), &config);
    dir
}

#[test]
fn a_checkpoint_directory_uses_its_tokenizer_json() {
    let dir = checkpoint("json-dir");
    let tok = Tokenizer::for_model(&dir).unwrap();
    let hello = tok.token_to_id("hello").unwrap();
    let world = tok.token_to_id("Ġworld").unwrap();
    assert_eq!(
        tok.encode("hello world").unwrap(),
        vec![0, hello, world],
        "BOS from the post-processor"
    );
    assert_eq!(tok.encode_plain("hello world").unwrap(), vec![hello, world]);
    assert_eq!((tok.bos_id(), tok.eos_id()), (Some(0), Some(2)));
    assert_eq!(tok.decode(&[hello, world]).unwrap(), "hello world");
    let chat = tok.encode_chat("hello").unwrap();
    assert_eq!(
        chat.first(),
        Some(&1),
        "the chat prompt starts with <|im_start|>, no BOS added"
    );
    assert!(tok
        .apply_chat("hello")
        .unwrap()
        .starts_with("<|im_start|>system\nYou are a test.<|im_end|>\n"));

    // A file of the checkpoint, or the tokenizer.json itself, names the same tokenizer.
    for path in [dir.join("model.safetensors"), dir.join("tokenizer.json")] {
        let other = Tokenizer::for_model(&path).unwrap();
        assert_eq!(other.encode("hello world").unwrap(), tok.encode("hello world").unwrap());
    }
}

#[test]
fn ids_fall_back_to_config_json() {
    let dir = checkpoint("json-config");
    std::fs::remove_file(dir.join("tokenizer_config.json")).unwrap();
    write_json(
        &dir.join("config.json"),
        &json!({"bos_token_id": 0, "eos_token_id": [2, 0]}),
    );
    let tok = Tokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
    assert_eq!((tok.bos_id(), tok.eos_id()), (Some(0), Some(2)));
    assert!(matches!(tok.apply_chat("hi"), Err(TokenizerError::NoChatTemplate)));
}

#[test]
fn a_checkpoint_without_tokenizer_json_is_reported() {
    let dir = checkpoint("json-missing");
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    let e = Tokenizer::for_model(&dir).unwrap_err();
    assert!(matches!(e, TokenizerError::NotFound { .. }), "{e}");
    assert!(e.to_string().contains("tokenizer.json"), "{e}");
}

#[test]
fn malformed_json_files_are_errors() {
    let dir = checkpoint("json-bad");
    std::fs::write(dir.join("tokenizer_config.json"), b"{ not json").unwrap();
    let e = Tokenizer::for_model(&dir).unwrap_err();
    assert!(e.to_string().contains("tokenizer_config.json"), "{e}");
    std::fs::write(dir.join("tokenizer.json"), b"{\"model\": 3}").unwrap();
    let e = Tokenizer::for_model(&dir).unwrap_err();
    assert!(matches!(e, TokenizerError::File { .. }), "{e}");
    assert!(e.to_string().contains("tokenizer.json"), "{e}");
}
