//! Random corruptions of valid safetensors and .npy files: every one must give `Ok` or an error, never a panic.

mod checkpoint_support;

use checkpoint_support::{raw_file, Scratch};
use dbrmt_formats::checkpoint::Checkpoint;
use dbrmt_formats::npy;
use proptest::prelude::*;

/// A small valid file: three tensors of different dtypes, header not padded.
fn valid_safetensors() -> Vec<u8> {
    let header = r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]},"c":{"dtype":"I32","shape":[1],"data_offsets":[22,26]}}"#;
    raw_file(header, &(0..26).collect::<Vec<u8>>())
}

fn valid_npy() -> Vec<u8> {
    let dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 3), }";
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend((0..12).map(|i| i as u8));
    out
}

/// Applies `(position, byte)` overwrites (positions taken modulo the length) and then truncates to `keep`.
fn corrupt(mut bytes: Vec<u8>, edits: &[(usize, u8)], keep: usize) -> Vec<u8> {
    let len = bytes.len();
    for &(pos, b) in edits {
        bytes[pos % len] = b;
    }
    bytes.truncate(keep);
    bytes
}

/// Bytes that keep JSON-ish structure when written into a header: digits, quotes, brackets.
fn header_byte() -> impl Strategy<Value = u8> {
    prop_oneof![prop::sample::select(b"0123456789[]{}\",:-eE.".to_vec()), any::<u8>(),]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn corrupted_safetensors_never_panic(
        edits in prop::collection::vec((0usize..400, header_byte()), 0..6),
        keep in 0usize..400,
    ) {
        let bytes = corrupt(valid_safetensors(), &edits, keep);
        let dir = Scratch::new("fuzz");
        dir.write("model.safetensors", &bytes);
        if let Ok(ckpt) = Checkpoint::open(dir.path()) {
            let names: Vec<String> = ckpt.names().map(String::from).collect();
            for name in names {
                let _ = ckpt.read_f32(&name);
                let _ = ckpt.read_f32_shaped(&name, &[4]);
            }
        }
    }

    #[test]
    fn corrupted_npy_never_panics(
        edits in prop::collection::vec((0usize..200, header_byte()), 0..6),
        keep in 0usize..200,
    ) {
        let bytes = corrupt(valid_npy(), &edits, keep);
        let dir = Scratch::new("fuzznpy");
        dir.write("x.npy", &bytes);
        let path = dir.path().join("x.npy");
        let _ = npy::read_ids(&path);
        let _ = npy::read_f32(&path);
    }
}

#[test]
fn the_uncorrupted_files_are_valid() {
    let dir = Scratch::new("fuzzbase");
    dir.write("model.safetensors", valid_safetensors());
    dir.write("x.npy", valid_npy());
    let ckpt = Checkpoint::open(dir.path()).unwrap();
    assert_eq!(ckpt.read_f32("a").unwrap().0, vec![2, 2]);
    assert_eq!(ckpt.read_f32("b").unwrap().1.len(), 3);
    assert!(ckpt.read_f32("c").is_err());
    assert_eq!(npy::read_ids(&dir.path().join("x.npy")).unwrap().len(), 3);
}
