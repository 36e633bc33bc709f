//! Token ids from the outside world → checked `u32` ids, and their split into segments.

use crate::error::ModelError;

/// Checks that `ids` is non-empty and every id lies in `0..vocab`, returning them as `u32`.
pub fn validate_ids(ids: &[i64], vocab: usize) -> Result<Vec<u32>, ModelError> {
    if ids.is_empty() {
        return Err(ModelError::EmptyInput);
    }
    ids.iter()
        .enumerate()
        .map(|(position, &id)| {
            if id < 0 || id as u64 >= vocab as u64 {
                Err(ModelError::IdOutOfRange { position, id, vocab })
            } else {
                Ok(id as u32)
            }
        })
        .collect()
}

/// The text-token range of segment `s` of an input of `tokens` ids cut into segments of `segment_size`
/// (left-aligned; the last segment may be shorter).
pub fn segment_range(s: usize, tokens: usize, segment_size: usize) -> std::ops::Range<usize> {
    let start = s * segment_size;
    start..tokens.min(start + segment_size)
}

/// The CPU session's prefill step (the GPU session and the packed requests close the same [`full_segments`], the GPU
/// in one run): `all` is the open segment's `reopened` tokens followed by the new ones; every full segment is handed
/// to `close(ids, segments, last)` in runs of at most `per_chunk` segments, with `progress(new tokens consumed)` after each; `last` says the run ends `all` (a
/// prompt that fills its last segment: that close gives the next token's logits, its last row's, so the segment is
/// not run a second time as an open one). Returns how many segments were closed; the rest of `all` (0..T tokens) is
/// the new open segment. `all` must not be empty.
pub fn close_full_segments<E>(
    all: &[u32],
    segment_size: usize,
    per_chunk: usize,
    reopened: usize,
    mut close: impl FnMut(&[u32], usize, bool) -> Result<(), E>,
    progress: &mut impl FnMut(usize),
) -> Result<usize, E> {
    let t = segment_size;
    let closing = full_segments(all.len(), t);
    let mut done = 0;
    while done < closing {
        let n = per_chunk.max(1).min(closing - done);
        close(&all[done * t..(done + n) * t], n, (done + n) * t == all.len())?;
        done += n;
        progress((done * t).saturating_sub(reopened));
    }
    Ok(closing)
}

/// The segments a prefill of `tokens` tokens (the open segment's and the new ones) closes: every full one. The rest,
/// `tokens % T`, is the open segment, empty when the tokens end a segment.
pub fn full_segments(tokens: usize, segment_size: usize) -> usize {
    tokens / segment_size
}

/// Ids already in `u32` (a session's tokens): every one must be below `vocab`.
pub fn check_ids(ids: &[u32], vocab: usize) -> Result<(), ModelError> {
    match ids.iter().enumerate().find(|(_, &id)| id as usize >= vocab) {
        Some((position, &id)) => Err(ModelError::IdOutOfRange {
            position,
            id: id as i64,
            vocab,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(matches!(validate_ids(&[], 10), Err(ModelError::EmptyInput)));
        assert!(matches!(
            validate_ids(&[1, 10], 10),
            Err(ModelError::IdOutOfRange {
                position: 1,
                id: 10,
                ..
            })
        ));
        assert!(matches!(
            validate_ids(&[-1], 10),
            Err(ModelError::IdOutOfRange {
                position: 0,
                id: -1,
                ..
            })
        ));
        assert_eq!(validate_ids(&[0, 9], 10).unwrap(), vec![0, 9]);
    }

    #[test]
    fn segments_are_left_aligned() {
        assert_eq!(segment_range(0, 150, 32), 0..32);
        assert_eq!(segment_range(4, 150, 32), 128..150);
    }

    #[test]
    fn full_segments_close_in_chunks() {
        let all: Vec<u32> = (0..70).collect();
        let (mut runs, mut seen) = (Vec::new(), Vec::new());
        let closing = super::close_full_segments(
            &all,
            16,
            2,
            5,
            |ids: &[u32], n, last| {
                runs.push((ids[0], ids.len(), n, last));
                Ok::<(), ()>(())
            },
            &mut |done| seen.push(done),
        )
        .unwrap();
        // 70 tokens, T = 16: four full segments close (in runs of 2), 6 tokens stay open, no close is the last row
        assert_eq!(closing, 4);
        assert_eq!(runs, vec![(0, 32, 2, false), (32, 32, 2, false)]);
        assert_eq!(seen, vec![27, 59]); // new tokens consumed: the 5 reopened ones do not count

        // tokens that end a segment: every segment closes, the last run gives the logits, nothing stays open
        let mut runs = Vec::new();
        let closing = super::close_full_segments(
            &all[..48],
            16,
            2,
            0,
            |ids: &[u32], n, last| {
                runs.push((ids[0], n, last));
                Ok::<(), ()>(())
            },
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(closing, 3);
        assert_eq!(runs, vec![(0, 2, false), (32, 1, true)]);
        assert_eq!(full_segments(48, 16), 3);
        assert_eq!(full_segments(47, 16), 2);

        // a close's error stops the prefill
        assert!(super::close_full_segments(&all[..16], 16, 8, 0, |_, _, _| Err(()), &mut |_| {}).is_err());
    }
}
