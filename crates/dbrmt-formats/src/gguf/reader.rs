//! A GGUF file (v2 or v3): memory-mapped once, its header (metadata and tensor infos) parsed and every tensor's
//! extent checked against the file before anything is read.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::cursor::Cursor;
use super::dequant;
use super::ggml_type::GgmlType;
use super::metadata::{read_value_budgeted, Budget, MetaValue};
use crate::error::{printable, FormatError};
use crate::limits::{MAX_GGUF_METADATA_KEYS, MAX_GGUF_TENSORS};

/// The four bytes every GGUF file starts with.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of the data section and of every tensor in it when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: usize = 32;
/// ggml tensors have at most four dimensions.
const MAX_DIMS: usize = 4;
/// Fewest bytes of one metadata pair (empty key, type, a one-byte value) and one tensor info (empty name,
/// n_dims, type, offset): these bound the counts in the header by the file's size.
const MIN_KV_BYTES: usize = 8 + 4 + 1;
const MIN_TENSOR_INFO_BYTES: usize = 8 + 4 + 4 + 8;

/// One tensor's info from the header.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufTensor {
    pub name: String,
    /// ggml's `ne`: the fastest-varying dimension first (a `[out, in]` matrix has `dims = [in, out]`).
    pub dims: Vec<usize>,
    pub ggml_type: GgmlType,
    /// Offset of the data from the start of the data section, as stored.
    pub offset: u64,
    /// Byte range in the whole file, checked to lie inside it.
    range: Range<usize>,
}

impl GgufTensor {
    /// The row-major shape (`dims` reversed): `[out, in]` for a matrix.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().copied().collect()
    }

    /// Number of elements.
    pub fn n_elements(&self) -> usize {
        self.dims.iter().product()
    }

    /// Number of bytes of its data.
    pub fn n_bytes(&self) -> usize {
        self.range.len()
    }
}

/// A memory-mapped GGUF file with its parsed header.
pub struct GgufFile {
    path: PathBuf,
    mmap: Mmap,
    version: u32,
    alignment: usize,
    data_start: usize,
    metadata: BTreeMap<String, MetaValue>,
    /// In file order.
    tensors: Vec<GgufTensor>,
    /// Name → index into `tensors`.
    by_name: BTreeMap<String, usize>,
}

impl fmt::Debug for GgufFile {
    /// The shape of the file, not its contents (the tokenizer alone has tens of thousands of strings).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata_keys", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish_non_exhaustive()
    }
}

impl GgufFile {
    /// Maps `path` and parses its header: magic, version (2 or 3), metadata, tensor infos; checks that every
    /// tensor's type is known, its row a whole number of blocks, and its data inside the file.
    pub fn open(path: &Path) -> Result<Self, FormatError> {
        let mmap = crate::mmap::map_file(path)?;
        Self::from_map(path, mmap)
    }

    /// As [`GgufFile::open`], from bytes in memory (`path` only names them in messages).
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self, FormatError> {
        let error = |msg| FormatError::Gguf {
            path: path.to_path_buf(),
            msg,
        };
        // validated on the slice first, so nothing is copied for a bad input
        parse_header(bytes).map_err(error)?;
        let mmap = crate::mmap::map_bytes(bytes).map_err(|source| FormatError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_map(path, mmap)
    }

    fn from_map(path: &Path, mmap: Mmap) -> Result<Self, FormatError> {
        let header = parse_header(&mmap).map_err(|msg| FormatError::Gguf {
            path: path.to_path_buf(),
            msg,
        })?;
        let by_name = header
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            mmap,
            version: header.version,
            alignment: header.alignment,
            data_start: header.data_start,
            metadata: header.metadata,
            tensors: header.tensors,
            by_name,
        })
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The alignment of the data section (`general.alignment`, default 32).
    pub fn alignment(&self) -> usize {
        self.alignment
    }

    /// Where the data section starts in the file.
    pub fn data_start(&self) -> usize {
        self.data_start
    }

    /// Every metadata key and value, sorted by key.
    pub fn metadata(&self) -> &BTreeMap<String, MetaValue> {
        &self.metadata
    }

    /// The metadata value of `key`, if present.
    pub fn meta(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }

    /// The whole file as read (e.g. to hash it).
    pub fn file_bytes(&self) -> &[u8] {
        &self.mmap
    }

    /// Every tensor, in file order.
    pub fn tensors(&self) -> &[GgufTensor] {
        &self.tensors
    }

    /// The tensor called `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<&GgufTensor> {
        self.tensors.get(*self.by_name.get(name)?)
    }

    /// The stored bytes of the tensor called `name`, if present.
    pub fn tensor_data(&self, name: &str) -> Option<&[u8]> {
        self.mmap.get(self.tensor(name)?.range.clone())
    }

    /// Reads `name` dequantised to f32: its row-major shape and data.
    pub fn read_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), FormatError> {
        let (tensor, bytes) = self
            .tensor(name)
            .zip(self.tensor_data(name))
            .ok_or_else(|| self.error(format!("no tensor `{name}`")))?;
        let data = dequant::dequantize(tensor.ggml_type, bytes).map_err(|e| match e {
            dequant::DequantError::Unsupported(t) => FormatError::GgufTensorType {
                path: self.path.clone(),
                name: name.to_string(),
                ggml_type: t.to_string(),
            },
            other => self.error(format!("tensor `{name}`: {other}")),
        })?;
        Ok((tensor.shape(), data))
    }

    /// Reads `name` as f32 after checking that its row-major shape is `expected`.
    pub fn read_f32_shaped(&self, name: &str, expected: &[usize]) -> Result<Vec<f32>, FormatError> {
        if let Some(t) = self.tensor(name) {
            if t.shape() != expected {
                return Err(FormatError::GgufShape {
                    path: self.path.clone(),
                    name: name.to_string(),
                    expected: expected.to_vec(),
                    found: t.shape(),
                });
            }
        }
        self.read_f32(name).map(|(_, data)| data)
    }

    /// A [`FormatError::Gguf`] about this file.
    fn error(&self, msg: String) -> FormatError {
        FormatError::Gguf {
            path: self.path.clone(),
            msg,
        }
    }
}

/// Everything the header says.
struct Header {
    version: u32,
    alignment: usize,
    data_start: usize,
    metadata: BTreeMap<String, MetaValue>,
    tensors: Vec<GgufTensor>,
}

/// Parses and validates the header of the whole file `buf`, or says in one line what is wrong.
fn parse_header(buf: &[u8]) -> Result<Header, String> {
    let mut c = Cursor::new(buf);
    let magic = c.take(MAGIC.len(), "the magic")?;
    if magic != MAGIC {
        return Err(format!(
            "not a GGUF file: starts with {:?}, expected \"GGUF\"",
            String::from_utf8_lossy(magic)
        ));
    }
    let version = c.u32("the version")?;
    match version {
        2 | 3 => {}
        v if matches!(v.swap_bytes(), 2 | 3) => {
            return Err(format!("big-endian GGUF (version {}) is not supported", v.swap_bytes()))
        }
        v => return Err(format!("GGUF version {v} is not supported (only 2 and 3)")),
    }
    let n_tensors = c.count(MIN_TENSOR_INFO_BYTES, "tensor count")?;
    if n_tensors > MAX_GGUF_TENSORS {
        return Err(format!(
            "tensor count {n_tensors} is more than the limit of {MAX_GGUF_TENSORS}"
        ));
    }
    let n_kv = c.count(MIN_KV_BYTES, "metadata count")?;
    if n_kv > MAX_GGUF_METADATA_KEYS {
        return Err(format!(
            "metadata count {n_kv} is more than the limit of {MAX_GGUF_METADATA_KEYS}"
        ));
    }

    let mut metadata = BTreeMap::new();
    let mut budget = Budget::new();
    for i in 0..n_kv {
        let key = c.string(&format!("metadata key #{i}"))?;
        let what = format!("metadata `{}`", printable(&key));
        let ty = c.u32(&what)?;
        let value = read_value_budgeted(&mut c, ty, &what, &mut budget)?;
        if metadata.insert(key.clone(), value).is_some() {
            return Err(format!("metadata key `{}` appears twice", printable(&key)));
        }
    }
    let alignment = alignment(&metadata)?;

    let mut infos = Vec::with_capacity(n_tensors);
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..n_tensors {
        let info = read_tensor_info(&mut c, i, alignment)?;
        if !seen.insert(info.0.clone()) {
            return Err(format!("tensor `{}` appears twice", printable(&info.0)));
        }
        infos.push(info);
    }
    let data_start = c
        .position()
        .checked_next_multiple_of(alignment)
        .ok_or_else(|| "the data section starts past the addressable range".to_string())?;
    let tensors = infos
        .into_iter()
        .map(|(name, dims, ggml_type, offset, n_bytes)| {
            let range = locate(buf.len(), data_start, offset, n_bytes).ok_or_else(|| {
                format!(
                    "tensor `{name}` ({ggml_type}, {n_bytes} bytes at offset {offset} of the data section, which \
                     starts at byte {data_start}) runs past the end of the file ({} bytes)",
                    buf.len()
                )
            })?;
            Ok(GgufTensor {
                name,
                dims,
                ggml_type,
                offset,
                range,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    check_no_overlap(&tensors)?;
    Ok(Header {
        version,
        alignment,
        data_start,
        metadata,
        tensors,
    })
}

/// No two tensors may share bytes: overlapping or aliased data would make two weights one without a word.
fn check_no_overlap(tensors: &[GgufTensor]) -> Result<(), String> {
    let mut spans: Vec<(&Range<usize>, &str)> = tensors
        .iter()
        .filter(|t| !t.range.is_empty())
        .map(|t| (&t.range, t.name.as_str()))
        .collect();
    spans.sort_by_key(|(r, _)| (r.start, r.end));
    for pair in spans.windows(2) {
        let ((a, a_name), (b, b_name)) = (pair[0], pair[1]);
        if b.start < a.end {
            return Err(format!(
                "tensors `{a_name}` (bytes {}..{}) and `{b_name}` (bytes {}..{}) overlap",
                a.start, a.end, b.start, b.end
            ));
        }
    }
    Ok(())
}

/// `general.alignment`: a power of two; 32 when absent.
fn alignment(metadata: &BTreeMap<String, MetaValue>) -> Result<usize, String> {
    let Some(value) = metadata.get("general.alignment") else {
        return Ok(DEFAULT_ALIGNMENT);
    };
    value
        .as_u64()
        .and_then(|a| usize::try_from(a).ok())
        .filter(|a| a.is_power_of_two())
        .ok_or_else(|| format!("general.alignment must be a power of two, found {value}"))
}

/// One tensor info: name, dims (`ne`), type, data offset and byte count, with the checks that need only the
/// header: at most four dims, a known type, whole blocks per row, an aligned offset, no size overflow.
fn read_tensor_info(
    c: &mut Cursor<'_>,
    index: usize,
    alignment: usize,
) -> Result<(String, Vec<usize>, GgmlType, u64, usize), String> {
    let name = c.string(&format!("name of tensor #{index}"))?;
    let what = format!("tensor `{}`", printable(&name));
    let n_dims = c.u32(&what)?;
    if n_dims == 0 || n_dims as usize > MAX_DIMS {
        return Err(format!("{what} has {n_dims} dimensions (ggml allows 1 to {MAX_DIMS})"));
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for _ in 0..n_dims {
        let d = c.u64(&what)?;
        dims.push(usize::try_from(d).map_err(|_| format!("{what} has a dimension of {d}"))?);
    }
    let elements = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("{what} has dims {dims:?}, whose element count overflows"))?;
    let type_id = c.u32(&what)?;
    let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| format!("{what} has unknown tensor type {type_id}"))?;
    let row = dims.first().copied().unwrap_or(1);
    if !row.is_multiple_of(ggml_type.block_size()) {
        return Err(format!(
            "{what}: row length ne[0] = {row} is not a multiple of the {ggml_type} block size {}",
            ggml_type.block_size()
        ));
    }
    let n_bytes = ggml_type
        .bytes_for(elements as u64)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| format!("{what} ({ggml_type}, dims {dims:?}) is too large"))?;
    let offset = c.u64(&what)?;
    if !offset.is_multiple_of(alignment as u64) {
        return Err(format!(
            "{what} has data offset {offset}, not a multiple of the alignment {alignment}"
        ));
    }
    Ok((name, dims, ggml_type, offset, n_bytes))
}

/// The file range of `n_bytes` at `offset` into the data section, if it lies inside a file of `file_len` bytes.
fn locate(file_len: usize, data_start: usize, offset: u64, n_bytes: usize) -> Option<Range<usize>> {
    let start = data_start.checked_add(usize::try_from(offset).ok()?)?;
    let end = start.checked_add(n_bytes)?;
    (end <= file_len).then_some(start..end)
}
