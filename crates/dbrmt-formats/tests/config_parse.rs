//! `config.json` parsing: HF defaults, the `armt` object, and one-line errors naming the file and the field.

use std::path::Path;

use dbrmt_formats::config::{ConfigFile, Llama3Scaling};
use dbrmt_formats::{ArmtParams, FormatError, ModelConfig};
use serde_json::{json, Value};

const PATH: &str = "models/x/config.json";

fn base() -> Value {
    json!({
        "vocab_size": 512, "hidden_size": 128, "intermediate_size": 256,
        "num_hidden_layers": 4, "num_attention_heads": 4,
        "armt": { "num_mem_tokens": 8, "d_mem": 16, "segment_size": 32 }
    })
}

fn parse(v: &Value) -> Result<ModelConfig, FormatError> {
    ConfigFile::parse(&v.to_string(), Path::new(PATH))?.model_config(None)
}

/// `base()` with `edit` applied; returns the error message, checked to be a one-line Config error.
fn error_of(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut v = base();
    edit(v.as_object_mut().unwrap());
    let err = parse(&v).expect_err("config must be rejected");
    assert!(matches!(err, FormatError::Config { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with("models/x/config.json: "), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
    msg
}

#[test]
fn hf_defaults() {
    let c = parse(&base()).unwrap();
    assert_eq!(c.llama.num_kv_heads, 4);
    assert_eq!(c.llama.head_dim, 32);
    assert_eq!(c.llama.rms_norm_eps, 1e-6);
    assert_eq!(c.llama.rope_theta, 10000.0);
    assert_eq!(c.llama.rope_scaling, None);
    assert!(!c.llama.tie_word_embeddings);
    assert_eq!(
        c.armt,
        ArmtParams {
            num_mem_tokens: 8,
            d_mem: 16,
            segment_size: 32,
            nu: 3,
            correction: true
        }
    );
}

#[test]
fn explicit_fields_and_nulls() {
    let mut v = base();
    let o = v.as_object_mut().unwrap();
    o.insert("num_key_value_heads".into(), json!(2));
    o.insert("head_dim".into(), json!(64));
    o.insert("rms_norm_eps".into(), json!(1e-5));
    o.insert("rope_theta".into(), json!(500000));
    o.insert("tie_word_embeddings".into(), json!(true));
    o.insert("hidden_act".into(), json!("silu"));
    o.insert("attention_bias".into(), json!(false));
    o.insert("mlp_bias".into(), json!(false));
    o.insert(
        "armt".into(),
        json!({ "num_mem_tokens": 2, "d_mem": 4, "segment_size": 8, "nu": 2, "correction": false }),
    );
    let c = parse(&v).unwrap();
    assert_eq!(
        (
            c.llama.num_kv_heads,
            c.llama.head_dim,
            c.llama.rms_norm_eps,
            c.llama.rope_theta
        ),
        (2, 64, 1e-5, 500000.0)
    );
    assert!(c.llama.tie_word_embeddings);
    assert_eq!(
        c.armt,
        ArmtParams {
            num_mem_tokens: 2,
            d_mem: 4,
            segment_size: 8,
            nu: 2,
            correction: false
        }
    );

    // `null` means "use the default", as HF writes it.
    let mut v = base();
    v["head_dim"] = Value::Null;
    v["num_key_value_heads"] = Value::Null;
    v["rope_scaling"] = Value::Null;
    let c = parse(&v).unwrap();
    assert_eq!(
        (c.llama.head_dim, c.llama.num_kv_heads, c.llama.rope_scaling),
        (32, 4, None)
    );
}

#[test]
fn rope_scaling_variants() {
    let with = |rs: Value| {
        let mut v = base();
        v["rope_scaling"] = rs;
        parse(&v)
    };
    assert_eq!(with(json!({"rope_type": "default"})).unwrap().llama.rope_scaling, None);
    assert_eq!(with(json!({"type": "default"})).unwrap().llama.rope_scaling, None);
    assert_eq!(with(json!({})).unwrap().llama.rope_scaling, None);
    let llama3 = json!({"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                        "original_max_position_embeddings": 8192});
    assert_eq!(
        with(llama3.clone()).unwrap().llama.rope_scaling,
        Some(Llama3Scaling {
            factor: 32.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192.0
        })
    );
    for key in [
        "factor",
        "low_freq_factor",
        "high_freq_factor",
        "original_max_position_embeddings",
    ] {
        let mut rs = llama3.clone();
        rs.as_object_mut().unwrap().remove(key);
        let msg = with(rs).unwrap_err().to_string();
        assert!(
            msg.ends_with(&format!("missing field `rope_scaling.{key}` (rope_type llama3)")),
            "{msg}"
        );
    }
    let msg = with(json!({"rope_type": "yarn", "factor": 4.0}))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("rope_scaling type `yarn` is not supported"), "{msg}");
    let msg = with(json!({"type": "linear", "factor": 4.0})).unwrap_err().to_string();
    assert!(msg.contains("rope_scaling type `linear` is not supported"), "{msg}");
    let msg = with(json!("llama3")).unwrap_err().to_string();
    assert!(msg.contains("field `rope_scaling` must be an object or null"), "{msg}");
    let mut bad = llama3;
    bad["factor"] = json!(-1.0);
    assert!(with(bad)
        .unwrap_err()
        .to_string()
        .contains("`rope_scaling.factor` must be a positive number"));
}

#[test]
fn missing_required_fields() {
    for key in [
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
    ] {
        let msg = error_of(|o| {
            o.remove(key);
        });
        assert_eq!(msg, format!("models/x/config.json: missing field `{key}`"));
    }
    for key in ["num_mem_tokens", "d_mem", "segment_size"] {
        let msg = error_of(|o| {
            o["armt"].as_object_mut().unwrap().remove(key);
        });
        assert_eq!(msg, format!("models/x/config.json: missing field `armt.{key}`"));
    }
}

#[test]
fn unsupported_architectures() {
    assert!(error_of(|o| {
        o.insert("hidden_act".into(), json!("gelu"));
    })
    .contains("hidden_act `gelu` is not supported"));
    for key in ["attention_bias", "mlp_bias"] {
        assert!(error_of(|o| {
            o.insert(key.into(), json!(true));
        })
        .contains(&format!("`{key}: true` is not supported")));
    }
    assert!(error_of(|o| {
        o.insert("num_key_value_heads".into(), json!(3));
    })
    .contains("num_attention_heads (4) must be a multiple of num_key_value_heads (3)"));
    assert!(error_of(|o| {
        o.insert("num_key_value_heads".into(), json!(0));
    })
    .contains("multiple of num_key_value_heads (0)"));
    assert!(error_of(|o| {
        o.insert("head_dim".into(), json!(33));
    })
    .contains("head_dim must be even"));
    assert!(error_of(|o| {
        o.insert("hidden_size".into(), json!(130));
    })
    .contains("no `head_dim` and hidden_size (130) is not a multiple of num_attention_heads (4)"));
}

#[test]
fn bad_values() {
    for key in [
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
    ] {
        let msg = error_of(|o| {
            o.insert(key.into(), json!(0));
        });
        assert!(msg.ends_with(&format!("field `{key}` must be at least 1")), "{msg}");
    }
    assert!(error_of(|o| {
        o.insert("hidden_size".into(), json!("128"));
    })
    .ends_with("field `hidden_size` must be a non-negative integer, found \"128\""));
    assert!(error_of(|o| {
        o.insert("hidden_size".into(), json!(-128));
    })
    .contains("must be a non-negative integer"));
    assert!(error_of(|o| {
        o.insert("hidden_size".into(), json!(128.5));
    })
    .contains("must be a non-negative integer"));
    assert!(error_of(|o| {
        o.insert("rms_norm_eps".into(), json!(0.0));
    })
    .contains("`rms_norm_eps` must be a positive number"));
    assert!(error_of(|o| {
        o.insert("tie_word_embeddings".into(), json!("yes"));
    })
    .contains("field `tie_word_embeddings` must be true or false"));
    assert!(error_of(|o| {
        o["armt"]["d_mem"] = json!(0);
    })
    .ends_with("field `armt.d_mem` must be at least 1"));
    assert!(error_of(|o| {
        o.insert("armt".into(), json!(3));
    })
    .contains("field `armt` must be an object"));
}

#[test]
fn not_json() {
    let err = ConfigFile::parse("{\"vocab_size\": ", Path::new(PATH)).unwrap_err();
    assert!(
        err.to_string().starts_with("models/x/config.json: not valid JSON"),
        "{err}"
    );
    let err = ConfigFile::parse("[1, 2]", Path::new(PATH)).unwrap_err();
    assert!(err.to_string().ends_with("not a JSON object"), "{err}");
    let err = ConfigFile::read(Path::new("/nonexistent/config.json")).unwrap_err();
    assert!(matches!(err, FormatError::Io { .. }));
}

#[test]
fn plain_llama_config_needs_armt_parameters() {
    let mut v = base();
    v.as_object_mut().unwrap().remove("armt");
    let file = ConfigFile::parse(&v.to_string(), Path::new(PATH)).unwrap();
    assert_eq!(file.armt, None);
    assert_eq!(file.llama.hidden_size, 128);
    let msg = file.model_config(None).unwrap_err().to_string();
    assert!(msg.starts_with("models/x/config.json: no `armt` object"), "{msg}");
    assert!(msg.contains("--armt-init"), "{msg}");
    let params = ArmtParams {
        num_mem_tokens: 4,
        d_mem: 8,
        segment_size: 64,
        nu: 3,
        correction: true,
    };
    assert_eq!(file.model_config(Some(params)).unwrap().armt, params);
}

#[test]
fn fixture_configs() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/fixtures"));
    for name in [
        "tiny-armt-names",
        "tiny-hf-tied-partial",
        "tiny-single-short",
        "small-bf16",
    ] {
        let c = ModelConfig::read(&root.join(name).join("config.json"), None).unwrap();
        assert_eq!(c.armt.nu, 3);
        assert!(c.llama.rope_scaling.is_some());
        assert_eq!(c.llama.tie_word_embeddings, name == "tiny-hf-tied-partial");
        assert_eq!(c.d_key(), 2 * 3 * c.armt.d_mem);
    }
}
