//! Name layouts, tied heads, sharded checkpoints, unused tensors.

mod checkpoint_support;

use std::collections::BTreeMap;

use checkpoint_support::{edited_fixture, fixture, fixture_config, fixture_tensors, serialize, Raw, Scratch};
use dbrmt_formats::checkpoint::INDEX_FILE;
use dbrmt_formats::{load_model, FormatError, LoadOptions, Model, NameLayout};

fn load(dir: &std::path::Path) -> Model {
    load_model(dir, &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn reference(name: &str) -> Model {
    load(&fixture(name))
}

/// `name` with the per-layer prefix moved to the `memory_cell.layers.{i}.` alias.
fn to_alias(name: &str) -> String {
    name.replacen("memory_cell.model.model.layers.", "memory_cell.layers.", 1)
}

#[test]
fn layer_alias_layout_loads_the_same_weights() {
    let dir = edited_fixture("tiny-armt-names", |t| {
        *t = std::mem::take(t).into_iter().map(|(n, v)| (to_alias(&n), v)).collect();
    });
    let m = load(dir.path());
    assert_eq!(m.layout, NameLayout::ArmtLayersAlias);
    assert_eq!(m.weights, reference("tiny-armt-names").weights);
    assert!(m.unused_tensors.is_empty());
}

#[test]
fn both_aliases_present_must_agree() {
    let dir = edited_fixture("tiny-armt-names", |t| {
        let copies: Vec<(String, Raw)> = t
            .iter()
            .filter(|(n, _)| n.contains(".layers."))
            .map(|(n, v)| (to_alias(n), v.clone()))
            .collect();
        t.extend(copies);
    });
    let m = load(dir.path());
    assert_eq!(m.layout, NameLayout::Armt);
    assert_eq!(m.weights, reference("tiny-armt-names").weights);
    assert!(
        m.unused_tensors.is_empty(),
        "aliases count as used: {:?}",
        m.unused_tensors
    );

    let dir = edited_fixture("tiny-armt-names", |t| {
        let name = "memory_cell.model.model.layers.1.W_mk.weight";
        let mut other = t[name].clone();
        other.data[0] ^= 1;
        t.insert(to_alias(name), other);
    });
    let err = load_model(dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("its alias `memory_cell.layers.1.W_mk.weight` differ"),
        "{err}"
    );
}

#[test]
fn tied_head_stored_only_as_lm_head_is_the_embedding() {
    // What safetensors.torch.save_model keeps for a tied model.
    let dir = edited_fixture("tiny-hf-tied-partial", |t| {
        let embed = t.remove("model.embed_tokens.weight").unwrap();
        t.insert("lm_head.weight".into(), embed);
    });
    let m = load(dir.path());
    assert_eq!(m.weights, reference("tiny-hf-tied-partial").weights);
    assert!(m.weights.lm_head.is_none());
    assert!(m.unused_tensors.is_empty());
}

#[test]
fn tied_head_stored_beside_the_embedding_is_ignored() {
    let dir = edited_fixture("tiny-hf-tied-partial", |t| {
        let embed = t["model.embed_tokens.weight"].clone();
        t.insert("lm_head.weight".into(), embed);
    });
    let m = load(dir.path());
    assert_eq!(m.weights, reference("tiny-hf-tied-partial").weights);
    assert!(m.unused_tensors.is_empty());
}

#[test]
fn tied_model_without_either_matrix() {
    let dir = edited_fixture("tiny-hf-tied-partial", |t| {
        t.remove("model.embed_tokens.weight").unwrap();
    });
    let err = load_model(dir.path(), &LoadOptions::default()).unwrap_err();
    let expected = "model.embed_tokens.weight";
    assert!(
        matches!(&err, FormatError::MissingTensor { name, layout: NameLayout::Hf, .. } if name == expected),
        "{err:?}"
    );
}

#[test]
fn unknown_tensors_are_listed_not_fatal() {
    let dir = edited_fixture("tiny-hf-tied-partial", |t| {
        for i in 0..10 {
            t.insert(
                format!("model.layers.{i}.self_attn.rotary_emb.inv_freq"),
                Raw::f32(&[16], &[1.0; 16]),
            );
        }
    });
    let m = load(dir.path());
    assert_eq!(m.unused_tensors.len(), 10);
    assert_eq!(m.unused_tensors[0], "model.layers.0.self_attn.rotary_emb.inv_freq");
    let warning = m.unused_tensors_warning().unwrap();
    assert!(
        warning.starts_with("10 checkpoint tensor(s) not used by the model: model.layers.0."),
        "{warning}"
    );
    assert!(warning.ends_with(", and 2 more"), "{warning}");
    assert_eq!(m.weights, reference("tiny-hf-tied-partial").weights);
}

/// Writes `tensors` as two shards plus an index, as `save_pretrained` does.
fn write_sharded(dir: &Scratch, config: &str, tensors: &BTreeMap<String, Raw>) {
    dir.write("config.json", config);
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    let mut weight_map = serde_json::Map::new();
    for (i, (name, t)) in tensors.iter().enumerate() {
        let (shard, file) = if i % 2 == 0 {
            (&mut a, "model-00001-of-00002.safetensors")
        } else {
            (&mut b, "model-00002-of-00002.safetensors")
        };
        shard.insert(name.clone(), t.clone());
        weight_map.insert(name.clone(), file.into());
    }
    dir.write("model-00001-of-00002.safetensors", serialize(&a));
    dir.write("model-00002-of-00002.safetensors", serialize(&b));
    let index = serde_json::json!({ "metadata": { "total_size": 0 }, "weight_map": weight_map });
    dir.write(INDEX_FILE, index.to_string());
}

#[test]
fn sharded_checkpoint_loads_identically() {
    let dir = Scratch::new("sharded");
    write_sharded(
        &dir,
        &fixture_config("tiny-armt-names"),
        &fixture_tensors("tiny-armt-names"),
    );
    let m = load(dir.path());
    let r = reference("tiny-armt-names");
    assert_eq!(m.weights, r.weights);
    assert_eq!(m.config, r.config);
    assert_eq!(m.layout, NameLayout::Armt);
    let ckpt = dbrmt_formats::checkpoint::Checkpoint::open(dir.path()).unwrap();
    assert_eq!(ckpt.files().count(), 2);
}

#[test]
fn sharded_index_must_match_its_shards() {
    let dir = Scratch::new("badindex");
    let tensors = fixture_tensors("tiny-single-short");
    write_sharded(&dir, &fixture_config("tiny-single-short"), &tensors);
    // The index lists a tensor in a shard that does not hold it.
    let index = serde_json::json!({ "weight_map": { "extra.weight": "model-00001-of-00002.safetensors" } });
    dir.write(INDEX_FILE, index.to_string());
    let err = load_model(dir.path(), &LoadOptions::default()).unwrap_err();
    let expected = "lists tensor `extra.weight` in model-00001-of-00002.safetensors, which does not hold it";
    assert!(err.to_string().contains(expected), "{err}");
    // A shard file that does not exist.
    let index = serde_json::json!({ "weight_map": { "a": "gone.safetensors" } });
    dir.write(INDEX_FILE, index.to_string());
    let err = load_model(dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(&err, FormatError::Io { path, .. } if path.ends_with("gone.safetensors")),
        "{err:?}"
    );
    dir.write(INDEX_FILE, "{}");
    let err = load_model(dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("missing field `weight_map`"), "{err}");
}

#[test]
fn single_file_under_another_name() {
    let dir = Scratch::new("renamed");
    dir.write("config.json", fixture_config("tiny-single-short"));
    std::fs::copy(
        fixture("tiny-single-short").join("model.safetensors"),
        dir.path().join("weights.safetensors"),
    )
    .unwrap();
    assert_eq!(load(dir.path()).weights, reference("tiny-single-short").weights);

    std::fs::copy(
        fixture("tiny-single-short").join("model.safetensors"),
        dir.path().join("other.safetensors"),
    )
    .unwrap();
    let err = load_model(dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("several *.safetensors files (other.safetensors, weights.safetensors)"),
        "{err}"
    );
}
