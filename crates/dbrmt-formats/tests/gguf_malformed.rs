//! Every bad GGUF input is a `FormatError` that names the file and what is wrong, never a panic.

use dbrmt_formats::gguf::{GgmlType, GgufFile, MetaValue};
use dbrmt_formats::{load_model, FormatError, LoadOptions, NameLayout};
use dbrmt_testkit::{
    gguf::{armt_options, tiny_llama, GgufBuilder},
    Scratch,
};

/// Opens `bytes` written as a GGUF file and returns the error, which must name the file.
fn open_error(bytes: &[u8]) -> FormatError {
    let dir = Scratch::new("bad");
    let path = dir.write("bad.gguf", bytes);
    let err = GgufFile::open(&path).expect_err("must be refused");
    assert!(err.to_string().contains("bad.gguf"), "{err}");
    err
}

/// The message of an invalid-file error.
fn invalid(bytes: &[u8]) -> String {
    match open_error(bytes) {
        FormatError::Gguf { msg, .. } => msg,
        other => panic!("expected FormatError::Gguf, got {other:?}"),
    }
}

/// Loads `builder` as a model (with --armt-init) and returns the error.
fn load_error(builder: &GgufBuilder, opts: &LoadOptions) -> FormatError {
    let dir = Scratch::new("badload");
    let path = dir.write("m.gguf", builder.bytes());
    let err = load_model(&path, opts).expect_err("must be refused");
    assert!(err.to_string().contains("m.gguf"), "{err}");
    err
}

fn tiny() -> GgufBuilder {
    tiny_llama(1, true).gguf
}

/// A small valid file: one Q4_0 tensor of 64 elements and one F32 tensor of 4.
fn small() -> GgufBuilder {
    let mut g = GgufBuilder::default();
    g.meta("general.architecture", MetaValue::Str("llama".into()));
    g.tensor("a", &[64], GgmlType::Q4_0.id(), vec![0; 36]);
    g.tensor("b", &[4], GgmlType::F32.id(), vec![0; 16]);
    g
}

#[test]
fn the_small_file_is_valid() {
    let dir = Scratch::new("small");
    let f = GgufFile::open(&dir.write("s.gguf", small().bytes())).unwrap();
    assert_eq!(f.tensors().len(), 2);
    assert_eq!(f.read_f32("a").unwrap().1, vec![-0.0; 64]);
}

#[test]
fn truncated_anywhere() {
    let bytes = tiny().bytes();
    let dir = Scratch::new("trunc");
    let full = GgufFile::open(&dir.write("full.gguf", &bytes)).unwrap();
    let data_start = full.data_start();
    // In the magic, the counts, the metadata, the tensor infos: the header cannot be read.
    for cut in [0, 3, 6, 20, 100, 1000, data_start / 2] {
        let msg = invalid(&bytes[..cut]);
        assert!(
            msg.contains("truncated") || msg.contains("more than the"),
            "cut {cut}: {msg}"
        );
    }
    // In the data section: the header is whole but a tensor's data runs past the end.
    for cut in [data_start + 100, bytes.len() - 1] {
        let msg = invalid(&bytes[..cut]);
        assert!(msg.contains("runs past the end of the file"), "cut {cut}: {msg}");
    }
}

#[test]
fn wrong_magic_and_versions() {
    let mut bytes = small().bytes();
    bytes[..4].copy_from_slice(b"GGML");
    assert!(invalid(&bytes).contains("not a GGUF file: starts with \"GGML\""));
    for (version, want) in [
        (1u32, "GGUF version 1 is not supported (only 2 and 3)"),
        (4, "GGUF version 4 is not supported"),
        (3u32.swap_bytes(), "big-endian GGUF (version 3) is not supported"),
    ] {
        let mut g = small();
        g.version = version;
        let msg = invalid(&g.bytes());
        assert!(msg.contains(want), "version {version}: {msg}");
    }
}

#[test]
fn unknown_tensor_type() {
    let mut g = small();
    g.tensors[1].type_id = 99;
    assert!(invalid(&g.bytes()).contains("tensor `b` has unknown tensor type 99"));
    // A retired ggml id is unknown too.
    g.tensors[1].type_id = 4;
    assert!(invalid(&g.bytes()).contains("unknown tensor type 4"));
}

#[test]
fn known_but_unsupported_tensor_type() {
    // Q5_0 has a known size, so the file opens, but the loader cannot dequantise it.
    let mut g = tiny();
    let t = g.find("blk.0.attn_v.weight");
    let (cols, rows) = (t.dims[0], t.dims[1]);
    t.type_id = GgmlType::Q5_0.id();
    t.data = vec![0; (cols * rows / 32 * 22) as usize];
    match load_error(&g, &armt_options(0)) {
        FormatError::GgufTensorType { name, ggml_type, .. } => {
            assert_eq!((name.as_str(), ggml_type.as_str()), ("blk.0.attn_v.weight", "Q5_0"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn tensor_data_past_the_end_or_misaligned() {
    let mut g = small();
    g.tensors[1].offset_override = Some(1 << 40);
    assert!(invalid(&g.bytes()).contains("tensor `b` (F32, 16 bytes at offset 1099511627776"));
    g.tensors[1].offset_override = Some(u64::MAX - 31);
    assert!(invalid(&g.bytes()).contains("runs past the end of the file"));
    g.tensors[1].offset_override = Some(40);
    assert!(invalid(&g.bytes()).contains("data offset 40, not a multiple of the alignment 32"));
}

#[test]
fn absurd_counts_lengths_and_shapes() {
    // A tensor count far beyond what the file could hold.
    let mut bytes = small().bytes();
    bytes[8..16].copy_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(invalid(&bytes).contains("tensor count 1152921504606846976"));
    let mut bytes = small().bytes();
    bytes[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(invalid(&bytes).contains("metadata count"));
    // The first key's length.
    let mut bytes = small().bytes();
    bytes[24..32].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    assert!(invalid(&bytes).contains("metadata key #0"));
    // Too many dimensions, a zero-dimensional tensor, an element count that overflows, a partial block.
    let mut g = small();
    g.tensors[1].dims = vec![1, 1, 1, 1, 4];
    assert!(invalid(&g.bytes()).contains("has 5 dimensions"));
    g.tensors[1].dims = vec![];
    assert!(invalid(&g.bytes()).contains("has 0 dimensions"));
    g.tensors[1].dims = vec![1 << 40, 1 << 40];
    assert!(invalid(&g.bytes()).contains("overflows"));
    let mut g = small();
    g.tensors[0].dims = vec![48];
    assert!(invalid(&g.bytes()).contains("row length ne[0] = 48 is not a multiple of the Q4_0 block size 32"));
}

#[test]
fn duplicates_and_bad_alignment() {
    let mut g = small();
    g.tensors[1].name = "a".into();
    assert!(invalid(&g.bytes()).contains("tensor `a` appears twice"));
    let mut g = small();
    g.meta.push(("general.architecture".into(), MetaValue::Str("x".into())));
    assert!(invalid(&g.bytes()).contains("metadata key `general.architecture` appears twice"));
    let mut g = small();
    g.meta("general.alignment", MetaValue::U32(3));
    assert!(invalid(&g.bytes()).contains("general.alignment must be a power of two, found 3"));
    g.meta("general.alignment", MetaValue::Str("32".into()));
    assert!(invalid(&g.bytes()).contains("general.alignment must be a power of two"));
    // A value type that does not exist: patch the first metadata value's type (after magic, version, two
    // counts and the key) to 13.
    let mut bytes = small().bytes();
    let key_len = "general.architecture".len();
    let at = 4 + 4 + 8 + 8 + 8 + key_len;
    bytes[at..at + 4].copy_from_slice(&13u32.to_le_bytes());
    assert!(invalid(&bytes).contains("metadata `general.architecture` has unknown value type 13"));
}

#[test]
fn missing_tensor_and_wrong_shape() {
    let mut g = tiny();
    g.remove_tensor("blk.1.ffn_up.weight");
    match load_error(&g, &armt_options(0)) {
        FormatError::MissingTensor { name, layout, .. } => {
            assert_eq!((name.as_str(), layout), ("blk.1.ffn_up.weight", NameLayout::Gguf))
        }
        other => panic!("{other:?}"),
    }
    // A corrupt block count is refused before anything is allocated for it: beyond the limit of layers, or
    // different from the layers the file holds (more would be missing tensors, fewer would drop layers).
    let mut g = tiny();
    g.meta("llama.block_count", MetaValue::U32(u32::MAX));
    let msg = config_msg(load_error(&g, &armt_options(0)));
    assert!(
        msg.contains("`llama.block_count` = 4294967295 is more than the limit of 1024"),
        "{msg}"
    );
    for count in [1, 3] {
        let mut g = tiny();
        g.meta("llama.block_count", MetaValue::U32(count));
        let msg = config_msg(load_error(&g, &armt_options(0)));
        assert!(
            msg.contains(&format!(
                "`llama.block_count` = {count} but the file holds tensors of 2 layers"
            )),
            "{msg}"
        );
    }
    let mut g = tiny();
    // attn_k ([out 32, in 64]) stored as [64, 32]: the same element count and bytes, the wrong shape.
    let t = g.find("blk.0.attn_k.weight");
    t.dims = vec![t.dims[0] / 2, t.dims[1] * 2];
    match load_error(&g, &armt_options(0)) {
        FormatError::GgufShape {
            name, expected, found, ..
        } => {
            assert_eq!(name, "blk.0.attn_k.weight");
            assert_eq!((expected, found), (vec![32, 64], vec![64, 32]));
        }
        other => panic!("{other:?}"),
    }
}

/// A change to the tiny model's file.
type Edit = fn(&mut GgufBuilder);

/// The message of a metadata (config) error.
fn config_msg(err: FormatError) -> String {
    match err {
        FormatError::Config { msg, .. } => msg,
        other => panic!("expected FormatError::Config, got {other:?}"),
    }
}

#[test]
fn metadata_errors() {
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "another architecture",
            |g| {
                g.meta("general.architecture", MetaValue::Str("qwen2".into()));
            },
            "architecture `qwen2` is not supported (only `llama`)",
        ),
        (
            "no architecture",
            |g| {
                g.remove_meta("general.architecture");
            },
            "missing `general.architecture`",
        ),
        (
            "no block count",
            |g| {
                g.remove_meta("llama.block_count");
            },
            "missing `llama.block_count`",
        ),
        (
            "wrongly typed field",
            |g| {
                g.meta("llama.embedding_length", MetaValue::Str("64".into()));
            },
            "`llama.embedding_length` must be a non-negative integer",
        ),
        (
            "heads not a multiple of kv heads",
            |g| {
                g.meta("llama.attention.head_count_kv", MetaValue::U32(3));
            },
            "must be a multiple of llama.attention.head_count_kv (3)",
        ),
        (
            "partial rotary",
            |g| {
                g.meta("llama.rope.dimension_count", MetaValue::U32(8));
            },
            "`llama.rope.dimension_count` = 8 differs from the head dimension 16",
        ),
        (
            "bad epsilon",
            |g| {
                g.meta("llama.attention.layer_norm_rms_epsilon", MetaValue::F32(-1.0));
            },
            "must be a positive number",
        ),
        (
            "no vocabulary",
            |g| {
                g.remove_meta("llama.vocab_size").remove_meta("tokenizer.ggml.tokens");
            },
            "neither `llama.vocab_size` nor `tokenizer.ggml.tokens` is present",
        ),
        (
            "rope scaling kind",
            |g| {
                g.meta("llama.rope.scaling.type", MetaValue::Str("yarn".into()));
            },
            "RoPE scaling type `yarn`",
        ),
        (
            "llama3 rope frequencies",
            |g| {
                g.tensor("rope_freqs.weight", &[8], 0, vec![0; 32]);
            },
            "llama3 RoPE scaling (tensor `rope_freqs.weight`) is not supported yet",
        ),
        (
            "attention bias",
            |g| {
                g.tensor("blk.1.attn_q.bias", &[64], 0, vec![0; 256]);
            },
            "tensor `blk.1.attn_q.bias`: attention biases are not supported",
        ),
        (
            "mixture of experts",
            |g| {
                g.meta("llama.expert_count", MetaValue::U32(8));
            },
            "mixture of experts (llama.expert_count = 8) is not supported",
        ),
    ];
    for (label, edit, want) in cases {
        let mut g = tiny();
        edit(&mut g);
        let msg = config_msg(load_error(&g, &armt_options(0)));
        assert!(msg.contains(want), "{label}: {msg}");
    }
    // `none` scaling is no scaling.
    let mut g = tiny();
    g.meta("llama.rope.scaling.type", MetaValue::Str("none".into()));
    let dir = Scratch::new("none");
    assert!(load_model(&dir.write("m.gguf", g.bytes()), &armt_options(0)).is_ok());
}

#[test]
fn gguf_needs_armt_init_and_params() {
    let err = load_error(&tiny(), &LoadOptions::default());
    assert!(matches!(err, FormatError::NoArmtTensors { .. }), "{err:?}");
    assert!(err.to_string().contains("pass --armt-init SEED"), "{err}");
    let mut opts = armt_options(0);
    opts.armt_params = None;
    let msg = config_msg(load_error(&tiny(), &opts));
    assert!(
        msg.contains("no ARMT parameters: give them with --armt-init SEED --segment-size T"),
        "{msg}"
    );
    // The parameters are validated as for a config.json.
    let mut opts = armt_options(0);
    if let Some(p) = opts.armt_params.as_mut() {
        p.segment_size = 0;
    }
    assert!(config_msg(load_error(&tiny(), &opts)).contains("segment_size` must be at least 1"));
}

#[test]
fn several_gguf_files_in_a_directory() {
    let dir = Scratch::new("several");
    dir.write("a.gguf", small().bytes());
    dir.write("b.gguf", small().bytes());
    let err = load_model(dir.path(), &armt_options(0)).unwrap_err();
    assert!(
        err.to_string().contains("several *.gguf files (a.gguf, b.gguf)"),
        "{err}"
    );
}

#[test]
fn a_missing_gguf_file_is_named() {
    let dir = Scratch::new("missing");
    let path = dir.path().join("absent.gguf");
    let err = load_model(&path, &armt_options(0)).unwrap_err();
    assert!(matches!(err, FormatError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("absent.gguf: "), "{err}");
    assert!(!err.to_string().contains("config.json"), "{err}");
}
