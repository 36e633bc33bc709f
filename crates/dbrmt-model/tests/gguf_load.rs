//! A tiny two-layer LLaMA written as GGUF (every supported tensor type, q/k rows in llama.cpp's permuted order,
//! tokenizer metadata) and as the equivalent Hugging Face safetensors directory: both load to the same model,
//! and the CPU model gives bitwise identical logits.

use dbrmt_formats::gguf::{GgufFile, MetaValue};
use dbrmt_formats::{load_model, Model, NameLayout};
use dbrmt_model::cpu::{CpuModel, RunOptions};
use dbrmt_model::LogitsMode;
use dbrmt_schedule::Grid;
use dbrmt_testkit::gguf::{armt_options, tiny_llama, HEAD_DIM, LAYERS, VOCAB};
use dbrmt_testkit::Scratch;

fn logits(m: &Model, ids: &[u32]) -> Vec<f32> {
    let cpu = CpuModel::new(&m.config, &m.weights);
    let grid = Grid::new(m.config.llama.num_layers, m.config.segments_for(ids.len()));
    let opts = RunOptions {
        logits: LogitsMode::All,
        keep_hidden: false,
        threads: 2,
    };
    cpu.run(ids, &grid.diagonal(), &opts).unwrap().logits
}

/// 21 ids: three segments of 8 (the last one short).
fn ids() -> Vec<u32> {
    (0..21).map(|i| (i * 37 + 5) % VOCAB as u32).collect()
}

#[test]
fn gguf_and_safetensors_give_the_same_model_and_logits() {
    for tied in [true, false] {
        let tiny = tiny_llama(11, tied);
        let dir = Scratch::new("pair");
        let gguf = dir.write("tiny.gguf", tiny.gguf.bytes());
        let st = Scratch::new("pair-st");
        tiny.write_safetensors(&st);

        let from_gguf = load_model(&gguf, &armt_options(7)).unwrap();
        let from_st = load_model(st.path(), &armt_options(7)).unwrap();
        assert_eq!(from_gguf.layout, NameLayout::Gguf);
        assert_eq!(from_st.layout, NameLayout::Hf);
        assert_eq!(from_gguf.config, from_st.config, "tied {tied}");
        assert_eq!(from_gguf.config.llama.tie_word_embeddings, tied);
        assert_eq!(from_gguf.config.llama.head_dim, HEAD_DIM);
        assert!(from_gguf.unused_tensors.is_empty(), "{:?}", from_gguf.unused_tensors);
        // Bitwise equal weights: names, ne order, dequantisation and the q/k rows all mapped right. The ARMT
        // memory comes from the same seed and embedding on both paths.
        assert!(from_gguf.weights == from_st.weights, "tied {tied}: weights differ");

        let (a, b) = (logits(&from_gguf, &ids()), logits(&from_st, &ids()));
        assert_eq!(a.len(), 21 * VOCAB);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b), "tied {tied}: logits differ");
        assert!(a.iter().all(|x| x.is_finite()));
        assert!(a.iter().any(|&x| x != a[0]), "logits are constant");
    }
}

#[test]
fn without_unpermuting_the_model_would_differ() {
    // The q/k rows as stored are not the Hugging Face rows: a loader that skipped the unpermute would disagree.
    let tiny = tiny_llama(3, true);
    let dir = Scratch::new("perm");
    let path = dir.write("tiny.gguf", tiny.gguf.bytes());
    let file = GgufFile::open(&path).unwrap();
    for i in 0..LAYERS {
        for (gguf, hf) in [("attn_q", "q_proj"), ("attn_k", "k_proj")] {
            let (_, stored) = file.read_f32(&format!("blk.{i}.{gguf}.weight")).unwrap();
            let (_, hf_rows) = &tiny.hf[&format!("model.layers.{i}.self_attn.{hf}.weight")];
            assert_ne!(&stored, hf_rows, "layer {i} {gguf}");
        }
    }
    let m = load_model(&path, &armt_options(1)).unwrap();
    assert_eq!(
        &m.weights.layers[1].k,
        &tiny.hf["model.layers.1.self_attn.k_proj.weight"].1
    );
}

#[test]
fn a_directory_holding_one_gguf_file_loads_it() {
    let tiny = tiny_llama(5, true);
    let dir = Scratch::new("dir");
    let path = dir.write("SmolTiny.Q4_1.gguf", tiny.gguf.bytes());
    let from_dir = load_model(dir.path(), &armt_options(2)).unwrap();
    let from_file = load_model(&path, &armt_options(2)).unwrap();
    assert!(from_dir.weights == from_file.weights);
    assert_eq!(from_dir.layout, NameLayout::Gguf);
}

#[test]
fn version_2_alignment_64_and_vocab_from_the_tokens_load_the_same() {
    let tiny = tiny_llama(9, false);
    let dir = Scratch::new("variants");
    let reference = load_model(&dir.write("v3.gguf", tiny.gguf.bytes()), &armt_options(4)).unwrap();

    let mut v2 = tiny.gguf.clone();
    v2.version = 2;
    let mut aligned = tiny.gguf.clone();
    aligned.alignment = 64;
    aligned.meta("general.alignment", MetaValue::U32(64));
    let mut no_vocab_size = tiny.gguf.clone();
    no_vocab_size.remove_meta("llama.vocab_size");
    for (label, builder) in [("v2", v2), ("aligned", aligned), ("no-vocab-size", no_vocab_size)] {
        let path = dir.write(&format!("{label}.gguf"), builder.bytes());
        let m = load_model(&path, &armt_options(4)).unwrap();
        assert_eq!(m.config, reference.config, "{label}");
        assert!(m.weights == reference.weights, "{label}");
    }
    let file = GgufFile::open(&dir.0.join("aligned.gguf")).unwrap();
    assert_eq!((file.version(), file.alignment(), file.data_start() % 64), (3, 64, 0));
    assert_eq!(GgufFile::open(&dir.0.join("v2.gguf")).unwrap().version(), 2);
}
