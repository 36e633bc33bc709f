//! Every golden fixture loads, in its own name layout, with values exactly as stored.

mod checkpoint_support;

use checkpoint_support::{fixture, fixture_tensors};
use dbrmt_formats::checkpoint::Checkpoint;
use dbrmt_formats::names::{LayerTensor, TensorId};
use dbrmt_formats::{load_model, LoadOptions, Model, NameLayout};
use half::bf16;
use safetensors::Dtype;

const FIXTURES: [&str; 4] = [
    "tiny-armt-names",
    "tiny-hf-tied-partial",
    "tiny-single-short",
    "small-bf16",
];

fn load(name: &str) -> Model {
    load_model(&fixture(name), &LoadOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The loaded tensor `id` of a model, flattened.
fn loaded(m: &Model, id: TensorId) -> Vec<f32> {
    let w = &m.weights;
    match id {
        TensorId::Embed => w.embed.clone(),
        TensorId::Norm => w.norm.clone(),
        TensorId::LmHead => w.lm_head.clone().unwrap(),
        TensorId::Memory => w.memory.clone(),
        TensorId::Layer(i, t) => {
            let l = &w.layers[i];
            match t {
                LayerTensor::InputNorm => l.input_norm.clone(),
                LayerTensor::Q => l.q.clone(),
                LayerTensor::K => l.k.clone(),
                LayerTensor::V => l.v.clone(),
                LayerTensor::O => l.o.clone(),
                LayerTensor::PostNorm => l.post_norm.clone(),
                LayerTensor::Gate => l.gate.clone(),
                LayerTensor::Up => l.up.clone(),
                LayerTensor::Down => l.down.clone(),
                LayerTensor::MemQ => l.mem_q.clone(),
                LayerTensor::MemK => l.mem_k.clone(),
                LayerTensor::MemV => l.mem_v.clone(),
                LayerTensor::MemBeta => l.mem_beta.clone(),
                LayerTensor::MemBetaBias => vec![l.mem_beta_bias],
            }
        }
    }
}

fn all_ids(m: &Model) -> Vec<TensorId> {
    let mut ids = vec![TensorId::Embed, TensorId::Norm, TensorId::Memory];
    if !m.config.llama.tie_word_embeddings {
        ids.push(TensorId::LmHead);
    }
    for i in 0..m.config.llama.num_layers {
        ids.extend(
            LayerTensor::BACKBONE
                .iter()
                .chain(&LayerTensor::ARMT)
                .map(|&t| TensorId::Layer(i, t)),
        );
    }
    ids
}

fn decode(dtype: Dtype, bytes: &[u8]) -> Vec<f32> {
    match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| bf16::from_le_bytes(c.try_into().unwrap()).to_f32())
            .collect(),
        other => panic!("fixture dtype {other}"),
    }
}

#[test]
fn every_fixture_loads_in_its_layout() {
    let expect = [
        ("tiny-armt-names", NameLayout::Armt, false),
        ("tiny-hf-tied-partial", NameLayout::Hf, true),
        ("tiny-single-short", NameLayout::Armt, false),
        ("small-bf16", NameLayout::Armt, false),
    ];
    for (name, layout, tied) in expect {
        let m = load(name);
        assert_eq!(m.layout, layout, "{name}");
        assert_eq!(m.config.llama.tie_word_embeddings, tied, "{name}");
        assert_eq!(m.weights.lm_head.is_none(), tied, "{name}");
        assert!(m.unused_tensors.is_empty(), "{name}: {:?}", m.unused_tensors);
        assert_eq!(m.unused_tensors_warning(), None);
        assert!(m.armt_seed.is_none());
        assert_eq!(m.weights.layers.len(), m.config.llama.num_layers);
    }
}

#[test]
fn every_tensor_equals_the_stored_values() {
    for name in FIXTURES {
        let m = load(name);
        let ckpt = Checkpoint::open(&fixture(name)).unwrap();
        let raw = fixture_tensors(name);
        assert_eq!(raw.len(), ckpt.names().count());
        for id in all_ids(&m) {
            let stored = m.layout.name(id);
            let t = &raw[&stored];
            assert_eq!(loaded(&m, id), decode(t.dtype, &t.data), "{name}: {stored}");
            // The flattened length agrees with the stored shape.
            assert_eq!(
                loaded(&m, id).len(),
                t.shape.iter().product::<usize>(),
                "{name}: {stored}"
            );
        }
    }
}

#[test]
fn bf16_weights_convert_exactly() {
    let m = load("small-bf16");
    let raw = fixture_tensors("small-bf16");
    let q = &raw["memory_cell.model.model.layers.5.layer.self_attn.q_proj.weight"];
    assert_eq!(q.dtype, Dtype::BF16);
    assert_eq!(q.shape, vec![256, 256]);
    let bits: Vec<u16> = q
        .data
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    for (i, (&b, &v)) in bits.iter().zip(&m.weights.layers[5].q).enumerate() {
        // bf16 → f32 is a 16-bit shift: exact, no rounding.
        assert_eq!(v.to_bits(), u32::from(b) << 16, "element {i}");
    }
    assert!(m.weights.embed.iter().all(|v| v.to_bits() & 0xffff == 0));
    assert_eq!(m.weights.memory.len(), 16 * 256);
    assert_eq!(m.weights.layers[0].mem_beta.len(), 256);
}

#[test]
fn fixture_configs_are_read() {
    let m = load("small-bf16");
    let c = &m.config;
    assert_eq!(
        (
            c.llama.vocab_size,
            c.llama.hidden_size,
            c.llama.intermediate_size,
            c.llama.num_layers
        ),
        (1000, 256, 512, 6)
    );
    assert_eq!((c.llama.num_heads, c.llama.num_kv_heads, c.llama.head_dim), (8, 2, 32));
    assert_eq!(c.llama.rms_norm_eps, 1e-5);
    assert_eq!(c.llama.rope_theta, 500000.0);
    let s = c.llama.rope_scaling.unwrap();
    assert_eq!(
        (
            s.factor,
            s.low_freq_factor,
            s.high_freq_factor,
            s.original_max_position_embeddings
        ),
        (32.0, 1.0, 4.0, 8192.0)
    );
    assert_eq!(
        (c.armt.num_mem_tokens, c.armt.d_mem, c.armt.segment_size, c.armt.nu),
        (16, 32, 64, 3)
    );
    assert!(c.armt.correction);
}

#[test]
fn checkpoint_api_reports_dtype_and_shape() {
    let ckpt = Checkpoint::open(&fixture("tiny-hf-tied-partial")).unwrap();
    let e = ckpt.entry("model.layers.0.W_mb.bias").unwrap();
    assert_eq!((e.dtype, e.shape.as_slice()), (Dtype::F32, &[1][..]));
    assert!(ckpt.entry("lm_head.weight").is_none());
    assert_eq!(ckpt.files().count(), 1);
    let (shape, data) = ckpt.read_f32("memory").unwrap();
    assert_eq!(shape, vec![8, 128]);
    assert_eq!(data.len(), 8 * 128);
}
