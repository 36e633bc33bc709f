//! What a forward returns, on any device.

use dbrmt_formats::MemoryState;

/// Which logits to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogitsMode {
    /// None: final-norm hidden states and memory state only (the paper's `lm_head = Identity` timing setup).
    None,
    /// The last text token of the input only.
    #[default]
    Last,
    /// Every text token.
    All,
}

impl LogitsMode {
    /// The rows of `text_rows` whose logits it asks for, as `(first, count)`: none, the last one, or all.
    pub fn rows(self, text_rows: usize) -> (usize, usize) {
        match self {
            LogitsMode::None => (0, 0),
            LogitsMode::Last => (text_rows.saturating_sub(1), 1),
            LogitsMode::All => (0, text_rows),
        }
    }
}

/// The result of prefilling one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Text tokens consumed.
    pub tokens: usize,
    /// Segments they were cut into.
    pub segments: usize,
    /// `[rows, vocab]` logits (`rows` = tokens for `All`, 1 for `Last`, 0 for `None`).
    pub logits: Vec<f32>,
    /// Rows of `logits`.
    pub logit_rows: usize,
    /// Final-RMSNorm'ed hidden states of every text token, `[tokens, d]`, when asked for.
    pub hidden: Option<Vec<f32>>,
    /// `A`, `z` of every layer after the last segment.
    pub state: MemoryState,
}

#[cfg(test)]
mod tests {
    use super::LogitsMode;

    #[test]
    fn logits_mode_rows_are_none_the_last_or_all() {
        assert_eq!(LogitsMode::None.rows(7), (0, 0));
        assert_eq!(LogitsMode::Last.rows(7), (6, 1));
        assert_eq!(LogitsMode::All.rows(7), (0, 7));
    }
}
