//! Reading a long text in pieces that tokenise exactly as the whole text does, in bounded work per byte and a
//! bounded buffer whatever the input.
//!
//! Byte-level BPE first splits text into pre-tokens (GPT-2's pattern: a word with its one leading space, a
//! number, punctuation, runs of whitespace) and never merges across them. A single space between two non-space
//! characters always starts a new pre-token (` word`, ` 42`, ` !`), so cutting just before such a space gives
//! pieces whose ids, concatenated, are the ids of the whole text. Runs of whitespace are never cut (`\s+(?!\S)`
//! splits them in a way that depends on what follows).
//!
//! Every byte is scanned for such a cut once, as it arrives (never the whole buffer again), and the buffer never
//! holds more than [`MAX_PIECE`] bytes plus one read. Text with no lone space in [`MAX_PIECE`] bytes (one endless
//! word, a language written without spaces, a file of one repeated character) is cut anyway: preferably where a
//! letter or digit meets punctuation (not at an apostrophe), where GPT-2's pattern also ends a pre-token, else at
//! the bound. Only at such a forced cut can the ids differ from the whole text's, and only around the cut (a
//! pre-token split in two, or a special token written in the text split across it); ordinary text — prose, code,
//! anything with a space every megabyte — is never cut there.
//!
//! The input must be text: invalid UTF-8 and NUL bytes (binary data) are errors, reported at their position in
//! the file.

use std::io::Read;

/// A piece is cut at the latest safe cut once this many bytes are buffered without a lone space.
pub const MAX_PIECE: usize = 1 << 20;

/// Yields the text of `reader` in pieces of about `chunk` bytes, each ending just before a safe cut.
#[derive(Debug)]
pub struct TextChunks<R> {
    reader: R,
    chunk: usize,
    max_piece: usize,
    /// Bytes read and not yet yielded: `buf[..valid]` is checked UTF-8, the rest an incomplete character.
    buf: Vec<u8>,
    valid: usize,
    /// Cuts have been searched for at every position below this.
    scanned: usize,
    /// The latest lone-space cut in `buf[..scanned]`, and the latest forced-cut candidate (letter/digit ↔ punctuation).
    last_cut: Option<usize>,
    last_soft_cut: Option<usize>,
    /// Position in the stream of `buf[0]`, and how many bytes of the stream come before the file (a chat template's
    /// prefix), so that errors give positions in the file.
    offset: u64,
    origin: u64,
    eof: bool,
    done: bool,
}

impl<R: Read> TextChunks<R> {
    pub fn new(reader: R, chunk: usize) -> Self {
        let chunk = chunk.max(16);
        Self {
            reader,
            chunk,
            max_piece: MAX_PIECE.max(2 * chunk),
            buf: Vec::new(),
            valid: 0,
            scanned: 0,
            last_cut: None,
            last_soft_cut: None,
            offset: 0,
            origin: 0,
            eof: false,
            done: false,
        }
    }

    /// Positions in errors are counted from byte `origin` of the stream (the length of a prefix put before the
    /// file), so that they are positions in the file.
    pub fn with_origin(mut self, origin: u64) -> Self {
        self.origin = origin;
        self
    }

    /// Cuts forced after `max` bytes without a lone space (tests; the default is [`MAX_PIECE`]).
    #[cfg(test)]
    fn with_max_piece(mut self, max: usize) -> Self {
        self.max_piece = max.max(2 * self.chunk);
        self
    }

    /// The file position of buffer index `i`, for messages.
    fn position(&self, i: usize) -> u64 {
        (self.offset + i as u64).saturating_sub(self.origin)
    }

    fn invalid(&self, i: usize, what: &str) -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("byte {} of the file: {what}", self.position(i)),
        )
    }

    /// Reads one more block; false at the end of the input.
    fn fill(&mut self) -> std::io::Result<bool> {
        let start = self.buf.len();
        self.buf.resize(start + self.chunk, 0);
        let n = loop {
            match self.reader.read(&mut self.buf[start..]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                self.buf.truncate(start);
                return Err(e);
            }
        };
        self.buf.truncate(start + n);
        if n == 0 {
            if self.valid < self.buf.len() {
                return Err(self.invalid(self.valid, "the text ends inside a UTF-8 sequence"));
            }
            return Ok(false);
        }
        // validate only what is new (with the incomplete character left from the last read)
        let new = &self.buf[self.valid..];
        let good = match std::str::from_utf8(new) {
            Ok(s) => s.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(), // an incomplete sequence at the end: keep it
            Err(e) => {
                let at = self.valid + e.valid_up_to();
                let byte = self.buf[at];
                return Err(self.invalid(at, &format!("0x{byte:02x} is not UTF-8 (not a text file?)")));
            }
        };
        if let Some(nul) = new[..good].iter().position(|&b| b == 0) {
            return Err(self.invalid(self.valid + nul, "a NUL byte: binary data, not text"));
        }
        self.valid += good;
        self.scan();
        Ok(true)
    }

    /// Looks for cuts at the positions not yet scanned whose next character is complete.
    fn scan(&mut self) {
        let first = self.scanned.max(1);
        // only the new bytes and the character before them are looked at (and re-checked as UTF-8, which fill
        // validated), so each byte is scanned once
        let mut lo = first - 1;
        while lo > 0 && (self.buf[lo] & 0xc0) == 0x80 {
            lo -= 1;
        }
        let Ok(text) = std::str::from_utf8(&self.buf[lo..self.valid]) else {
            return;
        };
        let end = self.valid.saturating_sub(1);
        for i in first..end {
            let j = i - lo;
            if !text.is_char_boundary(j) {
                continue;
            }
            let (Some(prev), Some(next)) = (text[..j].chars().next_back(), text[j..].chars().next()) else {
                continue;
            };
            if prev.is_whitespace() {
                continue;
            }
            if next == ' ' {
                let after = text[j + 1..].chars().next();
                if after.is_some_and(|c| !c.is_whitespace()) {
                    self.last_cut = Some(i);
                }
            } else if !next.is_whitespace() && soft_boundary(prev, next) {
                self.last_soft_cut = Some(i);
            }
        }
        self.scanned = self.scanned.max(end);
    }

    /// Takes `buf[..at]` as the next piece.
    fn take(&mut self, at: usize) -> String {
        let rest = self.buf.split_off(at);
        let piece = std::mem::replace(&mut self.buf, rest);
        self.offset += at as u64;
        self.valid -= at;
        self.scanned = self.scanned.saturating_sub(at);
        self.last_cut = self.last_cut.and_then(|c| c.checked_sub(at)).filter(|&c| c > 0);
        self.last_soft_cut = self.last_soft_cut.and_then(|c| c.checked_sub(at)).filter(|&c| c > 0);
        // checked UTF-8 cut at a character boundary
        String::from_utf8(piece).unwrap_or_default()
    }

    /// The latest character boundary of `buf[..valid]` (the cut of last resort).
    fn last_boundary(&self) -> usize {
        let mut i = self.valid;
        while i > 0 && i < self.buf.len() && (self.buf[i] & 0xc0) == 0x80 {
            i -= 1;
        }
        i
    }
}

/// Whether GPT-2's pattern ends a pre-token between `prev` and `next` (both non-space): a letter or digit next
/// to other punctuation, apostrophes aside (`'s`, `'t`, … are pre-tokens of their own).
fn soft_boundary(prev: char, next: char) -> bool {
    let word = |c: char| c.is_alphanumeric();
    prev != '\'' && next != '\'' && word(prev) != word(next)
}

impl<R: Read> Iterator for TextChunks<R> {
    type Item = std::io::Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            if self.valid >= self.chunk {
                if let Some(cut) = self.last_cut {
                    return Some(Ok(self.take(cut)));
                }
                if self.valid >= self.max_piece {
                    let cut = self.last_soft_cut.unwrap_or_else(|| self.last_boundary());
                    if cut > 0 {
                        return Some(Ok(self.take(cut)));
                    }
                }
            }
            if self.eof {
                self.done = true;
                return (self.valid > 0).then(|| {
                    let all = self.valid;
                    Ok(self.take(all))
                });
            }
            match self.fill() {
                Ok(true) => {}
                Ok(false) => self.eof = true,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(text: &str, chunk: usize) -> Vec<String> {
        TextChunks::new(text.as_bytes(), chunk)
            .collect::<std::io::Result<_>>()
            .unwrap()
    }

    #[test]
    fn pieces_reassemble_and_cut_only_before_a_lone_space() {
        let text = "Day 1. Wind  from the north, 12 knots.\n\nDay 2: café, 東京 and 🚢 —  done 42 times!\tEnd.";
        for chunk in [16, 17, 23, 40, 1000] {
            let p = pieces(text, chunk);
            assert_eq!(p.concat(), text, "chunk {chunk}");
            for w in p.windows(2) {
                let (a, b) = (&w[0], &w[1]);
                assert!(
                    b.starts_with(' ') && !b[1..].starts_with(char::is_whitespace),
                    "cut before {b:?}"
                );
                assert!(!a.ends_with(char::is_whitespace), "cut after whitespace: {a:?}");
            }
            if chunk < 40 {
                assert!(p.len() > 1);
            }
        }
    }

    #[test]
    fn utf8_split_across_reads_and_invalid_input() {
        // a reader that returns one byte at a time splits every multi-byte character
        struct OneByte<'a>(&'a [u8]);
        impl Read for OneByte<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let Some((&first, rest)) = self.0.split_first() else {
                    return Ok(0);
                };
                buf[0] = first;
                self.0 = rest;
                Ok(1)
            }
        }
        let text = "ünïcödé 東京 🚢 words go here";
        let p: Vec<String> = TextChunks::new(OneByte(text.as_bytes()), 16)
            .collect::<std::io::Result<_>>()
            .unwrap();
        assert_eq!(p.concat(), text);
        let bad: Vec<std::io::Result<String>> = TextChunks::new(&b"ok \xff\xfe bad"[..], 16).collect();
        assert!(bad.iter().any(|r| r.is_err()));
        let cut: Vec<std::io::Result<String>> = TextChunks::new(&"ok 東".as_bytes()[..4], 16).collect();
        assert!(cut.iter().any(|r| r.is_err()));
    }

    #[test]
    fn errors_give_positions_in_the_file() {
        // 100 KB of text, then an invalid byte: its position in the file, not in a buffer
        let mut bytes = "word ".repeat(20_000).into_bytes();
        bytes.push(0xff);
        let prefix = b"<prefix>";
        let stream = prefix.chain(&bytes[..]);
        let err = TextChunks::new(stream, 4096)
            .with_origin(prefix.len() as u64)
            .find_map(Result::err)
            .unwrap();
        assert!(
            err.to_string().contains("byte 100000 of the file: 0xff is not UTF-8"),
            "{err}"
        );
        let err = TextChunks::new(&b"abc def\0"[..], 16).find_map(Result::err).unwrap();
        assert!(err.to_string().contains("byte 7 of the file: a NUL byte"), "{err}");
    }

    #[test]
    fn input_without_spaces_is_cut_at_the_bound() {
        // one endless word: cut at the bound, never buffered whole
        let text = "a".repeat(100_000);
        let p: Vec<String> = TextChunks::new(text.as_bytes(), 1000)
            .with_max_piece(10_000)
            .collect::<std::io::Result<_>>()
            .unwrap();
        assert_eq!(p.concat(), text);
        assert!(
            p.iter().all(|piece| piece.len() <= 10_000 + 1000),
            "{:?}",
            p.iter().map(String::len).collect::<Vec<_>>()
        );
        assert!(p.len() >= 10);
        // without spaces but with punctuation: cut where a word meets punctuation
        let text = "東京,大阪;".repeat(5000);
        let p: Vec<String> = TextChunks::new(text.as_bytes(), 1000)
            .with_max_piece(8_000)
            .collect::<std::io::Result<_>>()
            .unwrap();
        assert_eq!(p.concat(), text);
        for w in p.windows(2) {
            let (a, b) = (w[0].chars().next_back().unwrap(), w[1].chars().next().unwrap());
            assert!(soft_boundary(a, b), "{a:?} | {b:?}");
        }
    }

    #[test]
    fn work_per_byte_is_bounded() {
        // a reader of 64 MB of one character, one byte per read at first: each byte is scanned once
        struct Endless(usize);
        impl Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = buf.len().min(self.0);
                buf[..n].fill(b'x');
                self.0 -= n;
                Ok(n)
            }
        }
        let start = std::time::Instant::now();
        let mut total = 0;
        for piece in TextChunks::new(Endless(64 << 20), 1 << 16) {
            let piece = piece.unwrap();
            assert!(piece.len() <= MAX_PIECE + (1 << 16));
            total += piece.len();
        }
        assert_eq!(total, 64 << 20);
        assert!(start.elapsed().as_secs() < 30, "{:?}", start.elapsed());
    }
}
