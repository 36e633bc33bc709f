//! Reading a long text in pieces that tokenise exactly as the whole text does.
//!
//! Byte-level BPE first splits text into pre-tokens (GPT-2's pattern: a word with its one leading space, a
//! number, punctuation, runs of whitespace) and never merges across them. A single space between two non-space
//! characters always starts a new pre-token (` word`, ` 42`, ` !`), so cutting just before such a space gives
//! pieces whose ids, concatenated, are the ids of the whole text. Runs of whitespace are never cut (`\s+(?!\S)`
//! splits them in a way that depends on what follows).

use std::io::Read;

/// Yields the text of `reader` in pieces of about `chunk` bytes, each ending just before a safe cut.
#[derive(Debug)]
pub struct TextChunks<R> {
    reader: R,
    chunk: usize,
    /// Decoded text not yet yielded.
    pending: String,
    /// Bytes of an incomplete UTF-8 sequence at the end of the last read.
    tail: Vec<u8>,
    done: bool,
}

impl<R: Read> TextChunks<R> {
    pub fn new(reader: R, chunk: usize) -> Self {
        Self {
            reader,
            chunk: chunk.max(16),
            pending: String::new(),
            tail: Vec::new(),
            done: false,
        }
    }

    /// Reads one more block; false at the end of the input.
    fn fill(&mut self) -> std::io::Result<bool> {
        let mut buf = std::mem::take(&mut self.tail);
        let start = buf.len();
        buf.resize(start + self.chunk, 0);
        let n = self.reader.read(&mut buf[start..])?;
        buf.truncate(start + n);
        if n == 0 {
            if !buf.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "the text ends inside a UTF-8 sequence",
                ));
            }
            return Ok(false);
        }
        let valid = match std::str::from_utf8(&buf) {
            Ok(s) => s.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(), // an incomplete sequence at the end: keep it
            Err(e) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("the text is not UTF-8: {e}"),
                ))
            }
        };
        self.tail = buf.split_off(valid);
        self.pending.push_str(std::str::from_utf8(&buf).expect("checked above"));
        Ok(true)
    }
}

/// The last byte index `i` of `text` where `text[i] == ' '` lies between two non-whitespace characters.
fn last_safe_cut(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    (1..b.len().saturating_sub(1)).rev().find(|&i| {
        b[i] == b' ' && !is_space_end(&text[..i]) && !text[i + 1..].chars().next().is_some_and(char::is_whitespace)
    })
}

fn is_space_end(s: &str) -> bool {
    s.chars().next_back().is_none_or(char::is_whitespace)
}

impl<R: Read> Iterator for TextChunks<R> {
    type Item = std::io::Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            if self.pending.len() >= self.chunk {
                if let Some(i) = last_safe_cut(&self.pending) {
                    let rest = self.pending.split_off(i);
                    return Some(Ok(std::mem::replace(&mut self.pending, rest)));
                }
            }
            match self.fill() {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    return (!self.pending.is_empty()).then(|| Ok(std::mem::take(&mut self.pending)));
                }
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
}
