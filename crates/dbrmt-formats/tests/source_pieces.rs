//! `ModelSource` reads every tensor the same way whole or in pieces of any size, in the model's row order (GGUF
//! q/k rows put back per head), and its stored-bf16 bytes are exactly the tensor's values.

use dbrmt_formats::source::{tensor_ids, ModelSource};
use dbrmt_formats::{load_model, LoadOptions};
use dbrmt_testkit::gguf::{armt_options, tiny_llama};
use dbrmt_testkit::{paths, Scratch};
use half::bf16;

/// Every tensor read in pieces of at most `max` elements, concatenated, equals the loaded model's tensor.
fn assert_pieces_match(source: &ModelSource, model: &dbrmt_formats::Model, max: usize) {
    for id in tensor_ids(&source.config) {
        let want = model.weights.tensor(id).expect("tensor");
        let mut got = Vec::new();
        source
            .read_pieces(id, max, |first, piece| {
                assert_eq!(first, got.len(), "{id:?}: pieces in order");
                assert!(!piece.is_empty());
                got.extend_from_slice(piece);
                Ok::<(), dbrmt_formats::FormatError>(())
            })
            .unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(want), "{id:?} in pieces of ≤ {max}");
        if let Some(bytes) = source.stored_bf16(id) {
            let values: Vec<f32> = bytes
                .chunks_exact(2)
                .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect();
            assert_eq!(bits(&values), bits(want), "{id:?} stored bf16");
        }
        assert_eq!(source.len(id), want.len());
    }
}

#[test]
fn golden_checkpoints_read_the_same_in_any_pieces() {
    for case in ["tiny-armt-names", "tiny-hf-tied-partial", "small-bf16"] {
        let dir = paths::fixture(case);
        let model = load_model(&dir, &LoadOptions::default()).unwrap();
        let source = ModelSource::open(&dir, &LoadOptions::default()).unwrap();
        for max in [1, 100, 4096, usize::MAX] {
            assert_pieces_match(&source, &model, max);
        }
    }
    // the bf16 checkpoint offers its bytes as they are stored
    let source = ModelSource::open(&paths::fixture("small-bf16"), &LoadOptions::default()).unwrap();
    assert!(source.stored_bf16(dbrmt_formats::names::TensorId::Embed).is_some());
}

#[test]
fn gguf_reads_the_same_in_any_pieces_with_q_k_unpermuted() {
    let dir = Scratch::new("source-gguf");
    for tied in [false, true] {
        let tiny = tiny_llama(3, tied);
        let path = dir.write(if tied { "tied.gguf" } else { "untied.gguf" }, tiny.gguf.bytes());
        let model = load_model(&path, &armt_options(5)).unwrap();
        let source = ModelSource::open(&path, &armt_options(5)).unwrap();
        assert!(source.armt_initialised());
        for max in [1, 7, 1000, usize::MAX] {
            assert_pieces_match(&source, &model, max);
        }
        // the q/k rows are those of Hugging Face's order (the tiny model's reference values)
        let q = source
            .read_f32(dbrmt_formats::names::TensorId::Layer(
                0,
                dbrmt_formats::names::LayerTensor::Q,
            ))
            .unwrap();
        assert_eq!(q, tiny.hf["model.layers.0.self_attn.q_proj.weight"].1);
    }
}
