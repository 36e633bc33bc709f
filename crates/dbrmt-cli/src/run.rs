//! `dbrmt run`: prefill token ids, print a summary, dump logits and state on request.

use std::time::Instant;

use anyhow::Context;
use dbrmt_formats::npy;
use dbrmt_model::LogitsMode;
use dbrmt_runtime::ScheduleKind;

use crate::args::RunArgs;
use crate::engine::open_engine;

pub fn run(a: &RunArgs) -> anyhow::Result<()> {
    let ids = npy::read_ids(&a.input_ids).with_context(|| "reading --input-ids")?;
    let engine = open_engine(a.device, &a.model, &a.armt.load_options())?;
    let cfg = engine.config();
    let schedule: ScheduleKind = a.schedule.into();
    let logits: LogitsMode = a.logits.into();

    let t0 = Instant::now();
    let (out, device_ms) = engine
        .prefill_timed(&ids, schedule, logits, false)
        .with_context(|| format!("prefilling --input-ids {}", a.input_ids.display()))?;
    let secs = t0.elapsed().as_secs_f64();
    crate::generate::check_finite(&out.logits, out.tokens)?;

    println!(
        "model     {} ({} layers, hidden {}, vocab {}, T={}, M={}, d_mem={})",
        a.model.display(),
        cfg.llama.num_layers,
        cfg.llama.hidden_size,
        cfg.llama.vocab_size,
        cfg.armt.segment_size,
        cfg.armt.num_mem_tokens,
        cfg.armt.d_mem
    );
    println!("input     {} tokens in {} segments", out.tokens, out.segments);
    println!(
        "run       {schedule:?} on {:?}: {secs:.3} s, {:.0} tokens/s",
        engine.device(),
        out.tokens as f64 / secs
    );
    if let Some(ms) = device_ms {
        println!("device    {ms:.2} ms between the first and last launch (CUDA events)");
    }
    if out.logit_rows > 0 {
        let v = cfg.llama.vocab_size;
        let last = &out.logits[(out.logit_rows - 1) * v..];
        let mut top: Vec<(usize, f32)> = last.iter().copied().enumerate().collect();
        top.sort_by(|x, y| y.1.total_cmp(&x.1));
        let shown: Vec<String> = top.iter().take(5).map(|(i, l)| format!("{i} ({l:.3})")).collect();
        println!("next      top-5 token ids after the last token: {}", shown.join(", "));
    }
    if let Some(path) = &a.dump_logits {
        npy::write_f32(path, &[out.logit_rows, cfg.llama.vocab_size], &out.logits)
            .with_context(|| "writing --dump-logits")?;
        println!(
            "logits    [{}, {}] → {}",
            out.logit_rows,
            cfg.llama.vocab_size,
            path.display()
        );
    }
    if let Some(path) = &a.dump_state {
        out.state
            .save_safetensors(path)
            .with_context(|| "writing --dump-state")?;
        println!(
            "state     {} layers of A [{}, {}], z [{}] → {}",
            cfg.llama.num_layers,
            cfg.d_key(),
            cfg.llama.hidden_size,
            cfg.d_key(),
            path.display()
        );
    }
    Ok(())
}
