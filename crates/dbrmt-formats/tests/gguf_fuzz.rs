//! Random corruptions of a valid GGUF model: every one must give `Ok` or an error, never a panic — opening the
//! file, reading every tensor, and loading it as a model.

use dbrmt_formats::gguf::GgufFile;
use dbrmt_formats::load_model;
use dbrmt_testkit::{
    gguf::{armt_options, tiny_llama},
    Scratch,
};
use proptest::prelude::*;

/// The tiny model's file and where its data section starts (corruptions aim mostly at the header before it).
fn valid() -> (Vec<u8>, usize) {
    let bytes = tiny_llama(2, false).gguf.bytes();
    let dir = Scratch::new("fuzzbase");
    let start = GgufFile::open(&dir.write("v.gguf", &bytes)).unwrap().data_start();
    (bytes, start)
}

/// Bytes that make plausible header fields: small numbers, type ids, 0xff runs, ASCII.
fn field_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        prop::sample::select(vec![0u8, 1, 2, 3, 4, 8, 9, 12, 13, 30, 32, 99, 0x7f, 0x80, 0xff]),
        any::<u8>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn corrupted_gguf_never_panics(
        header_edits in prop::collection::vec((any::<prop::sample::Index>(), field_byte()), 0..6),
        data_edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        keep in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let (mut bytes, data_start) = valid();
        for (i, b) in header_edits {
            bytes[i.index(data_start)] = b;
        }
        let len = bytes.len();
        for (i, b) in data_edits {
            bytes[i.index(len)] = b;
        }
        if truncate {
            bytes.truncate(keep.index(len + 1));
        }
        let dir = Scratch::new("fuzz");
        let path = dir.write("f.gguf", &bytes);
        if let Ok(file) = GgufFile::open(&path) {
            for t in file.tensors() {
                let _ = file.read_f32(&t.name);
            }
            for v in file.metadata().values() {
                let _ = v.to_string();
            }
        }
        let _ = load_model(&path, &armt_options(0));
    }
}

#[test]
fn the_uncorrupted_file_loads() {
    let (bytes, _) = valid();
    let dir = Scratch::new("fuzzok");
    assert!(load_model(&dir.write("ok.gguf", bytes), &armt_options(0)).is_ok());
}
