//! The bounds a model may have, in one place, and the one validation every config goes through — `config.json`,
//! GGUF metadata and the ARMT flags of the command line — with checked arithmetic, so that no size can wrap a
//! product (`2·ν·d_mem`, `T + M`, `heads·head_dim`, …) into a value that passes a shape check, and no legal but
//! absurd size reaches an allocation.
//!
//! Every bound is generous for every real LLaMA (the largest, Llama-3.1-405B, has 126 layers, hidden 16384, MLP
//! 53248, 128 heads of 128, vocabulary 128256; Gemma's vocabulary is 256000) and for every ARMT setup published
//! (T ≤ 4096, M ≤ 128, d_mem ≤ 64, ν = 3). What a machine can actually hold is checked separately, before
//! allocating, by [`crate::memory`].

use crate::config::{ArmtParams, LlamaConfig, ModelConfig};

/// Decoder layers: Llama-3.1-405B has 126; a config claiming 10⁹ would loop over tensor names forever.
pub const MAX_LAYERS: usize = 1024;
/// Hidden size d: 16384 in Llama-3.1-405B.
pub const MAX_HIDDEN: usize = 65536;
/// MLP width I: 53248 in Llama-3.1-405B.
pub const MAX_INTERMEDIATE: usize = 1 << 18;
/// Attention heads (query or KV): 128 in Llama-3.1-405B.
pub const MAX_HEADS: usize = 1024;
/// Head dimension: 64 or 128 in LLaMA, 256 in Gemma; RoPE rotates pairs, so it must also be even.
pub const MAX_HEAD_DIM: usize = 512;
/// Query / KV projection widths `heads·head_dim`: at most 8 × the largest hidden size.
pub const MAX_PROJECTION: usize = 1 << 19;
/// Vocabulary: 256000 in Gemma; 2²⁴ leaves room and keeps ids far inside u32.
pub const MAX_VOCAB: usize = 1 << 24;
/// T, text tokens per segment: ARMT uses 512–4096; 2²⁰ is far beyond any attention window a segment needs.
pub const MAX_SEGMENT_SIZE: usize = 1 << 20;
/// M, memory tokens per segment: 16–128 in ARMT.
pub const MAX_MEM_TOKENS: usize = 4096;
/// d_mem, the key width before DPFP: 64 in ARMT.
pub const MAX_D_MEM: usize = 4096;
/// ν, the DPFP order: 3 in ARMT; the feature size 2·ν·d_mem grows with it.
pub const MAX_NU: usize = 8;
/// `rms_norm_eps`: 1e-5 or 1e-6 in LLaMA; it must stay a finite, positive f32 well below the squares it is added to.
pub const MAX_RMS_NORM_EPS: f64 = 1.0;
/// `rope_theta`: 10⁴ (LLaMA 1/2) to 5·10⁵ (Llama 3) and 10⁶–10⁷ elsewhere; below 1 the frequencies grow without
/// bound and the angles overflow.
pub const ROPE_THETA_RANGE: (f64, f64) = (1.0, 1e12);
/// llama3 RoPE scaling factors and the original context: 8 and 8192 in Llama 3.1.
pub const MAX_ROPE_SCALING: f64 = 1e9;
/// Segments a saved state may claim to have consumed: 2⁴⁰ segments of even one token is more text than exists.
pub const MAX_SEGMENTS: u64 = 1 << 40;

/// A safetensors header (the JSON before the data): a 405B checkpoint's shard headers are ~100 KB; the
/// safetensors crate's own cap is 100 MB, but the header is parsed as JSON (several times its size in memory)
/// before that cap applies.
pub const MAX_SAFETENSORS_HEADER: usize = 32 << 20;
/// GGUF metadata as held in memory (each value is a [`crate::gguf::MetaValue`] of 32 bytes plus its string bytes):
/// Llama 3's 128K tokens and 280K merges take ~20 MB.
pub const MAX_GGUF_METADATA_MEMORY: usize = 1 << 30;
/// Elements of one GGUF metadata array: a vocabulary or merge list is below a million.
pub const MAX_GGUF_ARRAY_LEN: usize = 1 << 25;
/// Tensors of one GGUF file: 9 per layer plus a few, so ~10K at most for [`MAX_LAYERS`].
pub const MAX_GGUF_TENSORS: usize = 1 << 16;
/// Metadata pairs of one GGUF file: real files have ~40.
pub const MAX_GGUF_METADATA_KEYS: usize = 1 << 16;
/// `config.json`: a few KB in every real model.
pub const MAX_CONFIG_BYTES: usize = 16 << 20;
/// `model.safetensors.index.json`: ~100 KB for a 405B model.
pub const MAX_INDEX_BYTES: usize = 64 << 20;
/// `tokenizer.json` (and `tokenizer_config.json`): ~35 MB for Gemma's 256K vocabulary.
pub const MAX_TOKENIZER_JSON_BYTES: usize = 256 << 20;
/// A `.npy` header: NumPy writes them below 64 KB (format 1.0 cannot be longer); 2.0/3.0 allow 4 GB.
pub const MAX_NPY_HEADER: usize = 1 << 20;

/// What each bounded field is called where it came from, so an error names the field the user wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlamaFields {
    pub vocab_size: &'static str,
    pub hidden_size: &'static str,
    pub intermediate_size: &'static str,
    pub num_layers: &'static str,
    pub num_heads: &'static str,
    pub num_kv_heads: &'static str,
    pub head_dim: &'static str,
    pub rms_norm_eps: &'static str,
    pub rope_theta: &'static str,
}

/// The names of `config.json`.
pub const CONFIG_JSON: LlamaFields = LlamaFields {
    vocab_size: "field `vocab_size`",
    hidden_size: "field `hidden_size`",
    intermediate_size: "field `intermediate_size`",
    num_layers: "field `num_hidden_layers`",
    num_heads: "field `num_attention_heads`",
    num_kv_heads: "field `num_key_value_heads`",
    head_dim: "field `head_dim` (or hidden_size / num_attention_heads)",
    rms_norm_eps: "field `rms_norm_eps`",
    rope_theta: "field `rope_theta`",
};

/// The names of a LLaMA GGUF file's metadata.
pub const GGUF: LlamaFields = LlamaFields {
    vocab_size: "`llama.vocab_size` (or the length of `tokenizer.ggml.tokens`)",
    hidden_size: "`llama.embedding_length`",
    intermediate_size: "`llama.feed_forward_length`",
    num_layers: "`llama.block_count`",
    num_heads: "`llama.attention.head_count`",
    num_kv_heads: "`llama.attention.head_count_kv`",
    head_dim: "`llama.attention.key_length` (or embedding_length / head_count)",
    rms_norm_eps: "`llama.attention.layer_norm_rms_epsilon`",
    rope_theta: "`llama.rope.freq_base`",
};

/// What each ARMT parameter is called where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArmtFields {
    pub num_mem_tokens: &'static str,
    pub d_mem: &'static str,
    pub segment_size: &'static str,
    pub nu: &'static str,
}

/// The `armt` object of `config.json`.
pub const ARMT_JSON: ArmtFields = ArmtFields {
    num_mem_tokens: "field `armt.num_mem_tokens`",
    d_mem: "field `armt.d_mem`",
    segment_size: "field `armt.segment_size`",
    nu: "field `armt.nu`",
};

/// The command line's `--armt-init` parameters.
pub const ARMT_FLAGS: ArmtFields = ArmtFields {
    num_mem_tokens: "--mem-tokens",
    d_mem: "--d-mem",
    segment_size: "--segment-size",
    nu: "ARMT parameter `nu`",
};

/// `value` must lie in `1..=max`; the message names the field, its value and why the bound is there.
pub fn check_size(field: &str, value: usize, max: usize, why: &str) -> Result<(), String> {
    if value == 0 {
        return Err(format!("{field} must be at least 1"));
    }
    if value > max {
        return Err(format!("{field} = {value} is more than the limit of {max} ({why})"));
    }
    Ok(())
}

/// The product of `factors` or an error naming `what` (never a wrapped value).
pub fn checked_product(what: &str, factors: &[usize]) -> Result<usize, String> {
    factors
        .iter()
        .try_fold(1usize, |acc, &f| acc.checked_mul(f))
        .ok_or_else(|| format!("{what} ({}) overflows", join(factors, " × ")))
}

/// The sum of `terms` or an error naming `what`.
pub fn checked_sum(what: &str, terms: &[usize]) -> Result<usize, String> {
    terms
        .iter()
        .try_fold(0usize, |acc, &t| acc.checked_add(t))
        .ok_or_else(|| format!("{what} ({}) overflows", join(terms, " + ")))
}

fn join(values: &[usize], sep: &str) -> String {
    values.iter().map(usize::to_string).collect::<Vec<_>>().join(sep)
}

/// The backbone's sizes against the bounds above, and the products the model forms from them.
pub fn check_llama(c: &LlamaConfig, f: &LlamaFields) -> Result<(), String> {
    check_size(f.num_layers, c.num_layers, MAX_LAYERS, "no LLaMA has more than 126")?;
    check_size(f.hidden_size, c.hidden_size, MAX_HIDDEN, "Llama-3.1-405B has 16384")?;
    check_size(
        f.intermediate_size,
        c.intermediate_size,
        MAX_INTERMEDIATE,
        "Llama-3.1-405B has 53248",
    )?;
    check_size(f.num_heads, c.num_heads, MAX_HEADS, "Llama-3.1-405B has 128")?;
    check_size(f.num_kv_heads, c.num_kv_heads, MAX_HEADS, "Llama-3.1-405B has 8")?;
    check_size(f.head_dim, c.head_dim, MAX_HEAD_DIM, "LLaMA uses 64 or 128")?;
    if !c.head_dim.is_multiple_of(2) {
        return Err(format!(
            "{} = {} must be even (RoPE rotates pairs)",
            f.head_dim, c.head_dim
        ));
    }
    check_size(
        f.vocab_size,
        c.vocab_size,
        MAX_VOCAB,
        "Gemma's 256000 is the largest in use",
    )?;
    if !c.num_heads.is_multiple_of(c.num_kv_heads) {
        return Err(format!(
            "{} = {} must be a multiple of {} = {}",
            f.num_heads, c.num_heads, f.num_kv_heads, c.num_kv_heads
        ));
    }
    for (what, heads) in [("query width", c.num_heads), ("key/value width", c.num_kv_heads)] {
        let width = checked_product(what, &[heads, c.head_dim])?;
        if width > MAX_PROJECTION {
            return Err(format!(
                "the {what} {} × {} = {width} is more than the limit of {MAX_PROJECTION}",
                heads, c.head_dim
            ));
        }
    }
    let eps = f64::from(c.rms_norm_eps);
    if !(c.rms_norm_eps.is_finite() && c.rms_norm_eps > 0.0 && eps <= MAX_RMS_NORM_EPS) {
        return Err(format!(
            "{} = {} must be a positive f32 of at most {MAX_RMS_NORM_EPS} (LLaMA uses 1e-5 or 1e-6)",
            f.rms_norm_eps, c.rms_norm_eps
        ));
    }
    let (lo, hi) = ROPE_THETA_RANGE;
    if !(c.rope_theta.is_finite() && (lo..=hi).contains(&c.rope_theta)) {
        return Err(format!(
            "{} = {} must lie in [{lo}, {hi:e}] (LLaMA uses 1e4 to 5e5)",
            f.rope_theta, c.rope_theta
        ));
    }
    if let Some(s) = &c.rope_scaling {
        let all = [
            ("factor", s.factor),
            ("low_freq_factor", s.low_freq_factor),
            ("high_freq_factor", s.high_freq_factor),
            ("original_max_position_embeddings", s.original_max_position_embeddings),
        ];
        for (key, v) in all {
            if !(v.is_finite() && v > 0.0 && v <= MAX_ROPE_SCALING) {
                return Err(format!(
                    "rope_scaling.{key} = {v} must be a positive number of at most {MAX_ROPE_SCALING:e}"
                ));
            }
        }
    }
    Ok(())
}

/// The ARMT parameters against the bounds above.
pub fn check_armt(a: &ArmtParams, f: &ArmtFields) -> Result<(), String> {
    check_size(
        f.segment_size,
        a.segment_size,
        MAX_SEGMENT_SIZE,
        "ARMT uses 512 to 4096 text tokens per segment",
    )?;
    check_size(
        f.num_mem_tokens,
        a.num_mem_tokens,
        MAX_MEM_TOKENS,
        "ARMT uses 16 to 128 memory tokens",
    )?;
    check_size(f.d_mem, a.d_mem, MAX_D_MEM, "ARMT uses 64")?;
    check_size(f.nu, a.nu, MAX_NU, "ARMT uses 3")?;
    Ok(())
}

/// The whole model: both halves, then the sizes formed from both (feature size `2·ν·d_mem`, segment rows `T + M`,
/// the parameter count), all with checked arithmetic.
pub fn check_model(c: &ModelConfig, lf: &LlamaFields, af: &ArmtFields) -> Result<(), String> {
    check_llama(&c.llama, lf)?;
    check_armt(&c.armt, af)?;
    checked_product("the feature size 2·ν·d_mem", &[2, c.armt.nu, c.armt.d_mem])?;
    checked_sum("the segment rows T + M", &[c.armt.segment_size, c.armt.num_mem_tokens])?;
    parameter_count(c)?;
    Ok(())
}

/// The number of parameters of a model of `c` (backbone and memory), checked.
pub fn parameter_count(c: &ModelConfig) -> Result<usize, String> {
    let l = &c.llama;
    let (d, v, i) = (l.hidden_size, l.vocab_size, l.intermediate_size);
    let q = checked_product("the query width", &[l.num_heads, l.head_dim])?;
    let kv = checked_product("the key/value width", &[l.num_kv_heads, l.head_dim])?;
    let p = |what: &str, f: &[usize]| checked_product(what, f);
    let per_layer = checked_sum(
        "the parameters of one layer",
        &[
            p("norms", &[2, d])?,
            p("q and o", &[2, q, d])?,
            p("k and v", &[2, kv, d])?,
            p("the MLP", &[3, i, d])?,
            p("W_mq and W_mk", &[2, c.armt.d_mem, d])?,
            p("W_mv", &[d, d])?,
            d + 1,
        ],
    )?;
    let heads = if l.tie_word_embeddings { 1 } else { 2 };
    checked_sum(
        "the parameter count",
        &[
            p("the embedding and LM head", &[heads, v, d])?,
            d,
            p("the memory tokens", &[c.armt.num_mem_tokens, d])?,
            p("the layers", &[l.num_layers, per_layer])?,
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets;

    #[test]
    fn real_shapes_pass() {
        for c in [presets::tiny(true), presets::tiny(false)] {
            check_model(&c, &CONFIG_JSON, &ARMT_JSON).unwrap();
        }
    }

    /// Every published shape, with the largest ARMT setup in use, passes: SmolLM2-135M, LLaMA-160M, Llama-3.2-1B
    /// and 3B, Llama-3.1-8B, 70B and 405B.
    #[test]
    fn real_llama_shapes_pass() {
        // (vocab, hidden, MLP, layers, heads, kv heads, head dim)
        let shapes = [
            (49152, 576, 1536, 30, 9, 3, 64),
            (32000, 768, 3072, 12, 12, 12, 64),
            (128256, 2048, 8192, 16, 32, 8, 64),
            (128256, 3072, 8192, 28, 24, 8, 128),
            (128256, 4096, 14336, 32, 32, 8, 128),
            (128256, 8192, 28672, 80, 64, 8, 128),
            (128256, 16384, 53248, 126, 128, 8, 128),
            (256000, 3072, 24576, 28, 16, 16, 256),
        ];
        for (v, d, i, l, h, kv, hd) in shapes {
            let mut c = presets::tiny(false);
            c.llama.vocab_size = v;
            c.llama.hidden_size = d;
            c.llama.intermediate_size = i;
            c.llama.num_layers = l;
            c.llama.num_heads = h;
            c.llama.num_kv_heads = kv;
            c.llama.head_dim = hd;
            c.llama.rope_theta = 500000.0;
            c.armt = presets::armt(4096, 128, 64);
            check_model(&c, &CONFIG_JSON, &ARMT_JSON).unwrap_or_else(|e| panic!("{v} {d}: {e}"));
            assert!(parameter_count(&c).unwrap() > v * d);
        }
    }

    #[test]
    fn sizes_are_named_with_their_value() {
        let mut c = presets::tiny(true);
        c.armt.nu = 1_000_000;
        let e = check_model(&c, &CONFIG_JSON, &ARMT_JSON).unwrap_err();
        assert!(
            e.contains("field `armt.nu` = 1000000 is more than the limit of 8"),
            "{e}"
        );
        let mut c = presets::tiny(true);
        c.armt.num_mem_tokens = 100_000;
        let e = check_model(&c, &CONFIG_JSON, &ARMT_FLAGS).unwrap_err();
        assert!(e.contains("--mem-tokens = 100000"), "{e}");
        let mut c = presets::tiny(true);
        c.llama.head_dim = usize::MAX - 1;
        let e = check_model(&c, &GGUF, &ARMT_FLAGS).unwrap_err();
        assert!(e.contains("llama.attention.key_length"), "{e}");
        let mut c = presets::tiny(true);
        c.llama.rms_norm_eps = f32::INFINITY;
        assert!(check_model(&c, &CONFIG_JSON, &ARMT_JSON)
            .unwrap_err()
            .contains("rms_norm_eps"));
    }

    #[test]
    fn arithmetic_is_checked() {
        assert!(checked_product("x", &[usize::MAX, 2])
            .unwrap_err()
            .contains("overflows"));
        assert!(checked_sum("x", &[usize::MAX, 1]).unwrap_err().contains("overflows"));
        assert_eq!(checked_product("x", &[2, 3, 4]), Ok(24));
    }
}
