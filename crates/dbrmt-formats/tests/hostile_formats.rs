//! Issue #10 at the library level: values that parse cleanly but used to break the program — sizes beyond the
//! limits, metadata that would take 32× its size in memory, headers parsed before any cap, aliased tensor data,
//! non-finite weights, edited saved states — each a `FormatError` naming what is wrong.

use dbrmt_formats::gguf::{GgmlType, GgufFile, MetaValue};
use dbrmt_formats::limits::{MAX_GGUF_ARRAY_LEN, MAX_SAFETENSORS_HEADER};
use dbrmt_formats::state::LayerState;
use dbrmt_formats::{load_model, FormatError, MemoryState, SavedState, StateExpect};
use dbrmt_testkit::gguf::{armt_options, tiny_llama, GgufBuilder};
use dbrmt_testkit::Scratch;

fn gguf_error(bytes: &[u8]) -> String {
    let dir = Scratch::new("hostile-gguf");
    let path = dir.write("h.gguf", bytes);
    GgufFile::open(&path).expect_err("refused").to_string()
}

#[test]
fn a_metadata_array_longer_than_the_limit_is_not_materialised() {
    // 2^25 + 1 one-byte values: 33 MB in the file, 1 GB as MetaValues
    let n = MAX_GGUF_ARRAY_LEN + 1;
    let mut bytes = b"GGUF".to_vec();
    bytes.extend(3u32.to_le_bytes());
    bytes.extend(0u64.to_le_bytes()); // tensors
    bytes.extend(1u64.to_le_bytes()); // metadata pairs
    let key = b"big";
    bytes.extend((key.len() as u64).to_le_bytes());
    bytes.extend(key);
    bytes.extend(9u32.to_le_bytes()); // array
    bytes.extend(0u32.to_le_bytes()); // of u8
    bytes.extend((n as u64).to_le_bytes());
    bytes.resize(bytes.len() + n, 7);
    let err = gguf_error(&bytes);
    assert!(
        err.contains(&format!("array of {n} elements is longer than the limit")),
        "{err}"
    );
}

#[test]
fn gguf_tensor_data_may_not_overlap() {
    let mut g = GgufBuilder::default();
    g.meta("general.architecture", MetaValue::Str("llama".into()));
    g.tensor("a", &[8], GgmlType::F32.id(), vec![0; 32]);
    g.tensor("b", &[8], GgmlType::F32.id(), vec![0; 32]);
    g.find("b").offset_override = Some(0);
    let err = gguf_error(&g.bytes());
    assert!(err.contains("tensors `a` (bytes") && err.contains("overlap"), "{err}");
    // partly: b starts inside a
    let mut g2 = g.clone();
    g2.tensor("c", &[16], GgmlType::F32.id(), vec![0; 64]);
    g2.find("b").offset_override = None;
    g2.find("c").offset_override = Some(32);
    assert!(gguf_error(&g2.bytes()).contains("overlap"));
}

#[test]
fn a_safetensors_header_beyond_the_cap_is_not_parsed() {
    let len = MAX_SAFETENSORS_HEADER + 8;
    let mut bytes = (len as u64).to_le_bytes().to_vec();
    bytes.push(b'{');
    bytes.resize(8 + len, b' ');
    let dir = Scratch::new("hostile-header");
    dir.write("model.safetensors", &bytes);
    let err = dbrmt_formats::checkpoint::Checkpoint::open(dir.path()).expect_err("refused");
    assert!(
        err.to_string().contains("is more than the limit of 33554432 bytes"),
        "{err}"
    );
}

#[test]
fn non_finite_gguf_weights_name_the_tensor() {
    let mut t = tiny_llama(3, false);
    t.gguf.find("output_norm.weight").data[4..8].copy_from_slice(&f32::NAN.to_le_bytes());
    let dir = Scratch::new("hostile-nan");
    let path = dir.write("m.gguf", t.gguf.bytes());
    match load_model(&path, &armt_options(1)) {
        Err(FormatError::NonFinite { name, index, .. }) => {
            assert_eq!((name.as_str(), index), ("output_norm.weight", 1))
        }
        other => panic!("{other:?}"),
    }
}

const ID: &str = "dbrmt-id1:00000000000000aa";

fn expect() -> StateExpect<'static> {
    StateExpect {
        identity: ID,
        layers: 2,
        d_key: 3,
        hidden: 2,
        vocab: Some(50),
        segment_size: Some(4),
        parts: None,
    }
}

fn state(segments: usize, open_ids: Vec<u32>, value: f32) -> SavedState {
    let layer = LayerState {
        a: vec![value; 6],
        z: vec![value; 3],
    };
    SavedState {
        state: MemoryState {
            d_key: 3,
            hidden: 2,
            layers: vec![layer; 2],
        },
        segments,
        open_ids,
    }
}

#[test]
fn saved_states_round_trip_and_every_check_holds() {
    let dir = Scratch::new("hostile-states");
    let path = dir.path().join("s.safetensors");
    let good = state(2, vec![1, 2, 3], 0.5);
    good.save(&path, ID).unwrap();
    let loaded = SavedState::load_checked(&path, &expect()).unwrap();
    assert_eq!((loaded.saved, loaded.warning), (good, None));
    let refused = |s: SavedState, needle: &str| {
        s.save(&path, ID).unwrap();
        let err = SavedState::load_checked(&path, &expect())
            .expect_err(needle)
            .to_string();
        assert!(err.contains(needle), "{err}");
    };
    refused(
        state(2, vec![1, 2, 3, 4, 5], 0.5),
        "holds 5 ids, more than a segment of the model (4)",
    );
    refused(
        state(2, vec![49, 50], 0.5),
        "open id 50 (at 1) is outside the model's vocabulary (size 50)",
    );
    refused(
        state(0, vec![1], 0.5),
        "`dbrmt.segments` is 0 but the state is not all zeros",
    );
    refused(state(1, vec![1], f32::INFINITY), "`layers.0.A` holds inf at element 0");
    refused(state(1 << 41, vec![1], 0.5), "bad `dbrmt.segments`");
    // another model's identity
    state(1, vec![1], 0.5)
        .save(&path, "dbrmt-id1:00000000000000bb")
        .unwrap();
    let err = SavedState::load_checked(&path, &expect()).unwrap_err().to_string();
    assert!(err.contains("saved from another model"), "{err}");
    // the old loader's signature still works (without the vocabulary checks)
    state(1, vec![99], 0.5).save(&path, ID).unwrap();
    assert_eq!(SavedState::load(&path, ID, 2, 3, 2).unwrap().open_ids, vec![99]);
}

#[test]
fn shards_stay_inside_the_model_directory_or_its_hf_cache_repository() {
    let fixture = dbrmt_testkit::paths::fixture("tiny-armt-names");
    let root = Scratch::new("hostile-links");
    // a Hugging Face cache snapshot: links into the repository's blobs/ are fine
    let repo = root.path().join("models--org--tiny");
    let snapshot = repo.join("snapshots/0123abcd");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::copy(fixture.join("model.safetensors"), repo.join("blobs/feed")).unwrap();
    std::os::unix::fs::symlink("../../blobs/feed", snapshot.join("model.safetensors")).unwrap();
    let ckpt = dbrmt_formats::checkpoint::Checkpoint::open(&snapshot).unwrap();
    assert!(ckpt.names().count() > 10);
    // the same link from a plain directory leads out of it
    let plain = root.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    std::os::unix::fs::symlink(repo.join("blobs/feed"), plain.join("model.safetensors")).unwrap();
    let err = dbrmt_formats::checkpoint::Checkpoint::open(&plain)
        .unwrap_err()
        .to_string();
    assert!(err.contains("leads out of the model directory"), "{err}");
}
