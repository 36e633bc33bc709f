//! `.npy` files (NumPy's array format, versions 1.0–3.0): token ids in, f32 arrays out and in.
//!
//! Only what the engine exchanges: little-endian `<i4`/`<i8` token ids of shape `[N]` or `[1, N]`, and `<f4`
//! arrays of any shape, all in C order. Everything else is refused with an error naming the file.

use std::path::Path;

use crate::error::FormatError;

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// NumPy pads the whole preamble (magic, version, length, header) to a multiple of this, so data is aligned.
const ALIGN: usize = 64;
/// NumPy leaves room in the header for the first dimension to grow to this many digits (appending in place).
const GROWTH_AXIS_MAX_DIGITS: usize = 21;

/// Reads token ids: a C-order `<i4` or `<i8` array of shape `[N]` or `[1, N]`.
pub fn read_ids(path: &Path) -> Result<Vec<i64>, FormatError> {
    let bytes = read_file(path)?;
    // int32 ids widen to int64: up to twice the file again
    crate::memory::check_host(
        &format!("the token ids of {}", path.display()),
        (bytes.len() as u64).saturating_mul(2),
    )?;
    parse_ids(&bytes).map_err(|msg| npy_error(path, msg))
}

/// Reads a C-order `<f4` array: its shape and row-major data.
pub fn read_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>), FormatError> {
    let bytes = read_file(path)?;
    parse_f32(&bytes).map_err(|msg| npy_error(path, msg))
}

/// Token ids from the bytes of a `.npy` file (as [`read_ids`]; the message names no file).
pub fn ids_from_bytes(bytes: &[u8]) -> Result<Vec<i64>, String> {
    parse_ids(bytes)
}

/// A `<f4` array from the bytes of a `.npy` file (as [`read_f32`]; the message names no file).
pub fn f32_from_bytes(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>), String> {
    parse_f32(bytes)
}

/// Writes token ids as a 1-D `<i4` array (what `run --input-ids` reads; `numpy.load` gives int32).
pub fn write_ids(path: &Path, ids: &[u32]) -> Result<(), FormatError> {
    if let Some(&id) = ids.iter().find(|&&id| id > i32::MAX as u32) {
        return Err(npy_error(path, format!("token id {id} does not fit an int32 array")));
    }
    let preamble = preamble_v1("<i4", &[ids.len()]).map_err(|msg| npy_error(path, msg))?;
    crate::files::write_atomically(path, |out| {
        out.write_all(&preamble)?;
        let bytes: Vec<u8> = ids.iter().flat_map(|&x| (x as i32).to_le_bytes()).collect();
        out.write_all(&bytes)
    })
}

/// Writes `data` as a C-order `<f4` array of `shape` (format version 1.0, as `numpy.save` writes it).
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), FormatError> {
    let count = element_count(shape).map_err(|msg| npy_error(path, msg))?;
    if count != data.len() {
        return Err(npy_error(
            path,
            format!("shape {shape:?} holds {count} values but {} were given", data.len()),
        ));
    }
    let preamble = preamble_v1("<f4", shape).map_err(|msg| npy_error(path, msg))?;
    crate::files::write_atomically(path, |out| {
        out.write_all(&preamble)?;
        for chunk in data.chunks(1 << 14) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|x| x.to_le_bytes()).collect();
            out.write_all(&bytes)?;
        }
        Ok(())
    })
}

/// The whole file, refused before reading when the machine cannot hold it (a regular file's size is known; a pipe
/// is read up to what is available).
fn read_file(path: &Path) -> Result<Vec<u8>, FormatError> {
    use std::io::Read;
    let io = |source| FormatError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let what = format!("reading {}", path.display());
    if len > 0 {
        crate::memory::check_host(&what, len)?;
    }
    let cap = crate::memory::host_available().map_or(u64::MAX, |a| a.bytes);
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    let read = file.take(cap.saturating_add(1)).read_to_end(&mut bytes).map_err(io)?;
    if read as u64 > cap {
        crate::memory::check_host(&what, read as u64)?;
    }
    Ok(bytes)
}

/// `text` with every byte that is not printable ASCII escaped (`\x1b`), for messages: a hostile header must not
/// reach the terminal as escape sequences.
fn sanitize(text: &[u8]) -> String {
    const SHOWN: usize = 200;
    let mut out: String = text
        .iter()
        .take(SHOWN)
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    if text.len() > SHOWN {
        out.push('…');
    }
    out
}

fn npy_error(path: &Path, msg: String) -> FormatError {
    FormatError::Npy {
        path: path.to_path_buf(),
        msg,
    }
}

fn parse_ids(bytes: &[u8]) -> Result<Vec<i64>, String> {
    let (header, data) = parse(bytes)?;
    let n = match header.shape.as_slice() {
        [n] | [1, n] => *n,
        other => return Err(format!("token ids must have shape [N] or [1, N], found {other:?}")),
    };
    match header.descr.as_str() {
        "<i4" => Ok(elements::<4>(data, n)?
            .map(|b| i64::from(i32::from_le_bytes(b)))
            .collect()),
        "<i8" => Ok(elements::<8>(data, n)?.map(i64::from_le_bytes).collect()),
        other => Err(format!(
            "token ids must be little-endian int32 or int64 (`<i4`/`<i8`), found dtype `{}`",
            sanitize(other.as_bytes())
        )),
    }
}

fn parse_f32(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>), String> {
    let (header, data) = parse(bytes)?;
    if header.descr != "<f4" {
        return Err(format!(
            "expected a little-endian float32 array (`<f4`), found dtype `{}`",
            sanitize(header.descr.as_bytes())
        ));
    }
    let n = element_count(&header.shape)?;
    let values = elements::<4>(data, n)?.map(f32::from_le_bytes).collect();
    Ok((header.shape, values))
}

/// The first `n` little-endian elements of `N` bytes each; fewer bytes than that is a truncated file. Bytes
/// after them are ignored, as `numpy.load` does.
fn elements<const N: usize>(data: &[u8], n: usize) -> Result<impl Iterator<Item = [u8; N]> + '_, String> {
    let need = n
        .checked_mul(N)
        .ok_or_else(|| format!("{n} elements of {N} bytes overflow"))?;
    let body = data.get(..need).ok_or_else(|| {
        format!(
            "data is truncated: {} bytes where the header promises {need}",
            data.len()
        )
    })?;
    Ok(body.chunks_exact(N).map(|c| <[u8; N]>::try_from(c).unwrap_or([0; N])))
}

fn element_count(shape: &[usize]) -> Result<usize, String> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("shape {shape:?} is too large"))
}

/// The fields of the header dict that matter here.
#[derive(Debug, PartialEq)]
struct Header {
    descr: String,
    shape: Vec<usize>,
}

/// Splits a file into its header and data, checking the magic, version and order.
fn parse(bytes: &[u8]) -> Result<(Header, &[u8]), String> {
    if bytes.get(..MAGIC.len()) != Some(MAGIC.as_slice()) {
        return Err("not a .npy file (bad magic)".into());
    }
    let (len_bytes, header_start) = match bytes.get(6..8) {
        Some([1, 0]) => (2, 10),
        Some([2 | 3, 0]) => (4, 12),
        Some([major, minor]) => return Err(format!("unsupported .npy format version {major}.{minor}")),
        _ => return Err("file is truncated inside the preamble".into()),
    };
    let len_field = bytes
        .get(8..8 + len_bytes)
        .ok_or("file is truncated inside the preamble")?;
    let header_len = len_field
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    if header_len > crate::limits::MAX_NPY_HEADER {
        return Err(format!(
            "header length {header_len} is more than the limit of {} bytes (NumPy writes < 64 KB)",
            crate::limits::MAX_NPY_HEADER
        ));
    }
    let header_end = header_start + header_len;
    let raw = bytes.get(header_start..header_end).ok_or_else(|| {
        format!(
            "header length {header_len} runs past the end of the file ({} bytes)",
            bytes.len()
        )
    })?;
    let text = std::str::from_utf8(raw).map_err(|_| format!("header is not text: {}", sanitize(raw)))?;
    let dict = parse_dict(text).map_err(|e| {
        format!(
            "header is not a NumPy header dict ({e}): {}",
            sanitize(text.trim_end().as_bytes())
        )
    })?;
    let mut descr = None;
    let mut fortran_order = None;
    let mut shape = None;
    for (key, value) in dict {
        match (key.as_str(), value) {
            ("descr", Value::Str(s)) => descr = Some(s),
            ("fortran_order", Value::Bool(b)) => fortran_order = Some(b),
            ("shape", Value::Tuple(t)) => shape = Some(t),
            (k @ ("descr" | "fortran_order" | "shape"), _) => {
                return Err(format!("header field `{k}` has the wrong type"))
            }
            _ => {}
        }
    }
    let (Some(descr), Some(fortran_order), Some(shape)) = (descr, fortran_order, shape) else {
        return Err("header lacks one of `descr`, `fortran_order`, `shape`".into());
    };
    if fortran_order {
        return Err("Fortran-order arrays are not supported (save a C-order array)".into());
    }
    let data = bytes.get(header_end..).unwrap_or_default();
    Ok((Header { descr, shape }, data))
}

/// A value of the header dict (a Python literal).
#[derive(Debug, PartialEq)]
enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

/// Parses the Python dict literal NumPy writes: `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`.
fn parse_dict(text: &str) -> Result<Vec<(String, Value)>, &'static str> {
    let mut p = Parser { rest: text.trim() };
    p.expect('{')?;
    let mut out = Vec::new();
    loop {
        if p.eat('}') {
            break;
        }
        let key = p.string()?;
        p.expect(':')?;
        let value = p.value()?;
        out.push((key, value));
        if !p.eat(',') {
            p.expect('}')?;
            break;
        }
    }
    if !p.rest.trim().is_empty() {
        return Err("text after the dict");
    }
    Ok(out)
}

struct Parser<'a> {
    rest: &'a str,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        self.rest = self.rest.trim_start();
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn expect(&mut self, c: char) -> Result<(), &'static str> {
        if self.eat(c) {
            Ok(())
        } else {
            Err("unexpected character")
        }
    }

    fn string(&mut self) -> Result<String, &'static str> {
        self.skip_ws();
        let mut chars = self.rest.chars();
        let quote = match chars.next() {
            Some(q @ ('\'' | '"')) => q,
            _ => return Err("expected a quoted string"),
        };
        let (s, rest) = chars.as_str().split_once(quote).ok_or("unterminated string")?;
        self.rest = rest;
        Ok(s.to_string())
    }

    fn value(&mut self) -> Result<Value, &'static str> {
        self.skip_ws();
        for (word, b) in [("True", true), ("False", false)] {
            if let Some(rest) = self.rest.strip_prefix(word) {
                self.rest = rest;
                return Ok(Value::Bool(b));
            }
        }
        if self.eat('(') {
            let mut dims = Vec::new();
            loop {
                if self.eat(')') {
                    break;
                }
                dims.push(self.integer()?);
                if !self.eat(',') {
                    self.expect(')')?;
                    break;
                }
            }
            return Ok(Value::Tuple(dims));
        }
        self.string().map(Value::Str)
    }

    fn integer(&mut self) -> Result<usize, &'static str> {
        self.skip_ws();
        let end = self.rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(self.rest.len());
        let (digits, rest) = self.rest.split_at_checked(end).ok_or("expected a dimension")?;
        let n = digits.parse().map_err(|_| "expected a dimension")?;
        // Python 2 wrote long integers with an `L` suffix.
        self.rest = rest.strip_prefix('L').unwrap_or(rest);
        Ok(n)
    }
}

/// Magic, version 1.0, header length and the header dict, padded with spaces and a newline to [`ALIGN`] —
/// byte for byte what `numpy.save` writes (growth room included).
fn preamble_v1(descr: &str, shape: &[usize]) -> Result<Vec<u8>, String> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let tuple = match dims.as_slice() {
        [one] => format!("({one},)"),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple}, }}");
    if let Some(first) = dims.first() {
        header.push_str(&" ".repeat(GROWTH_AXIS_MAX_DIGITS.saturating_sub(first.len())));
    }
    let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(ALIGN) - unpadded));
    header.push('\n');
    let len = u16::try_from(header.len()).map_err(|_| format!("shape {shape:?} makes the header too long"))?;
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numpy_headers() {
        let d = parse_dict("{'descr': '<i4', 'fortran_order': False, 'shape': (1, 300), }   ").unwrap();
        assert_eq!(d[0], ("descr".into(), Value::Str("<i4".into())));
        assert_eq!(d[1], ("fortran_order".into(), Value::Bool(false)));
        assert_eq!(d[2], ("shape".into(), Value::Tuple(vec![1, 300])));
        let d = parse_dict(r#"{"shape": (5,), "descr": "<f4", "fortran_order": True}"#).unwrap();
        assert_eq!(d[0].1, Value::Tuple(vec![5]));
        assert_eq!(parse_dict("{'shape': ()}").unwrap()[0].1, Value::Tuple(vec![]));
        assert_eq!(
            parse_dict("{'shape': (3L, 4L)}").unwrap()[0].1,
            Value::Tuple(vec![3, 4])
        );
        assert!(parse_dict("{'descr': [('a', '<i4')]}").is_err());
        assert!(parse_dict("{'shape': (-1,)}").is_err());
        assert!(parse_dict("{'descr': '<f4'").is_err());
        assert!(parse_dict("{'descr': '<f4'} x").is_err());
    }

    #[test]
    fn preamble_is_aligned_like_numpy() {
        for shape in [&[][..], &[7], &[2, 3], &[6, 1, 192, 256]] {
            let p = preamble_v1("<f4", shape).unwrap();
            assert_eq!(p.len() % ALIGN, 0);
            assert_eq!(p.last(), Some(&b'\n'));
        }
        let p = preamble_v1("<f4", &[7]).unwrap();
        assert!(std::str::from_utf8(&p[10..])
            .unwrap()
            .starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (7,), }"));
    }

    #[test]
    fn reads_version_2_and_3() {
        for major in [2u8, 3] {
            let header = "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }\n";
            let mut b = MAGIC.to_vec();
            b.extend_from_slice(&[major, 0]);
            b.extend_from_slice(&(header.len() as u32).to_le_bytes());
            b.extend_from_slice(header.as_bytes());
            b.extend_from_slice(&7i64.to_le_bytes());
            b.extend_from_slice(&(-1i64).to_le_bytes());
            assert_eq!(parse_ids(&b).unwrap(), vec![7, -1]);
        }
    }
}
