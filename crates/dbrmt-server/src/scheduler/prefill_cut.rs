//! Where a long prompt is cut into pieces, so that it shares the engine with other requests: each piece closes a
//! bounded number of segments and then other requests get their turn.
//!
//! A piece ends one token past a segment boundary. The session then holds that one token as its open segment
//! (one row to run for its logits), and the next piece re-opens it and closes whole segments again — the same
//! bits as one prefill (a cell never depends on how the input was cut), at the cost of one extra row per piece.
//! Cutting exactly at a boundary instead would leave a full open segment, T rows run once more for nothing.

/// The end (exclusive) of the piece of a request's `total` new ids that starts at `done`, closing at most
/// `segments` segments (at least 1). `open_before` is how many tokens the session's open segment held before the
/// request's first id (0..=T, from a stored state; 0 for a new request); `segment` is T.
pub fn next_cut(done: usize, total: usize, open_before: usize, segment: usize, segments: usize) -> usize {
    let t = segment.max(1);
    // Segment boundaries, in the new ids' positions, are first, first + T, …
    let first = t - open_before.min(t);
    let j = if done <= first { 0 } else { (done - first).div_ceil(t) };
    let boundary = first + (j + segments.max(1) - 1) * t;
    (boundary + 1).min(total)
}

#[cfg(test)]
mod tests {
    use super::next_cut;

    /// Every piece of a prompt, as (start, end).
    fn pieces(total: usize, open_before: usize, t: usize, k: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut done = 0;
        while done < total {
            let end = next_cut(done, total, open_before, t, k);
            assert!(end > done, "no progress at {done}");
            out.push((done, end));
            done = end;
        }
        out
    }

    #[test]
    fn pieces_end_one_token_past_a_boundary() {
        // a new request, T = 10, 2 segments per piece: 0..21 closes segments 0-1, then 21..41 (with the re-opened
        // token 20) closes 2-3, …
        assert_eq!(pieces(50, 0, 10, 2), vec![(0, 21), (21, 41), (41, 50)]);
        // short prompts are one piece
        assert_eq!(pieces(7, 0, 10, 2), vec![(0, 7)]);
        assert_eq!(pieces(21, 0, 10, 2), vec![(0, 21)]);
        // continuing a state whose open segment has 3 tokens: the first boundary is 7 new tokens in
        assert_eq!(
            pieces(40, 3, 10, 1),
            vec![(0, 8), (8, 18), (18, 28), (28, 38), (38, 40)]
        );
        // a full open segment closes with the first new token
        assert_eq!(pieces(25, 10, 10, 2), vec![(0, 11), (11, 25)]);
        // a budget of 0 segments still closes one per piece
        assert_eq!(pieces(25, 0, 10, 0), vec![(0, 11), (11, 21), (21, 25)]);
    }

    #[test]
    fn every_piece_but_the_last_leaves_one_open_token() {
        for t in [1, 3, 8] {
            for open in 0..=t {
                for k in 1..4 {
                    let all = pieces(100, open, t, k);
                    for &(_, end) in &all[..all.len() - 1] {
                        // tokens read so far, counting the re-opened ones
                        assert_eq!((open + end) % t, 1 % t, "t {t} open {open} k {k}: {all:?}");
                    }
                }
            }
        }
    }
}
