//! A hand-made byte-level BPE vocabulary, written as a GGUF file the way llama.cpp's converter writes one.

use std::path::{Path, PathBuf};

use dbrmt_formats::gguf::MetaValue;
use dbrmt_testkit::gguf::{i32_array, metadata_only, str_array};

/// The control tokens, ids 0, 1, 2 (as in SmolLM2).
pub const SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// Merges in rank order. `a b` outranks `b c`, so "abc" is `ab c`; `1 2` joins digits (the GPT-2 split keeps a
/// run of digits together).
pub const MERGES: [&str; 12] = [
    "h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld", "a b", "b c", "1 2",
];

/// User-defined tokens (`token_type` 4), after the merge results: matched whole, but not special.
pub const USER_DEFINED: [&str; 1] = ["<think>"];

/// A ChatML template with a default system prompt, in SmolLM2's spelling.
pub const CHAT_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a test.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// GPT-2's byte-to-character map: printable Latin-1 bytes stand for themselves, the others are shifted to
/// U+0100 and up, in byte order.
pub fn byte_chars() -> Vec<char> {
    let printable = |b: u32| (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
    let mut shifted = 0;
    (0u32..256)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).expect("Latin-1")
            } else {
                shifted += 1;
                char::from_u32(255 + shifted).expect("U+0100 and up")
            }
        })
        .collect()
}

/// The vocabulary: the control tokens, every byte character except those in `drop_bytes`, then the merge results.
pub fn tokens(drop_bytes: &[u8]) -> Vec<String> {
    let mut tokens: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
    for (b, c) in byte_chars().into_iter().enumerate() {
        if !drop_bytes.contains(&(b as u8)) {
            tokens.push(c.to_string());
        }
    }
    tokens.extend(MERGES.iter().map(|m| m.replace(' ', "")));
    tokens.extend(USER_DEFINED.iter().map(|t| t.to_string()));
    tokens
}

/// The metadata of the tiny vocabulary (SmolLM2's keys): `drop_bytes` are left out of the vocabulary.
pub fn metadata(drop_bytes: &[u8]) -> Vec<(&'static str, MetaValue)> {
    let tokens = tokens(drop_bytes);
    let user_defined_from = tokens.len() - USER_DEFINED.len();
    let types: Vec<i32> = (0..tokens.len())
        .map(|i| match i {
            i if i < SPECIALS.len() => 3,
            i if i >= user_defined_from => 4,
            _ => 1,
        })
        .collect();
    vec![
        ("general.architecture", MetaValue::Str("llama".into())),
        ("tokenizer.ggml.model", MetaValue::Str("gpt2".into())),
        ("tokenizer.ggml.pre", MetaValue::Str("smollm".into())),
        ("tokenizer.ggml.tokens", str_array(tokens)),
        ("tokenizer.ggml.token_type", i32_array(types)),
        ("tokenizer.ggml.merges", str_array(MERGES.iter().copied())),
        ("tokenizer.ggml.bos_token_id", MetaValue::U32(1)),
        ("tokenizer.ggml.eos_token_id", MetaValue::U32(2)),
        ("tokenizer.ggml.unknown_token_id", MetaValue::U32(0)),
        ("tokenizer.ggml.padding_token_id", MetaValue::U32(2)),
        ("tokenizer.ggml.add_space_prefix", MetaValue::Bool(false)),
        ("tokenizer.ggml.add_bos_token", MetaValue::Bool(false)),
        ("tokenizer.chat_template", MetaValue::Str(CHAT_TEMPLATE.into())),
    ]
}

/// Replaces (or with `None` removes) one key.
pub fn with(
    mut kvs: Vec<(&'static str, MetaValue)>,
    key: &'static str,
    value: Option<MetaValue>,
) -> Vec<(&'static str, MetaValue)> {
    kvs.retain(|(k, _)| *k != key);
    kvs.extend(value.map(|v| (key, v)));
    kvs
}

/// A fresh directory for one test's files.
pub fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dbrmt-tokenizer-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a temporary directory");
    dir
}

/// Writes `kvs` as `dir/tiny.gguf` and returns its path.
pub fn write(dir: &Path, kvs: &[(&str, MetaValue)]) -> PathBuf {
    let path = dir.join("tiny.gguf");
    std::fs::write(&path, metadata_only(kvs)).expect("writing the test GGUF file");
    path
}
