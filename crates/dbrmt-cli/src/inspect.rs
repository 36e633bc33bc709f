//! `dbrmt inspect DIR`: what a model directory holds.

use anyhow::Context;
use dbrmt_formats::{load_model, memory};

use crate::args::InspectArgs;

pub fn inspect(a: &InspectArgs) -> anyhow::Result<()> {
    let m = load_model(&a.dir, &a.armt.load_options()).with_context(|| format!("loading model {}", a.dir.display()))?;
    if let Some(seed) = m.armt_seed {
        eprintln!("{}", crate::engine::untrained_memory_note(&a.dir, seed));
    }
    let c = &m.config;
    let w = &m.weights;
    let layer_params: usize = w.layers.iter().flat_map(|l| l.backbone()).map(<[f32]>::len).sum();
    let armt_params: usize = w
        .layers
        .iter()
        .map(|l| l.memory_tensors().iter().map(|t| t.len()).sum::<usize>() + 1)
        .sum::<usize>()
        + w.memory.len();
    let backbone = w.embed.len() + layer_params + w.norm.len() + w.lm_head.as_ref().map_or(0, Vec::len);
    let state_bytes = c.llama.num_layers * (c.d_key() * c.llama.hidden_size + c.d_key()) * 4;

    println!("model        {}", a.dir.display());
    println!("names        {}", m.layout);
    println!(
        "backbone     LLaMA: {} layers, hidden {}, MLP {}, {} heads / {} KV heads × {}, vocab {}",
        c.llama.num_layers,
        c.llama.hidden_size,
        c.llama.intermediate_size,
        c.llama.num_heads,
        c.llama.num_kv_heads,
        c.llama.head_dim,
        c.llama.vocab_size
    );
    println!(
        "rope         θ = {}, scaling {}",
        c.llama.rope_theta,
        c.llama.rope_scaling.map_or("none".to_string(), |s| format!(
            "llama3 (factor {}, low {}, high {}, original {})",
            s.factor, s.low_freq_factor, s.high_freq_factor, s.original_max_position_embeddings
        ))
    );
    println!(
        "norm eps     {:e}; lm_head {}",
        c.llama.rms_norm_eps,
        if c.llama.tie_word_embeddings {
            "tied to the embedding"
        } else {
            "separate"
        }
    );
    println!(
        "armt         T = {} text tokens per segment, M = {} memory tokens, d_mem = {}, ν = {}, D = {}, correction {}",
        c.armt.segment_size,
        c.armt.num_mem_tokens,
        c.armt.d_mem,
        c.armt.nu,
        c.d_key(),
        c.armt.correction
    );
    println!(
        "memory       {}",
        match m.armt_seed {
            Some(seed) => format!("untrained: initialised from seed {seed} (a plain LLaMA checkpoint)"),
            None => match &a.armt.armt {
                Some(file) => format!("trained memory from --armt {}", file.display()),
                None => "trained: loaded from the checkpoint".to_string(),
            },
        }
    );
    println!(
        "parameters   {} ({} backbone + {} ARMT)",
        backbone + armt_params,
        backbone,
        armt_params
    );
    println!(
        "state        {} bytes ({:.2} MiB, f32 A [{}, {}] + z [{}] per layer), constant in input length",
        state_bytes,
        state_bytes as f64 / (1 << 20) as f64,
        c.d_key(),
        c.llama.hidden_size,
        c.d_key()
    );
    // a long prefill's work does not grow past the diagonal's live segments, so 64 segments stand for any length
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let work = memory::cpu_prefill_bytes(
        c,
        memory::PrefillShape {
            tokens: c.armt.segment_size.saturating_mul(64),
            logit_rows: 1,
            keep_hidden: false,
            threads,
        },
    );
    println!(
        "needs        CPU model: at most ≈ {} of host memory (the estimate checked before allocating: {} with the \
         f32 weights, {} for a long prefill on {threads} threads); GPU: ≈ {} of device memory for the bf16 weights",
        memory::human(memory::cpu_model_bytes(c).saturating_add(work)),
        memory::human(memory::cpu_model_bytes(c)),
        memory::human(work),
        memory::human(memory::gpu_weights_bytes(c))
    );
    if !m.unused_tensors.is_empty() {
        println!(
            "unused       {} tensors not used by the model: {}",
            m.unused_tensors.len(),
            m.unused_tensors.join(", ")
        );
    }
    Ok(())
}
