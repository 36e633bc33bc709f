//! GGUF metadata values: the thirteen value types of the format (nested arrays included) and typed access.

use std::fmt;

use super::cursor::Cursor;

/// Arrays nested deeper than this are refused: the format allows arrays of arrays, and a hostile file could
/// otherwise nest them until the parser's stack overflows (a real file uses one level).
const MAX_ARRAY_DEPTH: usize = 8;

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    Str(String),
    /// Every element has the same type (the array's element type in the file).
    Array(Vec<MetaValue>),
}

impl MetaValue {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value of any integer type, if it is not negative.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::U8(v) => Some(v.into()),
            Self::U16(v) => Some(v.into()),
            Self::U32(v) => Some(v.into()),
            Self::U64(v) => Some(v),
            Self::I8(v) => u64::try_from(v).ok(),
            Self::I16(v) => u64::try_from(v).ok(),
            Self::I32(v) => u64::try_from(v).ok(),
            Self::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value of any numeric type (integers converted, 64-bit ones possibly rounded).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::F32(v) => Some(v.into()),
            Self::F64(v) => Some(v),
            Self::I8(v) => Some(v.into()),
            Self::I16(v) => Some(v.into()),
            Self::I32(v) => Some(v.into()),
            Self::I64(v) => Some(v as f64),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Self::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[MetaValue]> {
        match self {
            Self::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The format's name of this value's type (`u32`, `string`, `array`, …), for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::U8(_) => "u8",
            Self::I8(_) => "i8",
            Self::U16(_) => "u16",
            Self::I16(_) => "i16",
            Self::U32(_) => "u32",
            Self::I32(_) => "i32",
            Self::U64(_) => "u64",
            Self::I64(_) => "i64",
            Self::F32(_) => "f32",
            Self::F64(_) => "f64",
            Self::Bool(_) => "bool",
            Self::Str(_) => "string",
            Self::Array(_) => "array",
        }
    }
}

/// Short and readable: strings quoted and cut at 60 characters, arrays as their length and first elements.
impl fmt::Display for MetaValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::U8(v) => write!(f, "{v}"),
            Self::I8(v) => write!(f, "{v}"),
            Self::U16(v) => write!(f, "{v}"),
            Self::I16(v) => write!(f, "{v}"),
            Self::U32(v) => write!(f, "{v}"),
            Self::I32(v) => write!(f, "{v}"),
            Self::U64(v) => write!(f, "{v}"),
            Self::I64(v) => write!(f, "{v}"),
            Self::F32(v) => write!(f, "{v}"),
            Self::F64(v) => write!(f, "{v}"),
            Self::Bool(v) => write!(f, "{v}"),
            Self::Str(s) => {
                const SHOWN: usize = 60;
                let cut: String = s.chars().take(SHOWN).collect();
                let more = if s.chars().nth(SHOWN).is_some() { "…" } else { "" };
                write!(f, "{:?}{more}", cut)
            }
            Self::Array(items) => {
                let first = items.first().map_or("", MetaValue::type_name);
                write!(f, "[{} × {first}", items.len())?;
                for item in items.iter().take(3) {
                    write!(f, ", {item}")?;
                }
                f.write_str(if items.len() > 3 { ", …]" } else { "]" })
            }
        }
    }
}

/// How much memory the parsed metadata may still take ([`crate::limits::MAX_GGUF_METADATA_MEMORY`]): every value
/// costs its `MetaValue` and every string its bytes, charged before anything is allocated for them — so an array
/// of a billion one-byte values (32 GB as `MetaValue`s) is refused rather than materialised.
#[derive(Debug)]
pub(super) struct Budget {
    left: usize,
}

impl Budget {
    pub(super) fn new() -> Self {
        Self {
            left: crate::limits::MAX_GGUF_METADATA_MEMORY,
        }
    }

    fn charge(&mut self, bytes: usize, what: &str) -> Result<(), String> {
        match self.left.checked_sub(bytes) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => Err(format!(
                "{what}: the metadata would take more than {} MB in memory (limit of the reader)",
                crate::limits::MAX_GGUF_METADATA_MEMORY >> 20
            )),
        }
    }
}

/// Reads one value of type id `ty` (the file's `gguf_metadata_value_type`).
#[cfg(test)]
pub(super) fn read_value(c: &mut Cursor<'_>, ty: u32, what: &str) -> Result<MetaValue, String> {
    read_value_budgeted(c, ty, what, &mut Budget::new())
}

/// As `read_value`, charging what it allocates to `budget`.
pub(super) fn read_value_budgeted(
    c: &mut Cursor<'_>,
    ty: u32,
    what: &str,
    budget: &mut Budget,
) -> Result<MetaValue, String> {
    budget.charge(std::mem::size_of::<MetaValue>(), what)?;
    read_nested(c, ty, what, 0, budget)
}

fn read_nested(
    c: &mut Cursor<'_>,
    ty: u32,
    what: &str,
    depth: usize,
    budget: &mut Budget,
) -> Result<MetaValue, String> {
    Ok(match ty {
        0 => MetaValue::U8(c.u8(what)?),
        1 => MetaValue::I8(c.i8(what)?),
        2 => MetaValue::U16(c.u16(what)?),
        3 => MetaValue::I16(c.i16(what)?),
        4 => MetaValue::U32(c.u32(what)?),
        5 => MetaValue::I32(c.i32(what)?),
        6 => MetaValue::F32(c.f32(what)?),
        7 => {
            let at = c.position();
            match c.u8(what)? {
                0 => MetaValue::Bool(false),
                1 => MetaValue::Bool(true),
                other => {
                    return Err(format!(
                        "{what} at offset {at} is a bool of value {other} (must be 0 or 1)"
                    ))
                }
            }
        }
        8 => {
            let s = c.string(what)?;
            budget.charge(s.len(), what)?;
            MetaValue::Str(s)
        }
        9 => {
            if depth >= MAX_ARRAY_DEPTH {
                return Err(format!("{what}: arrays nested deeper than {MAX_ARRAY_DEPTH} levels"));
            }
            let elem_ty = c.u32(what)?;
            let min = min_value_bytes(elem_ty).ok_or_else(|| unknown_type(what, elem_ty))?;
            let n = c.count(min, &format!("{what}: array length"))?;
            if n > crate::limits::MAX_GGUF_ARRAY_LEN {
                return Err(format!(
                    "{what}: array of {n} elements is longer than the limit of {} (a vocabulary has < 10⁶)",
                    crate::limits::MAX_GGUF_ARRAY_LEN
                ));
            }
            budget.charge(n.saturating_mul(std::mem::size_of::<MetaValue>()), what)?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(read_nested(c, elem_ty, what, depth + 1, budget)?);
            }
            MetaValue::Array(items)
        }
        10 => MetaValue::U64(c.u64(what)?),
        11 => MetaValue::I64(c.i64(what)?),
        12 => MetaValue::F64(c.f64(what)?),
        other => return Err(unknown_type(what, other)),
    })
}

fn unknown_type(what: &str, ty: u32) -> String {
    format!("{what} has unknown value type {ty} (GGUF defines 0..=12)")
}

/// The fewest bytes a value of type `ty` takes in the file (bounds an array's length by the file's size).
fn min_value_bytes(ty: u32) -> Option<usize> {
    Some(match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        // A string's length, an array's element type and count.
        8 => 8,
        9 => 12,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn typed_access() {
        assert_eq!(MetaValue::I32(7).as_u64(), Some(7));
        assert_eq!(MetaValue::I64(-1).as_u64(), None);
        assert_eq!(MetaValue::F32(1.5).as_u64(), None);
        assert_eq!(MetaValue::U16(3).as_f64(), Some(3.0));
        assert_eq!(MetaValue::F32(0.25).as_f64(), Some(0.25));
        assert_eq!(MetaValue::Str("x".into()).as_f64(), None);
        assert_eq!(MetaValue::Bool(true).as_bool(), Some(true));
        assert_eq!(MetaValue::U8(1).as_bool(), None);
        assert_eq!(MetaValue::Str("llama".into()).as_str(), Some("llama"));
        let a = MetaValue::Array(vec![MetaValue::U8(1), MetaValue::U8(2)]);
        assert_eq!(a.as_array().map(<[_]>::len), Some(2));
        assert_eq!(a.to_string(), "[2 × u8, 1, 2]");
    }

    #[test]
    fn reads_every_type_and_nested_arrays() {
        let cases: Vec<(u32, Vec<u8>, MetaValue)> = vec![
            (0, vec![200], MetaValue::U8(200)),
            (1, vec![0xfe], MetaValue::I8(-2)),
            (2, 513u16.to_le_bytes().to_vec(), MetaValue::U16(513)),
            (3, (-3i16).to_le_bytes().to_vec(), MetaValue::I16(-3)),
            (4, 70000u32.to_le_bytes().to_vec(), MetaValue::U32(70000)),
            (5, (-5i32).to_le_bytes().to_vec(), MetaValue::I32(-5)),
            (6, 1e-5f32.to_le_bytes().to_vec(), MetaValue::F32(1e-5)),
            (7, vec![1], MetaValue::Bool(true)),
            (
                8,
                bytes(&[&2u64.to_le_bytes(), "ok".as_bytes()]),
                MetaValue::Str("ok".into()),
            ),
            (10, u64::MAX.to_le_bytes().to_vec(), MetaValue::U64(u64::MAX)),
            (11, (-7i64).to_le_bytes().to_vec(), MetaValue::I64(-7)),
            (12, 0.5f64.to_le_bytes().to_vec(), MetaValue::F64(0.5)),
        ];
        for (ty, raw, want) in cases {
            let mut c = Cursor::new(&raw);
            assert_eq!(read_value(&mut c, ty, "v"), Ok(want), "type {ty}");
            assert_eq!(c.remaining(), 0, "type {ty}");
        }
        // [[1, 2], []] as an array of arrays of u8.
        let raw = bytes(&[
            &9u32.to_le_bytes(),
            &2u64.to_le_bytes(),
            &0u32.to_le_bytes(),
            &2u64.to_le_bytes(),
            &[1, 2],
            &0u32.to_le_bytes(),
            &0u64.to_le_bytes(),
        ]);
        let v = read_value(&mut Cursor::new(&raw), 9, "v").unwrap();
        let inner = |i: usize| v.as_array().unwrap()[i].as_array().unwrap().to_vec();
        assert_eq!(inner(0), vec![MetaValue::U8(1), MetaValue::U8(2)]);
        assert!(inner(1).is_empty());
    }

    #[test]
    fn refuses_bad_values() {
        let err = read_value(&mut Cursor::new(&[2]), 7, "flag").unwrap_err();
        assert!(err.contains("bool of value 2"), "{err}");
        assert!(read_value(&mut Cursor::new(&[0; 8]), 13, "x")
            .unwrap_err()
            .contains("unknown value type 13"));
        // An array claiming 2^40 u32 elements in a few bytes.
        let raw = bytes(&[&4u32.to_le_bytes(), &(1u64 << 40).to_le_bytes(), &[0; 8]]);
        let err = read_value(&mut Cursor::new(&raw), 9, "x").unwrap_err();
        assert!(err.contains("array length 1099511627776"), "{err}");
        // Arrays nested 100 deep.
        let mut raw = Vec::new();
        for _ in 0..100 {
            raw.extend(bytes(&[&9u32.to_le_bytes(), &1u64.to_le_bytes()]));
        }
        raw.extend(bytes(&[&0u32.to_le_bytes(), &0u64.to_le_bytes()]));
        let err = read_value(&mut Cursor::new(&raw), 9, "x").unwrap_err();
        assert!(err.contains("nested deeper than 8"), "{err}");
    }
}
