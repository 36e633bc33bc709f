//! Helpers shared by the checkpoint tests: the fixtures, scratch directories, and rewriting a fixture's
//! tensors into a new model directory.

#![allow(dead_code)] // each test file uses a different subset

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

pub use dbrmt_testkit::paths::fixture;
pub use dbrmt_testkit::Scratch;

/// One tensor held in memory: dtype, shape, little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Raw {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl Raw {
    pub fn f32(shape: &[usize], values: &[f32]) -> Self {
        Raw {
            dtype: Dtype::F32,
            shape: shape.to_vec(),
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    pub fn as_f32(&self) -> Vec<f32> {
        assert_eq!(self.dtype, Dtype::F32);
        self.data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
}

/// Every tensor of a fixture's `model.safetensors`, by name.
pub fn fixture_tensors(name: &str) -> BTreeMap<String, Raw> {
    read_tensors(&fixture(name).join("model.safetensors"))
}

pub fn read_tensors(path: &Path) -> BTreeMap<String, Raw> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| {
            (
                n,
                Raw {
                    dtype: v.dtype(),
                    shape: v.shape().to_vec(),
                    data: v.data().to_vec(),
                },
            )
        })
        .collect()
}

/// A safetensors file of these tensors.
pub fn serialize(tensors: &BTreeMap<String, Raw>) -> Vec<u8> {
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, t)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(t.dtype, t.shape.clone(), &t.data).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, None).unwrap()
}

/// A model directory with `config` and these tensors in `model.safetensors`.
pub fn model_dir(label: &str, config: &str, tensors: &BTreeMap<String, Raw>) -> Scratch {
    let dir = Scratch::new(label);
    dir.write("config.json", config);
    dir.write("model.safetensors", serialize(tensors));
    dir
}

/// A fixture's `config.json` text.
pub fn fixture_config(name: &str) -> String {
    std::fs::read_to_string(fixture(name).join("config.json")).unwrap()
}

/// A fixture copied with its tensors passed through `edit`.
pub fn edited_fixture(name: &str, edit: impl FnOnce(&mut BTreeMap<String, Raw>)) -> Scratch {
    let mut tensors = fixture_tensors(name);
    edit(&mut tensors);
    model_dir(name, &fixture_config(name), &tensors)
}

/// Whether `name` is an ARMT memory tensor in either layout.
pub fn is_armt_name(name: &str) -> bool {
    name.contains(".W_m") || name == "memory" || name == "memory_cell.memory"
}

/// A hand-built safetensors file: the header JSON as given, then `data`.
pub fn raw_file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}
