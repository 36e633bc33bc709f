//! One `.safetensors` file: memory-mapped once, its header validated completely before any tensor is read.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

use crate::error::FormatError;

/// Bytes of the little-endian header length that starts every safetensors file.
const LEN_BYTES: usize = 8;

/// Where one tensor lives in its file, and what it is.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorEntry {
    /// Element type as stored.
    pub dtype: Dtype,
    /// Shape as stored (row-major).
    pub shape: Vec<usize>,
    /// Byte range in the whole file (header included), validated to lie inside it.
    range: Range<usize>,
}

/// A memory-mapped safetensors file and its validated tensor table.
#[derive(Debug)]
pub struct SafetensorsFile {
    path: PathBuf,
    mmap: Mmap,
    tensors: BTreeMap<String, TensorEntry>,
    /// The header's `__metadata__` (string keys to string values), empty when absent.
    metadata: BTreeMap<String, String>,
}

impl SafetensorsFile {
    /// Maps `path` and validates its header: length, JSON, dtypes, shapes, and that the tensors' byte ranges
    /// tile the data section exactly (no overlap, no gap, nothing out of bounds).
    pub fn open(path: &Path) -> Result<Self, FormatError> {
        let mmap = crate::mmap::map_file(path)?;
        Self::from_map(path, mmap)
    }

    /// As [`SafetensorsFile::open`], from bytes in memory (`path` only names them in messages).
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self, FormatError> {
        parse_table(bytes).map_err(|msg| FormatError::Checkpoint {
            path: path.to_path_buf(),
            msg,
        })?;
        let mmap = crate::mmap::map_bytes(bytes).map_err(|source| FormatError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_map(path, mmap)
    }

    fn from_map(path: &Path, mmap: Mmap) -> Result<Self, FormatError> {
        let (tensors, metadata) = parse_table(&mmap).map_err(|msg| FormatError::Checkpoint {
            path: path.to_path_buf(),
            msg,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            mmap,
            tensors,
            metadata,
        })
    }

    /// The header's `__metadata__`.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every tensor, by name.
    pub fn tensors(&self) -> &BTreeMap<String, TensorEntry> {
        &self.tensors
    }

    /// The stored (little-endian) bytes of a tensor of this file.
    pub fn bytes(&self, entry: &TensorEntry) -> Option<&[u8]> {
        self.mmap.get(entry.range.clone())
    }
}

/// Validates the whole file and returns its tensor table, or a one-line description of what is wrong.
type Table = (BTreeMap<String, TensorEntry>, BTreeMap<String, String>);

fn parse_table(buf: &[u8]) -> Result<Table, String> {
    let data_start = check_offsets(buf)?;
    // Our own checks above cover what safetensors leaves to arithmetic that could overflow on a hostile header;
    // it checks the rest (dtype names, shape × dtype = byte length, the data section covered exactly).
    let (_, metadata) = SafeTensors::read_metadata(buf).map_err(|e| format!("invalid safetensors file: {e}"))?;
    let mut table = BTreeMap::new();
    for (name, info) in metadata.tensors() {
        let (start, end) = info.data_offsets;
        let range = data_start
            .checked_add(start)
            .zip(data_start.checked_add(end))
            .map(|(s, e)| s..e)
            .filter(|r| r.end <= buf.len())
            .ok_or_else(|| format!("tensor `{name}` lies outside the file"))?;
        table.insert(
            name,
            TensorEntry {
                dtype: info.dtype,
                shape: info.shape.clone(),
                range,
            },
        );
    }
    let user = metadata.metadata().clone().unwrap_or_default().into_iter().collect();
    Ok((table, user))
}

/// Checks the header length and every tensor's `data_offsets` against the data section, naming the offending
/// tensors; returns where the data section starts.
///
/// safetensors 0.8 reports overlaps, gaps and out-of-range offsets only as "invalid offset" or "incomplete
/// metadata", and sums offsets with unchecked additions; checking first gives clear messages and no overflow.
fn check_offsets(buf: &[u8]) -> Result<usize, String> {
    let Some(len_bytes) = buf.first_chunk::<LEN_BYTES>() else {
        return Err(format!(
            "file is {} bytes, too short for the 8-byte header length of a safetensors file",
            buf.len()
        ));
    };
    let header_len = u64::from_le_bytes(*len_bytes);
    let data_start = usize::try_from(header_len)
        .ok()
        .and_then(|n| n.checked_add(LEN_BYTES))
        .filter(|&end| end <= buf.len())
        .ok_or_else(|| {
            format!(
                "header length {header_len} runs past the end of the file ({} bytes)",
                buf.len()
            )
        })?;
    // checked before the JSON is parsed (which takes several times its size in memory)
    if header_len > crate::limits::MAX_SAFETENSORS_HEADER as u64 {
        return Err(format!(
            "header length {header_len} is more than the limit of {} bytes (real headers are below 1 MB)",
            crate::limits::MAX_SAFETENSORS_HEADER
        ));
    }
    let header = buf.get(LEN_BYTES..data_start).unwrap_or_default();
    let header = std::str::from_utf8(header).map_err(|e| format!("header is not UTF-8: {e}"))?;
    let header: serde_json::Map<String, Value> =
        serde_json::from_str(header).map_err(|e| format!("header is not a JSON object: {e}"))?;
    let data_len = buf.len() - data_start;

    let mut spans: Vec<(usize, usize, &str)> = Vec::with_capacity(header.len());
    for (name, info) in &header {
        if name == "__metadata__" {
            continue;
        }
        let offsets = info.get("data_offsets").and_then(Value::as_array);
        let pair = offsets.and_then(|o| match o.as_slice() {
            [s, e] => s.as_u64().zip(e.as_u64()),
            _ => None,
        });
        let Some((s, e)) = pair else {
            return Err(format!("tensor `{name}` has no valid `data_offsets` pair"));
        };
        if s > e || e > data_len as u64 {
            return Err(format!(
                "tensor `{name}` has data_offsets [{s}, {e}] outside the data section ({data_len} bytes)"
            ));
        }
        // Both fit in usize: they are at most data_len.
        spans.push((s as usize, e as usize, name));
    }
    spans.sort_unstable();
    let mut covered_to = 0;
    let mut previous = "";
    for &(s, e, name) in &spans {
        if s < covered_to {
            return Err(format!(
                "tensors `{previous}` and `{name}` overlap (byte {s} is in both)"
            ));
        }
        if s > covered_to {
            return Err(format!(
                "bytes {covered_to}..{s} of the data section belong to no tensor (before `{name}`)"
            ));
        }
        // Zero-sized tensors share an offset with their neighbour without overlapping it.
        if e > s {
            covered_to = e;
            previous = name;
        }
    }
    if covered_to != data_len {
        return Err(format!(
            "the tensors cover {covered_to} bytes but the data section has {data_len} (truncated or trailing bytes)"
        ));
    }
    Ok(data_start)
}
