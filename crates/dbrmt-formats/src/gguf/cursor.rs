//! A bounds-checked little-endian reader over the GGUF header: every read says what it wanted and where when
//! the file ends first, so a truncated file is an error, never a panic.

/// Reads little-endian values from `buf`, front to back.
#[derive(Debug)]
pub(super) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// The offset of the next byte to be read.
    pub(super) fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left after the current position.
    pub(super) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next `n` bytes; `what` names them in the error.
    pub(super) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.buf.len());
        let Some(bytes) = end.and_then(|end| self.buf.get(self.pos..end)) else {
            return Err(format!(
                "truncated: {what} needs {n} bytes at offset {}, but the file has {} bytes",
                self.pos,
                self.buf.len()
            ));
        };
        self.pos += n;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let bytes = self.take(N, what)?;
        // `take` returned exactly N bytes.
        Ok(<[u8; N]>::try_from(bytes).unwrap_or([0; N]))
    }

    pub(super) fn u8(&mut self, what: &str) -> Result<u8, String> {
        self.array::<1>(what).map(|b| b[0])
    }

    pub(super) fn i8(&mut self, what: &str) -> Result<i8, String> {
        self.array(what).map(i8::from_le_bytes)
    }

    pub(super) fn u16(&mut self, what: &str) -> Result<u16, String> {
        self.array(what).map(u16::from_le_bytes)
    }

    pub(super) fn i16(&mut self, what: &str) -> Result<i16, String> {
        self.array(what).map(i16::from_le_bytes)
    }

    pub(super) fn u32(&mut self, what: &str) -> Result<u32, String> {
        self.array(what).map(u32::from_le_bytes)
    }

    pub(super) fn i32(&mut self, what: &str) -> Result<i32, String> {
        self.array(what).map(i32::from_le_bytes)
    }

    pub(super) fn u64(&mut self, what: &str) -> Result<u64, String> {
        self.array(what).map(u64::from_le_bytes)
    }

    pub(super) fn i64(&mut self, what: &str) -> Result<i64, String> {
        self.array(what).map(i64::from_le_bytes)
    }

    pub(super) fn f32(&mut self, what: &str) -> Result<f32, String> {
        self.array(what).map(f32::from_le_bytes)
    }

    pub(super) fn f64(&mut self, what: &str) -> Result<f64, String> {
        self.array(what).map(f64::from_le_bytes)
    }

    /// A count (u64) of items that each take at least `min_item_bytes` bytes: one larger than the rest of the
    /// file could hold is refused before anything is allocated for it.
    pub(super) fn count(&mut self, min_item_bytes: usize, what: &str) -> Result<usize, String> {
        let at = self.pos;
        let n = self.u64(what)?;
        let fits = self.remaining() / min_item_bytes.max(1);
        match usize::try_from(n) {
            Ok(n) if n <= fits => Ok(n),
            _ => Err(format!(
                "{what} {n} at offset {at} is impossible: the {} bytes left hold at most {fits} (file truncated \
                 or corrupt)",
                self.remaining()
            )),
        }
    }

    /// A GGUF string: u64 length, then that many bytes of UTF-8.
    pub(super) fn string(&mut self, what: &str) -> Result<String, String> {
        let at = self.pos;
        let len = self.u64(what)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&n| n <= self.remaining())
            .ok_or_else(|| {
                format!(
                    "{what} at offset {at} has length {len}, more than the {} bytes left in the file",
                    self.remaining()
                )
            })?;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|e| format!("{what} at offset {at} is not UTF-8: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_endian_and_stops_at_the_end() {
        let buf = [1u8, 0, 0, 0, 0xff, 2, 0, 0, 0, 0, 0, 0, 0, b'h', b'i'];
        let mut c = Cursor::new(&buf);
        assert_eq!(c.u32("a"), Ok(1));
        assert_eq!(c.i8("b"), Ok(-1));
        assert_eq!(c.string("s").as_deref(), Ok("hi"));
        assert_eq!(c.remaining(), 0);
        let err = c.u8("c").unwrap_err();
        assert!(err.contains("truncated: c needs 1 bytes at offset 15"), "{err}");
    }

    #[test]
    fn refuses_absurd_lengths_and_counts() {
        let mut buf = u64::MAX.to_le_bytes().to_vec();
        buf.extend_from_slice(&[0; 8]);
        assert!(Cursor::new(&buf)
            .string("key")
            .unwrap_err()
            .contains("has length 18446744073709551615"));
        let err = Cursor::new(&buf).count(8, "tensor count").unwrap_err();
        assert!(err.contains("hold at most 1"), "{err}");
        let mut c = Cursor::new(&[2, 0, 0, 0, 0, 0, 0, 0, 0xc3, 0x28]);
        assert!(c.string("s").unwrap_err().contains("not UTF-8"));
    }
}
