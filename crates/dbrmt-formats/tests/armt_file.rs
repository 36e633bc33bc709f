//! `--armt FILE`: a trained ARMT memory applied on top of a GGUF backbone. The file's tensors (under either of the
//! original's names, in any float dtype) become the model's memory parameters and nothing else changes; a file made
//! for another backbone, with a wrong shape, a missing or foreign tensor, bad metadata or non-finite values is refused
//! with its own error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dbrmt_formats::armt_file::{metadata, sha256_hex, tensor_names, ArmtFileError};
use dbrmt_formats::identity::model_identity;
use dbrmt_formats::names::{LayerTensor, TensorId};
use dbrmt_formats::{load_model, ArmtParams, FormatError, LoadOptions, Model};
use dbrmt_testkit::gguf::{armt_options, tiny_llama, HIDDEN, LAYERS};
use dbrmt_testkit::{Scratch, SplitMix64};
use half::bf16;
use safetensors::tensor::TensorView;
use safetensors::Dtype;

const PARAMS: ArmtParams = ArmtParams {
    num_mem_tokens: 4,
    d_mem: 8,
    segment_size: 8,
    nu: 3,
    correction: true,
};

/// One tensor to write: name, dtype, shape, f32 values (converted to the dtype).
struct T {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    values: Vec<f32>,
}

/// The memory tensors of the tiny model, random and non-zero (W_mv too), under the canonical names.
fn memory_tensors(seed: u64) -> Vec<T> {
    let mut rng = SplitMix64::new(seed);
    let mut ids: Vec<TensorId> = TensorId::armt_tensors(LAYERS).collect();
    ids.sort();
    ids.into_iter()
        .map(|id| {
            let shape = match id {
                TensorId::Memory => vec![PARAMS.num_mem_tokens, HIDDEN],
                TensorId::Layer(_, LayerTensor::MemQ | LayerTensor::MemK) => vec![PARAMS.d_mem, HIDDEN],
                TensorId::Layer(_, LayerTensor::MemV) => vec![HIDDEN, HIDDEN],
                TensorId::Layer(_, LayerTensor::MemBeta) => vec![1, HIDDEN],
                _ => vec![1],
            };
            let n = shape.iter().product();
            T {
                name: tensor_names(id).0,
                dtype: Dtype::F32,
                shape,
                values: (0..n).map(|_| rng.signed_unit() * 0.1).collect(),
            }
        })
        .collect()
}

fn encode(t: &T) -> Vec<u8> {
    match t.dtype {
        Dtype::BF16 => t.values.iter().flat_map(|&x| bf16::from_f32(x).to_le_bytes()).collect(),
        Dtype::I32 => t.values.iter().flat_map(|&x| (x as i32).to_le_bytes()).collect(),
        _ => t.values.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

fn write_armt(dir: &Scratch, name: &str, tensors: &[T], meta: &HashMap<String, String>) -> PathBuf {
    let data: Vec<Vec<u8>> = tensors.iter().map(encode).collect();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .zip(&data)
        .map(|(t, d)| (t.name.clone(), TensorView::new(t.dtype, t.shape.clone(), d).unwrap()))
        .collect();
    dir.write(name, safetensors::serialize(views, Some(meta.clone())).unwrap())
}

/// A scratch directory with the tiny GGUF; returns it, the GGUF's path and its sha256.
fn setup(label: &str) -> (Scratch, PathBuf, String) {
    let dir = Scratch::new(label);
    let bytes = tiny_llama(11, true).gguf.bytes();
    let sha = sha256_hex(&bytes);
    let gguf = dir.write("tiny.gguf", &bytes);
    (dir, gguf, sha)
}

fn meta_for(sha: &str) -> HashMap<String, String> {
    metadata(&PARAMS, sha).into_iter().collect()
}

fn with_file(path: &Path) -> LoadOptions {
    LoadOptions {
        armt_file: Some(path.to_path_buf()),
        ..Default::default()
    }
}

fn armt_error(gguf: &Path, armt: &Path) -> ArmtFileError {
    match load_model(gguf, &with_file(armt)) {
        Err(FormatError::ArmtFile(e)) => e,
        Err(other) => panic!("expected an ARMT file error, got {other}"),
        Ok(_) => panic!("expected an ARMT file error, got a model"),
    }
}

fn memory_of(m: &Model, id: TensorId) -> Vec<f32> {
    m.weights.tensor(id).unwrap().to_vec()
}

#[test]
fn the_file_becomes_the_memory_and_the_backbone_stays() {
    let (dir, gguf, sha) = setup("armt-file-apply");
    let tensors = memory_tensors(1);
    let armt = write_armt(&dir, "armt.safetensors", &tensors, &meta_for(&sha));
    let trained = load_model(&gguf, &with_file(&armt)).unwrap();
    assert_eq!(trained.armt_seed, None);
    assert_eq!(trained.config.armt, PARAMS);
    for t in &tensors {
        let id = TensorId::armt_tensors(LAYERS)
            .find(|&id| tensor_names(id).0 == t.name)
            .unwrap();
        assert_eq!(memory_of(&trained, id), t.values, "{}", t.name);
    }
    // the backbone is the GGUF's, as --armt-init loads it
    let plain = load_model(&gguf, &armt_options(0)).unwrap();
    assert_eq!(trained.weights.embed, plain.weights.embed);
    for (a, b) in trained.weights.layers.iter().zip(&plain.weights.layers) {
        assert_eq!(a.backbone(), b.backbone());
    }
    assert_eq!(trained.weights.norm, plain.weights.norm);
    // and the model is another model: a saved state of one is refused by the other
    assert_ne!(
        model_identity(&trained.config, &trained.weights),
        model_identity(&plain.config, &plain.weights)
    );
}

#[test]
fn the_alias_names_and_other_dtypes_load_the_same() {
    let (dir, gguf, sha) = setup("armt-file-alias");
    let canonical = write_armt(&dir, "canonical.safetensors", &memory_tensors(2), &meta_for(&sha));
    let want = load_model(&gguf, &with_file(&canonical)).unwrap().weights;

    // only the `memory_cell.layers.{i}.` alias (what safetensors' save_model keeps)
    let mut alias = memory_tensors(2);
    for t in &mut alias {
        t.name = t.name.replace("memory_cell.model.model.layers.", "memory_cell.layers.");
    }
    let path = write_armt(&dir, "alias.safetensors", &alias, &meta_for(&sha));
    assert_eq!(load_model(&gguf, &with_file(&path)).unwrap().weights, want);

    // both names, equal (what torch.save of the state_dict keeps)
    let mut both = memory_tensors(2);
    both.extend(alias.into_iter().filter(|t| t.name != "memory_cell.memory"));
    let path = write_armt(&dir, "both.safetensors", &both, &meta_for(&sha));
    assert_eq!(load_model(&gguf, &with_file(&path)).unwrap().weights, want);

    // bf16: the values are the bf16 values, widened exactly
    let mut b16 = memory_tensors(2);
    for t in &mut b16 {
        t.dtype = Dtype::BF16;
    }
    let path = write_armt(&dir, "bf16.safetensors", &b16, &meta_for(&sha));
    let got = load_model(&gguf, &with_file(&path)).unwrap();
    let id = TensorId::Layer(1, LayerTensor::MemV);
    let rounded: Vec<f32> = memory_of(&load_model(&gguf, &with_file(&canonical)).unwrap(), id)
        .iter()
        .map(|&x| bf16::from_f32(x).to_f32())
        .collect();
    assert_eq!(memory_of(&got, id), rounded);
}

#[test]
fn a_file_trained_on_another_gguf_is_refused() {
    let (dir, gguf, sha) = setup("armt-file-sha");
    let mut other = sha.clone();
    other.replace_range(0..1, if sha.starts_with('0') { "1" } else { "0" });
    let path = write_armt(&dir, "armt.safetensors", &memory_tensors(3), &meta_for(&other));
    match armt_error(&gguf, &path) {
        ArmtFileError::BaseMismatch { expected, found, .. } => {
            assert_eq!(expected, other);
            assert_eq!(found, sha);
        }
        e => panic!("wrong error: {e}"),
    }
    // one byte of the GGUF changed (in its tensor data) is another file
    let mut bytes = std::fs::read(&gguf).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let edited = dir.write("edited.gguf", &bytes);
    let good = write_armt(&dir, "good.safetensors", &memory_tensors(3), &meta_for(&sha));
    assert!(matches!(armt_error(&edited, &good), ArmtFileError::BaseMismatch { .. }));
}

#[test]
fn a_wrong_shape_is_refused() {
    let (dir, gguf, sha) = setup("armt-file-shape");
    let mut tensors = memory_tensors(4);
    let t = tensors
        .iter_mut()
        .find(|t| t.name == "memory_cell.model.model.layers.1.W_mv.weight")
        .unwrap();
    t.shape = vec![HIDDEN / 2, 2 * HIDDEN];
    let path = write_armt(&dir, "armt.safetensors", &tensors, &meta_for(&sha));
    match armt_error(&gguf, &path) {
        ArmtFileError::Shape {
            name, expected, found, ..
        } => {
            assert_eq!(name, "memory_cell.model.model.layers.1.W_mv.weight");
            assert_eq!(expected, vec![HIDDEN, HIDDEN]);
            assert_eq!(found, vec![HIDDEN / 2, 2 * HIDDEN]);
        }
        e => panic!("wrong error: {e}"),
    }
    // d_mem in the metadata decides the shape of W_mq / W_mk
    let mut meta = meta_for(&sha);
    meta.insert("d_mem".into(), "16".into());
    let path = write_armt(&dir, "dmem.safetensors", &memory_tensors(4), &meta);
    assert!(matches!(armt_error(&gguf, &path), ArmtFileError::Shape { name, .. } if name.ends_with("0.W_mq.weight")));
}

#[test]
fn a_missing_tensor_is_refused() {
    let (dir, gguf, sha) = setup("armt-file-missing");
    for missing in ["memory_cell.model.model.layers.0.W_mb.bias", "memory_cell.memory"] {
        let tensors: Vec<T> = memory_tensors(5).into_iter().filter(|t| t.name != missing).collect();
        let path = write_armt(&dir, "armt.safetensors", &tensors, &meta_for(&sha));
        match armt_error(&gguf, &path) {
            ArmtFileError::MissingTensor { name, .. } => assert_eq!(name, missing),
            e => panic!("wrong error: {e}"),
        }
    }
}

#[test]
fn foreign_tensors_differing_aliases_and_non_finite_values_are_refused() {
    let (dir, gguf, sha) = setup("armt-file-foreign");
    // a backbone tensor
    let mut tensors = memory_tensors(6);
    tensors.push(T {
        name: "memory_cell.model.model.layers.0.layer.self_attn.q_proj.weight".into(),
        dtype: Dtype::F32,
        shape: vec![2],
        values: vec![0.0; 2],
    });
    let path = write_armt(&dir, "backbone.safetensors", &tensors, &meta_for(&sha));
    assert!(matches!(armt_error(&gguf, &path), ArmtFileError::Unexpected { name, .. } if name.contains("q_proj")));
    // a layer the model does not have
    let mut tensors = memory_tensors(6);
    tensors.push(T {
        name: format!("memory_cell.model.model.layers.{LAYERS}.W_mb.bias"),
        dtype: Dtype::F32,
        shape: vec![1],
        values: vec![0.0],
    });
    let path = write_armt(&dir, "layer.safetensors", &tensors, &meta_for(&sha));
    assert!(matches!(armt_error(&gguf, &path), ArmtFileError::Unexpected { .. }));
    // the two aliases differ
    let mut tensors = memory_tensors(6);
    let mut alias = memory_tensors(6)
        .into_iter()
        .find(|t| t.name.ends_with("1.W_mk.weight"))
        .unwrap();
    alias.name = "memory_cell.layers.1.W_mk.weight".into();
    alias.values[3] += 1.0;
    tensors.push(alias);
    let path = write_armt(&dir, "differ.safetensors", &tensors, &meta_for(&sha));
    assert!(matches!(armt_error(&gguf, &path), ArmtFileError::AliasesDiffer { .. }));
    // a NaN
    let mut tensors = memory_tensors(6);
    tensors[2].values[5] = f32::NAN;
    let name = tensors[2].name.clone();
    let path = write_armt(&dir, "nan.safetensors", &tensors, &meta_for(&sha));
    match armt_error(&gguf, &path) {
        ArmtFileError::NonFinite { name: n, index, .. } => assert_eq!((n, index), (name, 5)),
        e => panic!("wrong error: {e}"),
    }
    // an integer tensor
    let mut tensors = memory_tensors(6);
    tensors[0].dtype = Dtype::I32;
    let path = write_armt(&dir, "int.safetensors", &tensors, &meta_for(&sha));
    assert!(matches!(armt_error(&gguf, &path), ArmtFileError::Dtype { .. }));
}

#[test]
fn missing_or_bad_metadata_is_refused() {
    let (dir, gguf, sha) = setup("armt-file-meta");
    for key in [
        "format",
        "d_mem",
        "nu",
        "num_mem_tokens",
        "segment_size",
        "correction",
        "base_sha256",
    ] {
        let mut meta = meta_for(&sha);
        meta.remove(key);
        let path = write_armt(&dir, "armt.safetensors", &memory_tensors(7), &meta);
        match armt_error(&gguf, &path) {
            ArmtFileError::MissingMetadata { key: k, .. } => assert_eq!(k, key),
            e => panic!("{key}: wrong error: {e}"),
        }
    }
    for (key, value) in [
        ("format", "dbrmt-armt-0"),
        ("d_mem", "0"),
        ("nu", "three"),
        ("segment_size", "-4"),
        ("correction", "yes"),
        ("base_sha256", "ABC"),
    ] {
        let mut meta = meta_for(&sha);
        meta.insert(key.into(), value.into());
        let path = write_armt(&dir, "armt.safetensors", &memory_tensors(7), &meta);
        match armt_error(&gguf, &path) {
            ArmtFileError::BadMetadata { key: k, .. } => assert_eq!(k, key),
            e => panic!("{key}={value}: wrong error: {e}"),
        }
    }
    // metadata the limits refuse (ν > 8) goes through the config's checks
    let mut meta = meta_for(&sha);
    meta.insert("nu".into(), "9".into());
    let path = write_armt(&dir, "armt.safetensors", &memory_tensors(7), &meta);
    assert!(matches!(
        load_model(&gguf, &with_file(&path)),
        Err(FormatError::Config { .. })
    ));
    // not a safetensors file at all
    let junk = dir.write("junk.safetensors", b"not a safetensors file");
    assert!(matches!(armt_error(&gguf, &junk), ArmtFileError::Unreadable { .. }));
}

#[test]
fn armt_excludes_armt_init_and_needs_a_gguf() {
    let (dir, gguf, sha) = setup("armt-file-conflict");
    let path = write_armt(&dir, "armt.safetensors", &memory_tensors(8), &meta_for(&sha));
    let mut both = armt_options(0);
    both.armt_file = Some(path.clone());
    let err = load_model(&gguf, &both).unwrap_err();
    assert!(matches!(err, FormatError::Config { .. }), "{err}");
    assert!(err.to_string().contains("exclude each other"), "{err}");
    // a safetensors checkpoint carries its own memory
    let err = load_model(&dbrmt_testkit::paths::fixture("tiny-armt-names"), &with_file(&path)).unwrap_err();
    assert!(err.to_string().contains("GGUF"), "{err}");
}
