//! The input rows of one segment: its text tokens' embeddings followed by the M memory-token rows.

/// Writes `[Emb(ids); memory]` (`[(ids.len() + M), d]`) into `out`. Ids must be in range (checked by the caller
/// with a proper error; here it is an invariant).
pub fn segment_input(ids: &[u32], embed: &[f32], memory: &[f32], d: usize, out: &mut [f32]) {
    assert!(
        memory.len().is_multiple_of(d) && out.len() == ids.len() * d + memory.len(),
        "segment_input: shape mismatch"
    );
    let (text, mem) = out.split_at_mut(ids.len() * d);
    for (row, &id) in text.chunks_exact_mut(d).zip(ids) {
        let id = id as usize;
        row.copy_from_slice(&embed[id * d..(id + 1) * d]);
    }
    mem.copy_from_slice(memory);
}

#[cfg(test)]
mod tests {
    #[test]
    fn rows_in_order() {
        let embed = [0.0f32, 1.0, 10.0, 11.0, 20.0, 21.0];
        let memory = [7.0f32, 8.0];
        let mut out = [f32::NAN; 6];
        super::segment_input(&[2, 0], &embed, &memory, 2, &mut out);
        assert_eq!(out, [20.0, 21.0, 0.0, 1.0, 7.0, 8.0]);
    }
}
