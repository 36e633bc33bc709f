//! llama.cpp's converter reorders the rows of `attn_q` and `attn_k` so that its RoPE, which rotates adjacent
//! pairs (0, 1), (2, 3), …, computes what Hugging Face's rotate-half RoPE computes on pairs (j, j + hd/2).
//! The CPU model and the kernels use the Hugging Face convention, so the rows are put back on load, exactly as
//! transformers' GGUF loader does (`reverse_permute_weights`).
//!
//! Per head of `hd` rows, Hugging Face row `s·hd/2 + j` (half `s` ∈ {0, 1}, `j` < hd/2) is stored at row
//! `2j + s`: llama.cpp's `permute(w, n_head)` is `w.reshape(n_head, 2, hd/2, …).swapaxes(1, 2)`.

/// Applies llama.cpp's `permute` to a row-major `[n_head · hd, cols]` matrix (what the converter stored).
/// Returns `None` when the rows do not split into `n_head` heads of an even size.
pub fn permute_rows(w: &[f32], n_head: usize, cols: usize) -> Option<Vec<f32>> {
    reorder(w, n_head, cols, |half, s, j| (2 * j + s, s * half + j))
}

/// Undoes [`permute_rows`]: the Hugging Face row order from what llama.cpp stored (`reverse_permute_weights`:
/// `w.reshape(n_head, hd/2, 2, …).swapaxes(2, 1)`).
pub fn unpermute_rows(w: &[f32], n_head: usize, cols: usize) -> Option<Vec<f32>> {
    reorder(w, n_head, cols, |half, s, j| (s * half + j, 2 * j + s))
}

/// Builds `out` with `out[head·hd + to] = w[head·hd + from]` for `(to, from) = map(hd/2, s, j)` over every
/// half `s` and `j` < hd/2.
fn reorder(
    w: &[f32],
    n_head: usize,
    cols: usize,
    map: impl Fn(usize, usize, usize) -> (usize, usize),
) -> Option<Vec<f32>> {
    if n_head == 0 || cols == 0 || !w.len().is_multiple_of(cols) {
        return None;
    }
    let rows = w.len() / cols;
    if !rows.is_multiple_of(n_head) || !(rows / n_head).is_multiple_of(2) {
        return None;
    }
    let hd = rows / n_head;
    let half = hd / 2;
    let mut out = vec![0.0; w.len()];
    for head in 0..n_head {
        for s in 0..2 {
            for j in 0..half {
                let (to, from) = map(half, s, j);
                let (to, from) = ((head * hd + to) * cols, (head * hd + from) * cols);
                out[to..to + cols].copy_from_slice(&w[from..from + cols]);
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `[rows, cols]` matrix whose every element names its row: row r is all r.
    fn labelled(rows: usize, cols: usize) -> Vec<f32> {
        (0..rows).flat_map(|r| std::iter::repeat_n(r as f32, cols)).collect()
    }

    fn row_labels(w: &[f32], cols: usize) -> Vec<usize> {
        w.chunks_exact(cols).map(|r| r[0] as usize).collect()
    }

    #[test]
    fn known_small_example() {
        // 2 heads of hd = 4: HF rows per head are (half 0: j = 0, 1; half 1: j = 0, 1). llama.cpp interleaves
        // the halves: stored row 2j + s holds HF row s·2 + j, so the stored order is 0, 2, 1, 3 per head.
        let hf = labelled(8, 3);
        let stored = permute_rows(&hf, 2, 3).unwrap();
        assert_eq!(row_labels(&stored, 3), vec![0, 2, 1, 3, 4, 6, 5, 7]);
        assert_eq!(unpermute_rows(&stored, 2, 3).unwrap(), hf);
        // hd = 6: stored rows per head are HF rows 0, 3, 1, 4, 2, 5.
        let stored = permute_rows(&labelled(6, 1), 1, 1).unwrap();
        assert_eq!(row_labels(&stored, 1), vec![0, 3, 1, 4, 2, 5]);
    }

    #[test]
    fn unpermute_inverts_permute() {
        for (n_head, hd, cols) in [(9, 64, 5), (3, 64, 2), (1, 4, 1), (4, 8, 7)] {
            let w: Vec<f32> = (0..n_head * hd * cols).map(|i| i as f32 * 0.5 - 3.0).collect();
            let p = permute_rows(&w, n_head, cols).unwrap();
            assert_ne!(p, w, "n_head {n_head} hd {hd}");
            assert_eq!(unpermute_rows(&p, n_head, cols).unwrap(), w);
            assert_eq!(
                permute_rows(&unpermute_rows(&w, n_head, cols).unwrap(), n_head, cols).unwrap(),
                w
            );
        }
    }

    #[test]
    fn refuses_rows_that_do_not_split_into_heads() {
        assert_eq!(unpermute_rows(&[0.0; 6], 4, 1), None);
        assert_eq!(unpermute_rows(&[0.0; 6], 2, 1), None); // hd = 3 is odd
        assert_eq!(unpermute_rows(&[0.0; 6], 0, 1), None);
        assert_eq!(unpermute_rows(&[0.0; 7], 1, 2), None);
    }
}
