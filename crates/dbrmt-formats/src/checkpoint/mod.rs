//! safetensors checkpoints: one file, or shards listed by `model.safetensors.index.json`; every file is
//! memory-mapped once and fully validated on open, and tensors are read as f32.

pub(crate) mod convert;
mod file;
mod index;
pub mod writer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use file::{SafetensorsFile, TensorEntry};
pub use index::INDEX_FILE;
pub use safetensors::Dtype;

/// Whether the file at `path` looks like a safetensors file: an 8-byte little-endian header length, then the JSON
/// header's `{`.
pub fn looks_like_safetensors(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 9];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head));
    read.is_ok()
        && head[8] == b'{'
        && u64::from_le_bytes([head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7]]) > 1
}

use crate::error::FormatError;

/// The single-file checkpoint name looked for first.
pub const SINGLE_FILE: &str = "model.safetensors";

/// All tensors of a model directory, whichever files hold them.
#[derive(Debug)]
pub struct Checkpoint {
    dir: PathBuf,
    files: Vec<SafetensorsFile>,
    /// Tensor name → index into `files`.
    location: BTreeMap<String, usize>,
}

impl Checkpoint {
    /// Opens the checkpoint in `dir`: the shards of `model.safetensors.index.json` if present, else
    /// `model.safetensors`, else the only `*.safetensors` file.
    pub fn open(dir: &Path) -> Result<Self, FormatError> {
        let index_path = dir.join(INDEX_FILE);
        if index_path.is_file() {
            return Self::open_sharded(dir, &index_path);
        }
        let single = dir.join(SINGLE_FILE);
        let path = if single.is_file() {
            single
        } else {
            only_safetensors_file(dir)?
        };
        check_inside(dir, &path)?;
        Ok(Self::single(dir, SafetensorsFile::open(&path)?))
    }

    /// A checkpoint of one file.
    fn single(dir: &Path, file: SafetensorsFile) -> Self {
        let location = file.tensors().keys().map(|name| (name.clone(), 0)).collect();
        Self {
            dir: dir.to_path_buf(),
            files: vec![file],
            location,
        }
    }

    fn open_sharded(dir: &Path, index_path: &Path) -> Result<Self, FormatError> {
        let weight_map = index::read_weight_map(index_path)?;
        let mut shard_of: BTreeMap<&str, usize> = BTreeMap::new();
        let mut files = Vec::new();
        for shard in weight_map.values() {
            if !shard_of.contains_key(shard.as_str()) {
                shard_of.insert(shard, files.len());
                let path = dir.join(shard);
                check_inside(dir, &path)?;
                files.push(SafetensorsFile::open(&path)?);
            }
        }
        // The index is authoritative: tensors a shard holds but the index does not list are not part of the model.
        let mut location = BTreeMap::new();
        for (name, shard) in &weight_map {
            let i = shard_of.get(shard.as_str()).copied().unwrap_or_default();
            if !files.get(i).is_some_and(|f| f.tensors().contains_key(name)) {
                return Err(FormatError::Checkpoint {
                    path: index_path.to_path_buf(),
                    msg: format!("lists tensor `{name}` in {shard}, which does not hold it"),
                });
            }
            location.insert(name.clone(), i);
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            files,
            location,
        })
    }

    /// The model directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The files read, in the order they were opened.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(SafetensorsFile::path)
    }

    /// Every tensor name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.location.keys().map(String::as_str)
    }

    /// Whether a tensor of this name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.location.contains_key(name)
    }

    /// The file holding `name` and its entry there.
    fn lookup(&self, name: &str) -> Option<(&SafetensorsFile, &TensorEntry)> {
        let file = self.files.get(*self.location.get(name)?)?;
        Some((file, file.tensors().get(name)?))
    }

    /// The dtype and shape of `name`, if present.
    pub fn entry(&self, name: &str) -> Option<&TensorEntry> {
        self.lookup(name).map(|(_, e)| e)
    }

    /// The file that holds `name` (the directory when absent), for error messages.
    pub fn path_of(&self, name: &str) -> &Path {
        self.lookup(name).map_or(&self.dir, |(f, _)| f.path())
    }

    /// The stored bytes of `name`, if present.
    pub fn bytes(&self, name: &str) -> Option<&[u8]> {
        let (file, entry) = self.lookup(name)?;
        file.bytes(entry)
    }

    /// Reads `name` as f32 (from BF16, F16 or F32), returning its shape and row-major data.
    pub fn read_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), FormatError> {
        let (file, entry) = self.lookup(name).ok_or_else(|| FormatError::Checkpoint {
            path: self.dir.clone(),
            msg: format!("no tensor `{name}`"),
        })?;
        let dtype_error = || FormatError::Dtype {
            path: file.path().to_path_buf(),
            name: name.to_string(),
            dtype: entry.dtype.to_string(),
        };
        if !convert::is_supported(entry.dtype) {
            return Err(dtype_error());
        }
        let bytes = file.bytes(entry).ok_or_else(|| FormatError::Checkpoint {
            path: file.path().to_path_buf(),
            msg: format!("tensor `{name}` lies outside the file"),
        })?;
        let data = convert::to_f32(entry.dtype, bytes).ok_or_else(dtype_error)?;
        Ok((entry.shape.clone(), data))
    }

    /// Reads `name` as f32 after checking that its shape is `expected` (error names both shapes).
    pub fn read_f32_shaped(&self, name: &str, expected: &[usize]) -> Result<Vec<f32>, FormatError> {
        if let Some(entry) = self.entry(name) {
            if entry.shape != expected {
                return Err(FormatError::Shape {
                    path: self.path_of(name).to_path_buf(),
                    name: name.to_string(),
                    expected: expected.to_vec(),
                    found: entry.shape.clone(),
                });
            }
        }
        self.read_f32(name).map(|(_, data)| data)
    }
}

/// A shard (or the single weights file) must be a file of the model directory: a symlink that leads out of it (to
/// another user's files, say) is refused. The one exception is the layout of a Hugging Face cache snapshot
/// (`models--org--name/snapshots/REV/x.safetensors` → `../../blobs/HASH`), whose links stay inside its repository.
fn check_inside(dir: &Path, shard: &Path) -> Result<(), FormatError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FormatError::Io { path, source }
    };
    let root = dir.canonicalize().map_err(io(dir))?;
    let target = shard.canonicalize().map_err(io(shard))?;
    let snapshot_repo = root
        .parent()
        .filter(|p| p.file_name().is_some_and(|n| n == "snapshots"))
        .and_then(Path::parent)
        .map(|repo| repo.join("blobs"));
    if target.starts_with(&root) || snapshot_repo.is_some_and(|blobs| target.starts_with(blobs)) {
        return Ok(());
    }
    Err(FormatError::Checkpoint {
        path: shard.to_path_buf(),
        msg: format!(
            "the shard leads out of the model directory (to {}): refused (copy it in, or give the directory it \
             is in as the model)",
            target.display()
        ),
    })
}

/// The one `*.safetensors` file of `dir` (used when there is neither an index nor `model.safetensors`).
fn only_safetensors_file(dir: &Path) -> Result<PathBuf, FormatError> {
    let io = |source| FormatError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "safetensors") {
            found.push(path);
        }
    }
    found.sort();
    let bad = |msg: String| FormatError::Checkpoint {
        path: dir.to_path_buf(),
        msg,
    };
    match found.as_slice() {
        [] => Err(bad(format!(
            "no {SINGLE_FILE}, {INDEX_FILE} or other *.safetensors file in the directory"
        ))),
        [one] => Ok(one.clone()),
        many => {
            let names: Vec<String> = many
                .iter()
                .filter_map(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .collect();
            Err(bad(format!(
                "several *.safetensors files ({}) and no {INDEX_FILE} to say how they fit",
                names.join(", ")
            )))
        }
    }
}
