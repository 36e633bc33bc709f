//! Saved states as bytes: `to_bytes` and `save` read back exactly, and a truncated,
//! corrupted or other-model state is refused with an error (never a panic, never a wrong state).

use std::path::Path;

use dbrmt_formats::rng::SplitMix64;
use dbrmt_formats::{MemoryState, SavedState};

const ID: &str = "dbrmt-id1:0123456789abcdef";
const ORIGIN: &str = "<upload>";

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
    SavedState::from_bytes(bytes, Path::new(ORIGIN), ID, 3, 12, 8)
}

#[test]
fn bytes_round_trip_and_match_the_file() {
    let saved = sample(1);
    let bytes = saved.to_bytes(ID).unwrap();
    assert!(SavedState::has_checksum(&bytes));
    assert_eq!(read(&bytes).unwrap(), saved);
    let dir = std::env::temp_dir().join(format!("dbrmt-state-bytes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.safetensors");
    saved.save(&path, ID).unwrap();
    // the file holds the same state (its metadata may be in another order: safetensors writes a map)
    let file = std::fs::read(&path).unwrap();
    assert!(file.len() == bytes.len() && SavedState::has_checksum(&file));
    assert_eq!(SavedState::load(&path, ID, 3, 12, 8).unwrap(), saved);
    // nothing but the file is left behind (the temporary was renamed over it)
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(saved.bytes(), 4 * (3 * (12 * 8 + 12) + 3));
}

#[test]
fn truncated_corrupted_and_foreign_states_are_refused() {
    let saved = sample(2);
    let bytes = saved.to_bytes(ID).unwrap();
    for cut in [0, 7, 8, 100, bytes.len() / 2, bytes.len() - 1] {
        let e = read(&bytes[..cut]).unwrap_err().to_string();
        assert!(e.contains(ORIGIN), "{e}");
    }
    // one flipped bit in the tensor data (the last bytes of the file) is caught by the checksum
    let mut flipped = bytes.clone();
    let last = flipped.len() - 3;
    flipped[last] ^= 0x10;
    assert!(read(&flipped).unwrap_err().to_string().contains("corrupted"));
    // another model, other shapes
    let e = SavedState::from_bytes(&bytes, Path::new(ORIGIN), "dbrmt-id1:ffff", 3, 12, 8).unwrap_err();
    assert!(e.to_string().contains("another model"), "{e}");
    assert!(SavedState::from_bytes(&bytes, Path::new(ORIGIN), ID, 4, 12, 8).is_err());
    assert!(SavedState::from_bytes(&bytes, Path::new(ORIGIN), ID, 3, 12, 9).is_err());
}
