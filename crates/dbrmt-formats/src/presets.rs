//! Model shapes used without a checkpoint (random weights): the golden-case generator's presets
//! (`testdata/fixtures/generator/make_case.py`) and Llama-3.2-1B. `dbrmt selftest` builds its cases from them; the
//! benchmark matrix (`benches/matrix.toml`) names its own shapes.

use crate::config::{ArmtParams, Llama3Scaling, LlamaConfig, ModelConfig};

/// Llama-3's RoPE scaling as Llama-3.2 uses it.
pub const LLAMA3_ROPE: Llama3Scaling = Llama3Scaling {
    factor: 32.0,
    low_freq_factor: 1.0,
    high_freq_factor: 4.0,
    original_max_position_embeddings: 8192.0,
};

/// ARMT parameters with the original's ν = 3 and the γ correction on.
pub fn armt(segment_size: usize, num_mem_tokens: usize, d_mem: usize) -> ArmtParams {
    ArmtParams {
        num_mem_tokens,
        d_mem,
        segment_size,
        nu: 3,
        correction: true,
    }
}

/// make_case.py's `tiny`: hidden 128, 4 layers, 4 q / 2 kv heads of 32, MLP 256, vocab 512, llama3 RoPE; T = 32,
/// M = 8, d_mem = 16.
pub fn tiny(tie_word_embeddings: bool) -> ModelConfig {
    LlamaConfig {
        vocab_size: 512,
        hidden_size: 128,
        intermediate_size: 256,
        num_layers: 4,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 32,
        rms_norm_eps: 1e-6,
        rope_theta: 500000.0,
        rope_scaling: Some(LLAMA3_ROPE),
        tie_word_embeddings,
    }
    .with_armt(armt(32, 8, 16))
}

/// make_case.py's `small`: hidden 256, 6 layers, 8 q / 2 kv heads of 32, MLP 512, vocab 1024; T = 64, M = 16,
/// d_mem = 32.
pub fn small() -> ModelConfig {
    LlamaConfig {
        vocab_size: 1024,
        hidden_size: 256,
        intermediate_size: 512,
        num_layers: 6,
        num_heads: 8,
        num_kv_heads: 2,
        head_dim: 32,
        rms_norm_eps: 1e-6,
        rope_theta: 500000.0,
        rope_scaling: Some(LLAMA3_ROPE),
        tie_word_embeddings: false,
    }
    .with_armt(armt(64, 16, 32))
}

/// Llama-3.2-1B's backbone with an ARMT memory.
pub fn llama_3_2_1b(armt: ArmtParams) -> ModelConfig {
    LlamaConfig {
        vocab_size: 128256,
        hidden_size: 2048,
        intermediate_size: 8192,
        num_layers: 16,
        num_heads: 32,
        num_kv_heads: 8,
        head_dim: 64,
        rms_norm_eps: 1e-5,
        rope_theta: 500000.0,
        rope_scaling: Some(LLAMA3_ROPE),
        tie_word_embeddings: true,
    }
    .with_armt(armt)
}
