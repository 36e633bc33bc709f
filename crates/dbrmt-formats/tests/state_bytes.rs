//! Saved states as bytes (what `dbrmt serve` exports and imports): `to_bytes` reads back exactly through
//! `from_bytes` and through the file `save` writes, and a truncated, corrupted or other-model state is refused.

use std::path::Path;

use dbrmt_formats::rng::SplitMix64;
use dbrmt_formats::{MemoryState, SavedState, StateExpect};

const ID: &str = "dbrmt-id1:0123456789abcdef";

fn expect(identity: &str, layers: usize, hidden: usize) -> StateExpect<'_> {
    StateExpect {
        identity,
        layers,
        d_key: 12,
        hidden,
        vocab: Some(512),
        segment_size: Some(8),
        parts: None,
    }
}

fn sample(seed: u64) -> SavedState {
    let mut rng = SplitMix64::new(seed);
    let mut state = MemoryState::zeros(3, 12, 8);
    for l in &mut state.layers {
        l.a.iter_mut().for_each(|x| *x = rng.next_f64() as f32 - 0.5);
        l.z.iter_mut().for_each(|x| *x = rng.next_f64() as f32);
    }
    SavedState {
        state,
        segments: 5,
        open_ids: vec![7, 1, 300],
    }
}

fn read(bytes: &[u8]) -> Result<SavedState, dbrmt_formats::FormatError> {
    let loaded = SavedState::from_bytes(Path::new("<upload>"), bytes, &expect(ID, 3, 8))?;
    assert_eq!(loaded.warning, None, "a state of this version has a checksum");
    Ok(loaded.saved)
}

#[test]
fn bytes_round_trip_and_match_the_file() {
    let saved = sample(1);
    let bytes = saved.to_bytes(ID).unwrap();
    assert_eq!(read(&bytes).unwrap(), saved);
    let dir = std::env::temp_dir().join(format!("dbrmt-state-bytes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.safetensors");
    saved.save(&path, ID).unwrap();
    // the file holds the same state (its metadata may be in another order: safetensors writes a map)
    let file = std::fs::read(&path).unwrap();
    assert_eq!(file.len(), bytes.len());
    assert_eq!(read(&file).unwrap(), saved);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(saved.bytes(), 4 * (3 * (12 * 8 + 12) + 3));
}

#[test]
fn truncated_corrupted_and_foreign_states_are_refused() {
    let saved = sample(2);
    let bytes = saved.to_bytes(ID).unwrap();
    for cut in [0, 7, 8, 100, bytes.len() / 2, bytes.len() - 1] {
        let e = read(&bytes[..cut]).unwrap_err().to_string();
        assert!(e.contains("<upload>"), "{e}");
    }
    // one flipped bit in the tensor data (the last bytes of the file) is caught by the checksum
    let mut flipped = bytes.clone();
    let last = flipped.len() - 3;
    flipped[last] ^= 0x10;
    assert!(read(&flipped).unwrap_err().to_string().contains("checksum"));
    // another model, other shapes
    let e = SavedState::from_bytes(Path::new("<upload>"), &bytes, &expect("dbrmt-id1:ffff", 3, 8)).unwrap_err();
    assert!(e.to_string().contains("another model"), "{e}");
    assert!(SavedState::from_bytes(Path::new("<upload>"), &bytes, &expect(ID, 4, 8)).is_err());
    assert!(SavedState::from_bytes(Path::new("<upload>"), &bytes, &expect(ID, 3, 9)).is_err());
}
