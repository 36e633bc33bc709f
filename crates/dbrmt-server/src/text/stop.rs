//! Stop strings over streamed text: text is released as soon as it can no longer be the start of a stop string,
//! and generation ends at the first stop string, which is not returned (OpenAI's rule).

/// Holds back the tail of the text that might still become a stop string.
#[derive(Debug, Clone, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    /// Text not released yet: no stop string occurs in it, and it is a prefix of one.
    held: String,
}

/// What one piece of text gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    /// Text to send now.
    pub text: String,
    /// A stop string was found: `text` ends just before it, and generation ends.
    pub stopped: bool,
}

impl StopMatcher {
    /// `stops` must be non-empty strings (checked where requests are read).
    pub fn new(stops: Vec<String>) -> Self {
        Self {
            stops,
            held: String::new(),
        }
    }

    /// Adds generated text; returns what may be sent.
    pub fn push(&mut self, piece: &str) -> Released {
        self.held.push_str(piece);
        // Released text never held the start of a stop string, so a match lies wholly in `held`.
        let first = self.stops.iter().filter_map(|s| self.held.find(s.as_str())).min();
        if let Some(at) = first {
            let text = self.held[..at].to_string();
            self.held.clear();
            return Released { text, stopped: true };
        }
        let keep = self.partial_suffix();
        let text = self.held[..self.held.len() - keep].to_string();
        self.held.drain(..self.held.len() - keep);
        Released { text, stopped: false }
    }

    /// The text held back, at the end of generation.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Bytes of the longest suffix of `held` that is a proper prefix of some stop string.
    fn partial_suffix(&self) -> usize {
        let longest = self.stops.iter().map(String::len).max().unwrap_or(0);
        (1..longest.min(self.held.len() + 1))
            .rev()
            .find(|&n| {
                let start = self.held.len() - n;
                self.held.is_char_boundary(start)
                    && self
                        .stops
                        .iter()
                        .any(|s| s.len() > n && s.starts_with(&self.held[start..]))
            })
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut m = StopMatcher::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = String::new();
        for p in pieces {
            let r = m.push(p);
            out.push_str(&r.text);
            if r.stopped {
                return (out, true);
            }
        }
        out.push_str(&m.finish());
        (out, false)
    }

    #[test]
    fn stops_across_pieces_and_holds_back_only_what_might_stop() {
        assert_eq!(run(&["\n\n"], &["a", "b\n", "\nc"]), ("ab".into(), true));
        assert_eq!(run(&["END"], &["xE", "N", "D tail"]), ("x".into(), true));
        // a false start is released once it can no longer become the stop string
        let mut m = StopMatcher::new(vec!["END".into()]);
        assert_eq!(m.push("xEN").text, "x");
        assert_eq!(m.push("O").text, "ENO");
        // the earliest of several stops wins; without a match everything comes out
        assert_eq!(run(&["b", "a"], &["xyab"]), ("xy".into(), true));
        assert_eq!(run(&["zz"], &["z", "y", "z"]), ("zyz".into(), false));
        assert_eq!(run(&[], &["anything"]), ("anything".into(), false));
    }

    #[test]
    fn multibyte_text_is_cut_on_character_boundaries() {
        assert_eq!(run(&["é!"], &["caf", "é", "é", "!"]), ("café".into(), true));
        assert_eq!(run(&["ñx"], &["añ", "ñb"]), ("aññb".into(), false));
    }
}
