//! Malformed safetensors files and unusable tensors give errors that say what and where — never a panic.

mod checkpoint_support;

use checkpoint_support::{edited_fixture, fixture, raw_file, Raw, Scratch};
use dbrmt_formats::checkpoint::Checkpoint;
use dbrmt_formats::{load_model, FormatError, LoadOptions, NameLayout};
use safetensors::Dtype;

/// Opens a directory holding only `model.safetensors` with these bytes; returns the error's message.
fn open_error(label: &str, bytes: &[u8]) -> String {
    let dir = Scratch::new(label);
    dir.write("model.safetensors", bytes);
    let err = Checkpoint::open(dir.path()).expect_err("malformed file must not open");
    assert!(matches!(err, FormatError::Checkpoint { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("model.safetensors"), "names the file: {msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");
    msg
}

fn f32_header(entries: &[(&str, &[usize], [usize; 2])]) -> String {
    let fields: Vec<String> = entries
        .iter()
        .map(|(n, shape, [s, e])| format!(r#""{n}":{{"dtype":"F32","shape":{shape:?},"data_offsets":[{s},{e}]}}"#))
        .collect();
    format!("{{{}}}", fields.join(","))
}

#[test]
fn shorter_than_the_length_field() {
    assert!(open_error("short", &[1, 2, 3]).contains("too short"));
    assert!(open_error("empty", &[]).contains("too short"));
}

#[test]
fn header_length_past_the_end() {
    let mut bytes = 1000u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    assert!(open_error("hdrlen", &bytes).contains("header length 1000 runs past the end"));
    let huge = u64::MAX.to_le_bytes();
    assert!(open_error("hdrmax", &huge).contains("runs past the end"));
}

#[test]
fn header_not_json() {
    assert!(open_error("json", &raw_file("{not json", &[])).contains("not a JSON object"));
    assert!(open_error("utf8", &raw_file("\u{0}", &[0xff])).contains("JSON"));
    let mut bad_utf8 = 2u64.to_le_bytes().to_vec();
    bad_utf8.extend_from_slice(&[0xff, 0xfe]);
    assert!(open_error("utf8b", &bad_utf8).contains("not UTF-8"));
}

#[test]
fn truncated_data() {
    let mut bytes = std::fs::read(fixture("tiny-single-short").join("model.safetensors")).unwrap();
    bytes.truncate(bytes.len() - 100);
    let msg = open_error("trunc", &bytes);
    assert!(msg.contains("outside the data section"), "{msg}");
}

#[test]
fn overlapping_offsets() {
    let header = f32_header(&[("a", &[4], [0, 16]), ("b", &[4], [8, 24])]);
    let msg = open_error("overlap", &raw_file(&header, &[0; 24]));
    assert!(msg.contains("`a` and `b` overlap"), "{msg}");
}

#[test]
fn out_of_bounds_offsets() {
    let header = f32_header(&[("a", &[4], [0, 16])]);
    let msg = open_error("oob", &raw_file(&header, &[0; 8]));
    assert!(
        msg.contains("tensor `a` has data_offsets [0, 16] outside the data section (8 bytes)"),
        "{msg}"
    );
    // Contiguous offsets ending at u64::MAX: safetensors 0.8 alone panics here in a build with overflow checks
    // (`buffer_end + N_LEN + n` in `read_metadata`); checked first, it is an ordinary error.
    let big = 1u64 << 60;
    let fields: Vec<String> = (0..16u64)
        .map(|i| {
            let (s, e) = (i * big, if i == 15 { u64::MAX } else { (i + 1) * big });
            format!(
                r#""t{i}":{{"dtype":"U8","shape":[{}],"data_offsets":[{s},{e}]}}"#,
                e - s
            )
        })
        .collect();
    let header = format!("{{{}}}", fields.join(","));
    assert!(open_error("huge", &raw_file(&header, &[])).contains("outside the data section"));
    let header = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}"#;
    assert!(open_error("backwards", &raw_file(header, &[0; 8])).contains("outside the data section"));
}

#[test]
fn gaps_and_trailing_bytes() {
    let header = f32_header(&[("a", &[2], [0, 8]), ("b", &[2], [16, 24])]);
    assert!(
        open_error("gap", &raw_file(&header, &[0; 24])).contains("bytes 8..16 of the data section belong to no tensor")
    );
    let header = f32_header(&[("a", &[2], [0, 8])]);
    assert!(open_error("trailing", &raw_file(&header, &[0; 12])).contains("cover 8 bytes but the data section has 12"));
}

#[test]
fn checks_left_to_safetensors() {
    // Shape × dtype disagreeing with the offsets, an unknown dtype, missing offsets.
    let header = f32_header(&[("a", &[3], [0, 16])]);
    assert!(open_error("size", &raw_file(&header, &[0; 16])).contains("invalid safetensors file"));
    let header = r#"{"a":{"dtype":"F99","shape":[1],"data_offsets":[0,4]}}"#;
    assert!(open_error("dtype", &raw_file(header, &[0; 4])).contains("invalid safetensors file"));
    let header = r#"{"a":{"dtype":"F32","shape":[1]}}"#;
    assert!(open_error("nooffsets", &raw_file(header, &[0; 4])).contains("no valid `data_offsets`"));
    let header = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}"#;
    assert!(open_error("3offsets", &raw_file(header, &[0; 4])).contains("no valid `data_offsets`"));
}

#[test]
fn a_valid_hand_built_file_opens() {
    let header = f32_header(&[("b", &[2], [8, 16]), ("a", &[2], [0, 8]), ("z", &[0], [16, 16])]);
    let values: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let dir = Scratch::new("valid");
    dir.write("model.safetensors", raw_file(&header, &values));
    let ckpt = Checkpoint::open(dir.path()).unwrap();
    assert_eq!(ckpt.read_f32("b").unwrap(), (vec![2], vec![3.0, 4.0]));
    assert_eq!(ckpt.read_f32("z").unwrap(), (vec![0], vec![]));
    assert!(matches!(ckpt.read_f32("nope"), Err(FormatError::Checkpoint { .. })));
}

#[test]
fn missing_tensor_names_it_and_the_layout() {
    let dir = edited_fixture("tiny-armt-names", |t| {
        t.remove("memory_cell.model.model.layers.2.layer.mlp.up_proj.weight")
            .unwrap();
    });
    let err = load_model(dir.path(), &LoadOptions::default()).unwrap_err();
    match &err {
        FormatError::MissingTensor { name, layout, .. } => {
            assert_eq!(name, "memory_cell.model.model.layers.2.layer.mlp.up_proj.weight");
            assert_eq!(*layout, NameLayout::Armt);
        }
        other => panic!("{other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("missing tensor `memory_cell.model.model.layers.2.layer.mlp.up_proj.weight`"),
        "{msg}"
    );
    assert!(msg.contains("ARMT names"), "{msg}");
}

#[test]
fn untied_model_needs_its_lm_head() {
    let dir = edited_fixture("tiny-armt-names", |t| {
        t.remove("memory_cell.model.lm_head.weight").unwrap();
    });
    let err = load_model(dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(&err, FormatError::MissingTensor { name, .. } if name == "memory_cell.model.lm_head.weight"),
        "{err}"
    );
}

#[test]
fn wrong_shape_names_tensor_and_both_shapes() {
    let dir = edited_fixture("tiny-hf-tied-partial", |t| {
        t.insert("model.norm.weight".into(), Raw::f32(&[127], &[1.0; 127]));
    });
    let err = load_model(dir.path(), &LoadOptions::default()).unwrap_err();
    match &err {
        FormatError::Shape {
            name, expected, found, ..
        } => {
            assert_eq!(
                (name.as_str(), expected.as_slice(), found.as_slice()),
                ("model.norm.weight", &[128][..], &[127][..])
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .contains("tensor `model.norm.weight` has shape [127], expected [128]"),
        "{err}"
    );

    // W_mb.weight must be [1, d], not [d].
    let dir = edited_fixture("tiny-hf-tied-partial", |t| {
        t.insert("model.layers.1.W_mb.weight".into(), Raw::f32(&[128], &[0.5; 128]));
    });
    let err = load_model(dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("has shape [128], expected [1, 128]"), "{err}");
}

#[test]
fn unsupported_dtypes_name_tensor_and_dtype() {
    for (dtype, width) in [(Dtype::I32, 4), (Dtype::F64, 8), (Dtype::U8, 1)] {
        let dir = edited_fixture("tiny-hf-tied-partial", |t| {
            t.insert(
                "model.norm.weight".into(),
                Raw {
                    dtype,
                    shape: vec![128],
                    data: vec![0; 128 * width],
                },
            );
        });
        let err = load_model(dir.path(), &LoadOptions::default()).unwrap_err();
        match &err {
            FormatError::Dtype { name, dtype: found, .. } => {
                assert_eq!(name, "model.norm.weight");
                assert_eq!(*found, dtype.to_string());
            }
            other => panic!("{other:?}"),
        }
        assert!(
            err.to_string()
                .contains(&format!("has dtype {dtype}; only BF16, F16 and F32")),
            "{err}"
        );
    }
}

#[test]
fn f16_weights_are_converted() {
    let dir = edited_fixture("tiny-hf-tied-partial", |t| {
        let values: Vec<f32> = (0..128).map(|i| i as f32 / 64.0).collect();
        let data = values
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect();
        t.insert(
            "model.norm.weight".into(),
            Raw {
                dtype: Dtype::F16,
                shape: vec![128],
                data,
            },
        );
    });
    let m = load_model(dir.path(), &LoadOptions::default()).unwrap();
    assert_eq!(m.weights.norm[64], 1.0);
    assert_eq!(m.weights.norm[3], 3.0 / 64.0);
}

#[test]
fn directory_without_a_checkpoint() {
    let dir = Scratch::new("nofile");
    dir.write("config.json", checkpoint_support::fixture_config("tiny-armt-names"));
    let err = load_model(dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, FormatError::Checkpoint { .. }), "{err:?}");
    assert!(err.to_string().contains("no model.safetensors"), "{err}");

    let missing = Checkpoint::open(&dir.path().join("does-not-exist")).unwrap_err();
    assert!(matches!(missing, FormatError::Io { .. }), "{missing:?}");
}

#[test]
fn config_errors_come_before_the_checkpoint() {
    let dir = Scratch::new("badcfg");
    dir.write("config.json", r#"{"vocab_size": 10}"#);
    let err = load_model(dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(
        err.to_string().ends_with("config.json: missing field `hidden_size`"),
        "{err}"
    );
    let err = load_model(&dir.path().join("nowhere"), &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, FormatError::Io { .. }), "{err:?}");
}
