//! A GGUF writer for tests, written from the format description (llama.cpp's `docs/gguf.md`), independent of the
//! reader it tests: header, metadata, tensor infos, padding, then each tensor's data padded to the alignment.

use std::collections::BTreeMap;

use dbrmt_formats::gguf::dequant::dequantize;
use dbrmt_formats::gguf::{GgmlType, MetaValue};
use dbrmt_formats::{ArmtParams, LoadOptions};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

use crate::{Scratch, SplitMix64};

/// One tensor to write: ggml `ne` dims (fastest first), the type id, the raw bytes, and optionally a data offset
/// to store instead of the computed one.
#[derive(Debug, Clone)]
pub struct RawTensor {
    pub name: String,
    pub dims: Vec<u64>,
    pub type_id: u32,
    pub data: Vec<u8>,
    pub offset_override: Option<u64>,
}

/// A GGUF file under construction.
#[derive(Debug, Clone)]
pub struct GgufBuilder {
    pub version: u32,
    /// Alignment used for the layout (set `general.alignment` too when it is not 32).
    pub alignment: usize,
    pub meta: Vec<(String, MetaValue)>,
    pub tensors: Vec<RawTensor>,
}

impl Default for GgufBuilder {
    fn default() -> Self {
        Self {
            version: 3,
            alignment: 32,
            meta: Vec::new(),
            tensors: Vec::new(),
        }
    }
}

impl GgufBuilder {
    pub fn meta(&mut self, key: &str, value: MetaValue) -> &mut Self {
        self.meta.retain(|(k, _)| k != key);
        self.meta.push((key.to_string(), value));
        self
    }

    pub fn remove_meta(&mut self, key: &str) -> &mut Self {
        self.meta.retain(|(k, _)| k != key);
        self
    }

    pub fn tensor(&mut self, name: &str, dims: &[u64], type_id: u32, data: Vec<u8>) -> &mut Self {
        self.tensors.push(RawTensor {
            name: name.to_string(),
            dims: dims.to_vec(),
            type_id,
            data,
            offset_override: None,
        });
        self
    }

    pub fn find(&mut self, name: &str) -> &mut RawTensor {
        self.tensors.iter_mut().find(|t| t.name == name).unwrap()
    }

    pub fn remove_tensor(&mut self, name: &str) -> &mut Self {
        self.tensors.retain(|t| t.name != name);
        self
    }

    /// The file: header, metadata, tensor infos, padding, then each tensor's data padded to the alignment.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(self.version.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend((self.meta.len() as u64).to_le_bytes());
        for (key, value) in &self.meta {
            put_str(&mut out, key);
            out.extend(type_id(value).to_le_bytes());
            put_value(&mut out, value);
        }
        let mut offset = 0u64;
        let mut offsets = Vec::new();
        for t in &self.tensors {
            put_str(&mut out, &t.name);
            out.extend((t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(t.type_id.to_le_bytes());
            out.extend(t.offset_override.unwrap_or(offset).to_le_bytes());
            offsets.push(offset);
            offset = (offset + t.data.len() as u64).next_multiple_of(self.alignment as u64);
        }
        pad(&mut out, self.alignment);
        for t in &self.tensors {
            out.extend(&t.data);
            pad(&mut out, self.alignment);
        }
        out
    }
}

fn pad(out: &mut Vec<u8>, alignment: usize) {
    out.resize(out.len().next_multiple_of(alignment), 0);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

/// The GGUF value type id of `v` (arrays: 9).
pub fn type_id(v: &MetaValue) -> u32 {
    match v {
        MetaValue::U8(_) => 0,
        MetaValue::I8(_) => 1,
        MetaValue::U16(_) => 2,
        MetaValue::I16(_) => 3,
        MetaValue::U32(_) => 4,
        MetaValue::I32(_) => 5,
        MetaValue::F32(_) => 6,
        MetaValue::Bool(_) => 7,
        MetaValue::Str(_) => 8,
        MetaValue::Array(_) => 9,
        MetaValue::U64(_) => 10,
        MetaValue::I64(_) => 11,
        MetaValue::F64(_) => 12,
    }
}

fn put_value(out: &mut Vec<u8>, v: &MetaValue) {
    match v {
        MetaValue::U8(x) => out.push(*x),
        MetaValue::I8(x) => out.extend(x.to_le_bytes()),
        MetaValue::U16(x) => out.extend(x.to_le_bytes()),
        MetaValue::I16(x) => out.extend(x.to_le_bytes()),
        MetaValue::U32(x) => out.extend(x.to_le_bytes()),
        MetaValue::I32(x) => out.extend(x.to_le_bytes()),
        MetaValue::U64(x) => out.extend(x.to_le_bytes()),
        MetaValue::I64(x) => out.extend(x.to_le_bytes()),
        MetaValue::F32(x) => out.extend(x.to_le_bytes()),
        MetaValue::F64(x) => out.extend(x.to_le_bytes()),
        MetaValue::Bool(x) => out.push(u8::from(*x)),
        MetaValue::Str(s) => put_str(out, s),
        MetaValue::Array(items) => {
            // An empty array is written as an array of u8.
            out.extend(items.first().map_or(0, type_id).to_le_bytes());
            out.extend((items.len() as u64).to_le_bytes());
            for item in items {
                put_value(out, item);
            }
        }
    }
}

/// The bytes of a GGUF v3 file with these metadata pairs and no tensors (enough for tokenizer tests).
pub fn metadata_only(kvs: &[(&str, MetaValue)]) -> Vec<u8> {
    let mut b = GgufBuilder::default();
    for (key, value) in kvs {
        b.meta(key, value.clone());
    }
    b.bytes()
}

/// Byte offsets of the f16 scale fields of a block (set to small finite values so weights stay sane).
fn scale_fields(t: GgmlType) -> &'static [usize] {
    match t {
        GgmlType::Q8_0 | GgmlType::Q4_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q4_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        _ => &[],
    }
}

/// Random stored bytes of `elements` values of type `t`, with magnitudes around `scale`.
pub fn random_data(t: GgmlType, elements: usize, scale: f32, rng: &mut SplitMix64) -> Vec<u8> {
    match t {
        GgmlType::F32 => (0..elements)
            .flat_map(|_| (rng.signed_unit() * scale).to_le_bytes())
            .collect(),
        GgmlType::F16 => (0..elements)
            .flat_map(|_| half::f16::from_f32(rng.signed_unit() * scale).to_le_bytes())
            .collect(),
        GgmlType::BF16 => (0..elements)
            .flat_map(|_| half::bf16::from_f32(rng.signed_unit() * scale).to_le_bytes())
            .collect(),
        _ => {
            let blocks = elements / t.block_size();
            let mut data: Vec<u8> = (0..blocks * t.block_bytes()).map(|_| rng.byte()).collect();
            // Per-element magnitude of a code is up to ~2^(bits−1) (Q4: 8, Q6_K: 32 · i8 scale, …): aim the scale
            // field so that values land near ±scale.
            let code = match t {
                GgmlType::Q8_0 => 128.0,
                GgmlType::Q4_K => 15.0 * 63.0,
                GgmlType::Q6_K => 32.0 * 128.0,
                _ => 8.0,
            };
            for b in 0..blocks {
                for &at in scale_fields(t) {
                    let d = half::f16::from_f32(rng.signed_unit() * scale / code);
                    let at = b * t.block_bytes() + at;
                    data[at..at + 2].copy_from_slice(&d.to_le_bytes());
                }
            }
            data
        }
    }
}

/// llama.cpp's converter `permute(w, n_head)`: `w.reshape(n_head, 2, rows/n_head/2, …).swapaxes(1, 2)` on whole
/// rows of `row_bytes` bytes (quantised rows move as units).
pub fn llama_cpp_permute(rows: &[u8], n_head: usize, row_bytes: usize) -> Vec<u8> {
    let n_rows = rows.len() / row_bytes;
    let half = n_rows / n_head / 2;
    let mut out = Vec::with_capacity(rows.len());
    // Output index order (h, j, s) of the swapped (n_head, half, 2) array reads input (h, s, j).
    for h in 0..n_head {
        for j in 0..half {
            for s in 0..2 {
                let src = (h * 2 + s) * half + j;
                out.extend_from_slice(&rows[src * row_bytes..(src + 1) * row_bytes]);
            }
        }
    }
    out
}

/// The tiny model's shapes.
pub const LAYERS: usize = 2;
pub const HIDDEN: usize = 64;
pub const HEADS: usize = 4;
pub const KV_HEADS: usize = 2;
pub const HEAD_DIM: usize = 16;
/// 256, so that `ffn_down` rows are whole Q4_K and Q6_K super-blocks.
pub const FFN: usize = 256;
pub const VOCAB: usize = 96;
pub const ROPE_BASE: f32 = 50000.0;

/// ARMT parameters for the tiny model (segments of 8 text tokens).
pub fn armt_options(seed: u64) -> LoadOptions {
    LoadOptions {
        armt_init: Some(seed),
        armt_init_when_missing: None,
        armt_file: None,
        armt_params: Some(ArmtParams {
            num_mem_tokens: 4,
            d_mem: 8,
            segment_size: 8,
            nu: 3,
            correction: true,
        }),
    }
}

/// The tiny LLaMA as a GGUF builder plus the same weights (dequantised, Hugging Face names and row order) as f32.
#[derive(Debug, Clone)]
pub struct TinyLlama {
    pub gguf: GgufBuilder,
    pub hf: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    pub tied: bool,
}

/// Collects the tiny model's tensors in both forms.
struct Tensors {
    g: GgufBuilder,
    hf: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    rng: SplitMix64,
}

impl Tensors {
    /// A `[rows, cols]` matrix of type `t` (q/k rows permuted as llama.cpp stores them when `heads` is given).
    fn matrix(&mut self, names: (&str, &str), shape: [usize; 2], t: GgmlType, scale: f32, heads: Option<usize>) {
        let [rows, cols] = shape;
        let data = random_data(t, rows * cols, scale, &mut self.rng);
        let values = dequantize(t, &data).unwrap();
        let stored = match heads {
            Some(n) => llama_cpp_permute(&data, n, data.len() / rows),
            None => data,
        };
        self.g.tensor(names.0, &[cols as u64, rows as u64], t.id(), stored);
        self.hf.insert(names.1.to_string(), (vec![rows, cols], values));
    }

    /// An F32 norm weight around 1.
    fn norm(&mut self, names: (&str, &str)) {
        let values: Vec<f32> = (0..HIDDEN).map(|_| 1.0 + 0.2 * self.rng.signed_unit()).collect();
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.g.tensor(names.0, &[HIDDEN as u64], GgmlType::F32.id(), bytes);
        self.hf.insert(names.1.to_string(), (vec![HIDDEN], values));
    }
}

/// Builds the tiny model: every tensor type the loader dequantises appears (F32 norms; F16, BF16, F32, Q8_0,
/// Q4_0, Q4_1, Q4_K, Q6_K projections), q/k stored in llama.cpp's permuted row order, tokenizer metadata
/// included; `tied` leaves out `output.weight`.
pub fn tiny_llama(seed: u64, tied: bool) -> TinyLlama {
    use GgmlType::*;
    let mut g = GgufBuilder::default();
    let u32v = MetaValue::U32;
    g.meta("general.architecture", MetaValue::Str("llama".into()))
        .meta("general.name", MetaValue::Str("tiny".into()))
        .meta("llama.block_count", u32v(LAYERS as u32))
        .meta("llama.context_length", u32v(256))
        .meta("llama.embedding_length", u32v(HIDDEN as u32))
        .meta("llama.feed_forward_length", u32v(FFN as u32))
        .meta("llama.attention.head_count", u32v(HEADS as u32))
        .meta("llama.attention.head_count_kv", u32v(KV_HEADS as u32))
        .meta("llama.attention.layer_norm_rms_epsilon", MetaValue::F32(1e-5))
        .meta("llama.rope.freq_base", MetaValue::F32(ROPE_BASE))
        .meta("llama.rope.dimension_count", u32v(HEAD_DIM as u32))
        .meta("llama.vocab_size", u32v(VOCAB as u32))
        .meta("tokenizer.ggml.model", MetaValue::Str("gpt2".into()))
        .meta("tokenizer.ggml.pre", MetaValue::Str("smollm".into()))
        .meta(
            "tokenizer.ggml.tokens",
            MetaValue::Array((0..VOCAB).map(|i| MetaValue::Str(format!("t{i}"))).collect()),
        )
        .meta(
            "tokenizer.ggml.token_type",
            MetaValue::Array((0..VOCAB).map(|_| MetaValue::I32(1)).collect()),
        )
        .meta(
            "tokenizer.ggml.merges",
            MetaValue::Array(vec![MetaValue::Str("t 1".into())]),
        )
        .meta("tokenizer.ggml.bos_token_id", u32v(1))
        .meta("tokenizer.ggml.eos_token_id", u32v(2))
        .meta("tokenizer.ggml.add_bos_token", MetaValue::Bool(false));
    let mut ts = Tensors {
        g,
        hf: BTreeMap::new(),
        rng: SplitMix64::new(seed),
    };
    let (q, kv) = (HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM);
    ts.matrix(
        ("token_embd.weight", "model.embed_tokens.weight"),
        [VOCAB, HIDDEN],
        Q8_0,
        1.0,
        None,
    );
    // One type per projection and layer, so that every type meets a role somewhere.
    let types = [
        [Q4_0, Q4_1, F16, BF16, Q8_0, Q4_1, Q4_K],
        [Q4_1, Q4_0, Q8_0, F32, F16, BF16, Q6_K],
    ];
    for (i, [tq, tk, tv, to, tg, tu, td]) in types.into_iter().enumerate() {
        let n = |gguf: &str, hf: &str| {
            (
                format!("blk.{i}.{gguf}.weight"),
                format!("model.layers.{i}.{hf}.weight"),
            )
        };
        let names = [
            n("attn_norm", "input_layernorm"),
            n("ffn_norm", "post_attention_layernorm"),
            n("attn_q", "self_attn.q_proj"),
            n("attn_k", "self_attn.k_proj"),
            n("attn_v", "self_attn.v_proj"),
            n("attn_output", "self_attn.o_proj"),
            n("ffn_gate", "mlp.gate_proj"),
            n("ffn_up", "mlp.up_proj"),
            n("ffn_down", "mlp.down_proj"),
        ];
        let at = |k: usize| (names[k].0.as_str(), names[k].1.as_str());
        ts.norm(at(0));
        ts.norm(at(1));
        ts.matrix(at(2), [q, HIDDEN], tq, 0.2, Some(HEADS));
        ts.matrix(at(3), [kv, HIDDEN], tk, 0.2, Some(KV_HEADS));
        ts.matrix(at(4), [kv, HIDDEN], tv, 0.2, None);
        ts.matrix(at(5), [HIDDEN, q], to, 0.2, None);
        ts.matrix(at(6), [FFN, HIDDEN], tg, 0.2, None);
        ts.matrix(at(7), [FFN, HIDDEN], tu, 0.2, None);
        ts.matrix(at(8), [HIDDEN, FFN], td, 0.1, None);
    }
    ts.norm(("output_norm.weight", "model.norm.weight"));
    if !tied {
        ts.matrix(("output.weight", "lm_head.weight"), [VOCAB, HIDDEN], Q4_1, 0.5, None);
    }
    TinyLlama {
        gguf: ts.g,
        hf: ts.hf,
        tied,
    }
}

impl TinyLlama {
    /// The same model as a Hugging Face directory: `config.json` (no `armt` object) and `model.safetensors`.
    pub fn write_safetensors(&self, dir: &Scratch) {
        let config = serde_json::json!({
            "vocab_size": VOCAB,
            "hidden_size": HIDDEN,
            "intermediate_size": FFN,
            "num_hidden_layers": LAYERS,
            "num_attention_heads": HEADS,
            "num_key_value_heads": KV_HEADS,
            "rms_norm_eps": 1e-5f32,
            "rope_theta": ROPE_BASE,
            "tie_word_embeddings": self.tied,
            "hidden_act": "silu",
        });
        dir.write("config.json", config.to_string());
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .hf
            .iter()
            .map(|(n, (shape, v))| {
                (
                    n.clone(),
                    shape.clone(),
                    v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                )
            })
            .collect();
        let views: Vec<(String, TensorView)> = bytes
            .iter()
            .map(|(n, shape, data)| (n.clone(), TensorView::new(Dtype::F32, shape.clone(), data).unwrap()))
            .collect();
        dir.write("model.safetensors", safetensors::serialize(views, None).unwrap());
    }
}

/// A metadata array of strings.
pub fn str_array<S: Into<String>>(items: impl IntoIterator<Item = S>) -> MetaValue {
    MetaValue::Array(items.into_iter().map(|s| MetaValue::Str(s.into())).collect())
}

/// A metadata array of i32.
pub fn i32_array(items: impl IntoIterator<Item = i32>) -> MetaValue {
    MetaValue::Array(items.into_iter().map(MetaValue::I32).collect())
}
