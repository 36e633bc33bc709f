//! The fuzz harnesses: one function per parser of untrusted input, each taking the fuzzer's bytes. A harness may
//! return early on any error (bad input is expected); a panic, an abort, a hang or an allocation beyond the
//! fuzzer's limit is a bug. Where a parse succeeds, the harness also checks what must then hold (ranges inside
//! the file, values finite, ids inside the vocabulary, text round trips).
//!
//! Used by the `cargo fuzz` targets in `fuzz_targets/` and, on stable, replayed over the committed corpus by
//! `crates/dbrmt-tokenizer/tests/fuzz_corpus.rs` (which includes this file), so every crash found stays fixed.

use std::collections::BTreeMap;
use std::path::Path;

use dbrmt_formats::checkpoint::SafetensorsFile;
use dbrmt_formats::config::ConfigFile;
use dbrmt_formats::gguf::{GgufFile, MetaValue};
use dbrmt_formats::load::expected_shape;
use dbrmt_formats::source::tensor_ids;
use dbrmt_formats::{limits, memory, npy, ArmtParams, LoadOptions, ModelSource, SavedState, StateExpect};
use dbrmt_tokenizer::Tokenizer;

/// What the inputs are called in messages.
const LABEL: &str = "fuzz-input";

/// ARMT parameters a GGUF or a plain config is run with (as `--armt-init` gives them).
const ARMT: ArmtParams = ArmtParams {
    num_mem_tokens: 2,
    d_mem: 4,
    segment_size: 8,
    nu: 3,
    correction: true,
};

/// A safetensors file: the header validated (length, JSON, offsets tiling the data), then every tensor's bytes.
pub fn safetensors_header(data: &[u8]) {
    let Ok(file) = SafetensorsFile::from_bytes(Path::new(LABEL), data) else {
        return;
    };
    for (name, entry) in file.tensors() {
        let bytes = file
            .bytes(entry)
            .unwrap_or_else(|| panic!("`{name}` was validated but lies outside"));
        let elements = entry.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if let Some(n) = elements.and_then(|n| n.checked_mul(entry.dtype.bitsize())) {
            assert_eq!(n.div_ceil(8), bytes.len(), "`{name}`: shape and bytes disagree");
        }
    }
    let _ = file.metadata().len();
}

/// A GGUF file: header and metadata, every tensor dequantised, the LLaMA config, the tokenizer of its metadata,
/// and the model it describes (loaded as the CPU model does).
pub fn gguf(data: &[u8]) {
    let Ok(file) = GgufFile::from_bytes(Path::new(LABEL), data) else {
        return;
    };
    for t in file.tensors() {
        if let Ok((shape, values)) = file.read_f32(&t.name) {
            assert_eq!(shape.iter().product::<usize>(), values.len(), "`{}`", t.name);
        }
    }
    if let Ok(tok) = Tokenizer::from_gguf(&file) {
        tokenizer_round_trip(&tok, "Hello, world! 12 + 30 = 42\n\tcafé 東京");
    }
    let _ = dbrmt_formats::gguf::llama_config(&file);
    let opts = LoadOptions {
        armt_init: Some(7),
        armt_init_when_missing: None,
        armt_params: Some(ARMT),
        armt_file: None,
    };
    if let Ok(source) = ModelSource::from_gguf(file, &opts) {
        if let Ok(model) = source.load() {
            assert!(
                model.weights.embed.iter().all(|x| x.is_finite()),
                "non-finite weights loaded"
            );
        }
    }
}

/// A `.npy` file, as token ids and as an f32 array.
pub fn npy(data: &[u8]) {
    if let Ok(ids) = npy::ids_from_bytes(data) {
        assert!(ids.len() <= data.len() / 4);
    }
    if let Ok((shape, values)) = npy::f32_from_bytes(data) {
        assert_eq!(shape.iter().product::<usize>(), values.len());
    }
}

/// A `config.json`: parsed, completed with ARMT parameters, then every size the model forms from it (shapes,
/// the parameter count, memory estimates) computed — overflow checks on (`cargo fuzz run -a`) catch any wrap.
pub fn config_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = ConfigFile::parse(text, Path::new("config.json")) else {
        return;
    };
    let Ok(cfg) = file.model_config(Some(ARMT)) else {
        return;
    };
    limits::parameter_count(&cfg).expect("a parsed config's parameter count fits");
    let _ = (cfg.d_key(), cfg.segment_rows(), cfg.segments_for(usize::MAX));
    let _ = (cfg.llama.q_dim(), cfg.llama.kv_dim());
    let mut elements = 0usize;
    for id in tensor_ids(&cfg) {
        let n = expected_shape(id, &cfg).iter().product::<usize>();
        elements = elements.checked_add(n).expect("the model's elements fit");
    }
    assert_eq!(Some(elements as u64), Some(memory::parameters(&cfg)));
    let shape = memory::PrefillShape {
        tokens: 100_000,
        logit_rows: 100_000,
        keep_hidden: true,
        threads: 64,
    };
    let _ = (
        memory::cpu_model_bytes(&cfg),
        memory::cpu_prefill_bytes(&cfg, shape),
        memory::cpu_session_bytes(&cfg, 8, 64),
        memory::gpu_weights_bytes(&cfg),
        memory::state_bytes(&cfg),
    );
}

/// The identity and shapes the saved-state inputs are checked against (the seed corpus is written for them).
pub const STATE_IDENTITY: &str = "dbrmt-id1:0123456789abcdef";
pub const STATE_EXPECT: StateExpect<'static> = StateExpect {
    identity: STATE_IDENTITY,
    layers: 2,
    d_key: 6,
    hidden: 4,
    vocab: Some(100),
    segment_size: Some(8),
    parts: None,
};

/// A saved memory state: refused unless its tensors, values, metadata and checksum all hold.
pub fn saved_state(data: &[u8]) {
    let Ok(loaded) = SavedState::from_bytes(Path::new(LABEL), data, &STATE_EXPECT) else {
        return;
    };
    let s = &loaded.saved;
    assert_eq!(s.state.layers.len(), 2);
    assert!(s.open_ids.len() <= 8 && s.open_ids.iter().all(|&id| id < 100));
    for l in &s.state.layers {
        assert_eq!((l.a.len(), l.z.len()), (24, 6));
        assert!(l.a.iter().chain(&l.z).all(|x| x.is_finite()));
    }
}

/// GPT-2's byte-level alphabet: the character standing for each byte.
fn byte_chars() -> Vec<char> {
    let printable = |b: u32| (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
    let mut shifted = 0;
    (0u32..256)
        .map(|b| {
            let code = if printable(b) {
                b
            } else {
                shifted += 1;
                255 + shifted
            };
            char::from_u32(code).unwrap_or('?')
        })
        .collect()
}

/// A byte-level vocabulary made from the input, then the rest of the input encoded and decoded.
///
/// Input: `flags`, then extra tokens separated by 0x00, then 0xFF, then the text. The vocabulary is the 256 byte
/// tokens (flags bit 0: without the ones the next byte names), the extra tokens spelled in the byte alphabet, and
/// a merge for each extra token whose halves are tokens; bit 1 marks every third extra token a control token, bit
/// 2 every third (offset one) user-defined; bit 3 asks for BOS/EOS. The tokenizer must build or refuse cleanly;
/// once built, every id it gives must be in range and, without added tokens, the text must round trip.
pub fn tokenizer(data: &[u8]) {
    let (spec, text) = match data.iter().position(|&b| b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let (flags, spec) = spec.split_first().map_or((0, &[][..]), |(f, rest)| (*f, rest));
    let chars = byte_chars();
    let spell = |bytes: &[u8]| -> String { bytes.iter().map(|&b| chars[usize::from(b)]).collect() };
    let mut tokens: Vec<String> = Vec::new();
    let mut extra = spec.split(|&b| b == 0).filter(|t| !t.is_empty());
    let dropped: Vec<u8> = if flags & 1 != 0 {
        extra.next().map(<[u8]>::to_vec).unwrap_or_default()
    } else {
        Vec::new()
    };
    for b in 0..=255u8 {
        if !dropped.contains(&b) {
            tokens.push(chars[usize::from(b)].to_string());
        }
    }
    let base = tokens.len();
    let mut merges = Vec::new();
    for t in extra.take(200) {
        let word = spell(t);
        if tokens.contains(&word) {
            continue;
        }
        let mut it = word.chars();
        if let Some(first) = it.next() {
            let rest: String = it.collect();
            if !rest.is_empty() && tokens.contains(&first.to_string()) && tokens.contains(&rest) {
                merges.push(format!("{first} {rest}"));
            }
        }
        tokens.push(word);
    }
    let types: Vec<i32> = (0..tokens.len())
        .map(|i| match (i.checked_sub(base).map(|k| k % 3), flags & 6) {
            (Some(0), f) if f & 2 != 0 => 3,
            (Some(1), f) if f & 4 != 0 => 4,
            _ => 1,
        })
        .collect();
    let added = types.iter().any(|&t| t != 1);
    let str_array = |items: Vec<String>| MetaValue::Array(items.into_iter().map(MetaValue::Str).collect());
    let mut meta = BTreeMap::from([
        ("tokenizer.ggml.model".to_string(), MetaValue::Str("gpt2".into())),
        ("tokenizer.ggml.tokens".to_string(), str_array(tokens.clone())),
        ("tokenizer.ggml.merges".to_string(), str_array(merges)),
        (
            "tokenizer.ggml.token_type".to_string(),
            MetaValue::Array(types.into_iter().map(MetaValue::I32).collect()),
        ),
    ]);
    if flags & 8 != 0 {
        let last = tokens.len() as u32 - 1;
        meta.insert("tokenizer.ggml.bos_token_id".into(), MetaValue::U32(last));
        meta.insert("tokenizer.ggml.eos_token_id".into(), MetaValue::U32(0));
        meta.insert("tokenizer.ggml.add_bos_token".into(), MetaValue::Bool(true));
    }
    let Ok(tok) = Tokenizer::from_gguf_metadata(&meta) else {
        assert!(
            !dropped.is_empty() || tokens.len() > base,
            "the 256 byte tokens alone must build"
        );
        return;
    };
    assert!(tok.id_bound() <= tokens.len());
    let text = String::from_utf8_lossy(text);
    let ids = tokenizer_round_trip(&tok, &text);
    if !added && tok.unspellable_in(&text).is_none() {
        assert_eq!(ids.as_deref(), Some(text.as_ref()), "the text does not round trip");
    }
}

/// Encodes `text`, checks the ids, decodes them whole and streamed (both must agree); returns the decoded text.
fn tokenizer_round_trip(tok: &Tokenizer, text: &str) -> Option<String> {
    let ids = tok.encode_plain(text).ok()?;
    assert!(
        ids.iter().all(|&id| (id as usize) < tok.id_bound()),
        "an id outside the tokenizer"
    );
    let whole = tok.decode(&ids).expect("ids the tokenizer gave decode");
    let mut stream = tok.decode_stream(false);
    let mut pieces = String::new();
    for &id in &ids {
        if let Some(p) = stream.push(id).expect("streamed decode") {
            pieces.push_str(&p);
        }
    }
    pieces.push_str(&stream.finish().expect("streamed decode ends"));
    // a run of U+FFFD may be released early and cut a character after it (decode_stream.rs, MAX_HELD)
    if !whole.contains('\u{fffd}') {
        assert_eq!(pieces, whole, "streamed and whole decoding differ");
    }
    let _ = tok.encode(text);
    Some(whole)
}
