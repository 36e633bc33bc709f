//! Writing a safetensors file tensor by tensor (the header first, then each tensor's bytes from a callback), so a
//! checkpoint of any size is written in bounded memory. The file appears only when complete: it is written under a
//! temporary name beside the target and renamed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use safetensors::Dtype;
use serde_json::{json, Map, Value};

use crate::error::FormatError;

/// One tensor to write.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
}

impl TensorSpec {
    /// Bytes of its data.
    pub fn bytes(&self) -> usize {
        self.shape.iter().product::<usize>() * self.dtype.bitsize() / 8
    }
}

/// Writes `tensors` to `path`: `fill(i, out)` must write exactly `tensors[i].bytes()` bytes of tensor `i`, in order.
/// `metadata` goes to the header's `__metadata__`.
pub fn write_safetensors(
    path: &Path,
    tensors: &[TensorSpec],
    metadata: &[(&str, &str)],
    mut fill: impl FnMut(usize, &mut dyn Write) -> std::io::Result<()>,
) -> Result<(), FormatError> {
    let io = |source| FormatError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut header = Map::new();
    if !metadata.is_empty() {
        let meta: Map<String, Value> = metadata.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        header.insert("__metadata__".into(), Value::Object(meta));
    }
    let mut at = 0usize;
    for t in tensors {
        let end = at + t.bytes();
        header.insert(
            t.name.clone(),
            json!({"dtype": t.dtype.to_string(), "shape": t.shape, "data_offsets": [at, end]}),
        );
        at = end;
    }
    let mut text = Value::Object(header).to_string().into_bytes();
    // pad the header with spaces to a multiple of 8, so the data (and every bf16/f32 tensor in it) is aligned
    text.resize(text.len().next_multiple_of(8), b' ');

    let tmp = path.with_extension("safetensors.partial");
    let mut out = BufWriter::with_capacity(1 << 22, File::create(&tmp).map_err(io)?);
    out.write_all(&(text.len() as u64).to_le_bytes()).map_err(io)?;
    out.write_all(&text).map_err(io)?;
    for i in 0..tensors.len() {
        fill(i, &mut out).map_err(io)?;
    }
    out.into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::SafetensorsFile;

    #[test]
    fn written_tensors_read_back() {
        let dir = std::env::temp_dir().join(format!("dbrmt-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("model.safetensors");
        let specs = vec![
            TensorSpec {
                name: "a".into(),
                dtype: Dtype::BF16,
                shape: vec![3, 2],
            },
            TensorSpec {
                name: "b".into(),
                dtype: Dtype::F32,
                shape: vec![5],
            },
        ];
        write_safetensors(&path, &specs, &[("format", "pt")], |i, out| {
            out.write_all(&vec![i as u8 + 1; specs[i].bytes()])
        })
        .unwrap();
        let f = SafetensorsFile::open(&path).unwrap();
        assert_eq!(f.tensors()["a"].shape, vec![3, 2]);
        assert_eq!(f.bytes(&f.tensors()["b"]).unwrap(), &[2u8; 20][..]);
        assert!(!path.with_extension("safetensors.partial").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
