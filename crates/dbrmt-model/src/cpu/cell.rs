//! One cell `(l, s)`: associative read, decoder layer, associative write (armt-spec §1.3–§1.5); and the decoder
//! layer on its own over a KV cache, which the open segment of a generation uses.

use dbrmt_kernels::reference::{
    armt_read::armt_read,
    armt_write::{armt_write, WriteWeights},
    attention::causal_gqa_attention_cached,
    gemm::{linear, linear_add},
    rms_norm::rms_norm,
    rope::{apply_rope_at, RopeTable},
    swiglu::swiglu,
};

use dbrmt_formats::{state::LayerState, LayerWeights, ModelConfig};

/// What a cell needs besides its weights: the hidden rows `[text_rows + M, d]` left by the layer below (or the
/// segment's embeddings at layer 0), whether this is segment 0 (no read, write with `V̄ = 0`, `γ = 1`), and the
/// layer's memory state after the previous segment.
#[derive(Debug)]
pub struct CellInput<'a> {
    pub hidden: &'a mut [f32],
    pub text_rows: usize,
    pub first_segment: bool,
    pub state: &'a mut LayerState,
}

/// The K and V rows a layer has seen so far in one segment, `[rows, KV·hd]` each (after RoPE).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KvCache {
    pub k: Vec<f32>,
    pub v: Vec<f32>,
}

/// Runs one cell in place: `hidden` becomes this layer's output, `state` the state after this segment.
pub fn forward(cfg: &ModelConfig, w: &LayerWeights, rope: &RopeTable, cell: CellInput<'_>) {
    let d = cfg.llama.hidden_size;
    let x = cell.hidden;
    let shape = cfg.mem_shape();
    if !cell.first_segment {
        armt_read(x, &w.mem_q, &cell.state.a, &cell.state.z, shape);
    }
    decoder_layer(cfg, w, rope, x, &mut KvCache::default());
    // write from the post-block memory rows
    let mem_rows = &x[cell.text_rows * d..];
    let ww = WriteWeights {
        w_k: &w.mem_k,
        w_v: &w.mem_v,
        w_beta: &w.mem_beta,
        b_beta: w.mem_beta_bias,
    };
    armt_write(
        mem_rows,
        ww,
        &mut cell.state.a,
        &mut cell.state.z,
        shape,
        cell.first_segment,
        cfg.armt.correction,
    );
}

/// The LLaMA decoder layer on rows `x` `[n, d]` that follow the rows already in `cache` (positions
/// `cache rows ..`): RMSNorm → q, k, v → RoPE → causal GQA attention over the cache and these rows → o + residual →
/// RMSNorm → SwiGLU MLP + residual. Appends this call's k, v to `cache`.
pub fn decoder_layer(cfg: &ModelConfig, w: &LayerWeights, rope: &RopeTable, x: &mut [f32], cache: &mut KvCache) {
    let d = cfg.llama.hidden_size;
    let rows = x.len() / d;
    let (qd, kvd) = (cfg.llama.q_dim(), cfg.llama.kv_dim());
    let first = cache.k.len() / kvd;

    let mut h = vec![0.0f32; rows * d];
    rms_norm(x, &w.input_norm, cfg.llama.rms_norm_eps, &mut h);
    let mut q = vec![0.0f32; rows * qd];
    let mut k = vec![0.0f32; rows * kvd];
    let mut v = vec![0.0f32; rows * kvd];
    linear(&h, &w.q, rows, d, qd, &mut q);
    linear(&h, &w.k, rows, d, kvd, &mut k);
    linear(&h, &w.v, rows, d, kvd, &mut v);
    apply_rope_at(&mut q, rows, cfg.llama.num_heads, rope, first);
    apply_rope_at(&mut k, rows, cfg.llama.num_kv_heads, rope, first);
    cache.k.extend_from_slice(&k);
    cache.v.extend_from_slice(&v);
    let mut attn = vec![0.0f32; rows * qd];
    let scale = 1.0 / (cfg.llama.head_dim as f32).sqrt();
    let (heads, kv_heads, hd) = (cfg.llama.num_heads, cfg.llama.num_kv_heads, cfg.llama.head_dim);
    causal_gqa_attention_cached(
        &q,
        &cache.k,
        &cache.v,
        rows,
        first + rows,
        heads,
        kv_heads,
        hd,
        scale,
        &mut attn,
    );
    linear_add(&attn, &w.o, rows, qd, d, x);

    let inter = cfg.llama.intermediate_size;
    rms_norm(x, &w.post_norm, cfg.llama.rms_norm_eps, &mut h);
    let mut gate = vec![0.0f32; rows * inter];
    let mut up = vec![0.0f32; rows * inter];
    linear(&h, &w.gate, rows, d, inter, &mut gate);
    linear(&h, &w.up, rows, d, inter, &mut up);
    let mut act = vec![0.0f32; rows * inter];
    swiglu(&gate, &up, &mut act);
    linear_add(&act, &w.down, rows, inter, d, x);
}
