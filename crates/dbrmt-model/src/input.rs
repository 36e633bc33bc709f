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
}
