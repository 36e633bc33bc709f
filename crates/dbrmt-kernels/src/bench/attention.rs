//! Attention at the shapes `benches/python/sdpa_attention.py` times PyTorch's SDPA at (the same shape names, so the
//! report sets them side by side): a diagonal step of every model (its cells of T + M rows, one per layer) and the
//! decoding of one row after a 4K prompt, on the tensor-core kernel and on the SIMT one. FLOPs of causal attention
//! are counted as half of full; decode rows are measured in bytes of K and V read.

use cudarc::driver::CudaSlice;
use half::bf16;

use super::{l2_flusher, random_bf16, time, Measured};
use crate::attention::{attention_causal, AttentionFn};
use crate::attention_sm90::{attention_sm90_causal, supports};
use crate::params::{Heads, Span};
use crate::{Gpu, KernelError};

const WARMUP: usize = 3;
const REPS: usize = 10;

/// (name, cells, rows per cell, new rows per cell (decode: 1 after rows - 1 cached), heads, kv heads, head dim)
const SHAPES: [(&str, usize, usize, usize, usize, usize, usize); 12] = [
    ("160m-12x640", 12, 640, 0, 12, 12, 64),
    ("1b-16x640", 16, 640, 0, 32, 8, 64),
    ("1b-16x1152", 16, 1152, 0, 32, 8, 64),
    ("1b-16x2176", 16, 2176, 0, 32, 8, 64),
    ("1b-16x4224", 16, 4224, 0, 32, 8, 64),
    ("3b-28x1152", 28, 1152, 0, 24, 8, 128),
    ("3b-1x4224", 1, 4224, 0, 24, 8, 128),
    ("8b-32x1152", 32, 1152, 0, 32, 8, 128),
    ("8b-1x4224", 1, 4224, 0, 32, 8, 128),
    ("smollm2-30x1152", 30, 1152, 0, 9, 3, 64),
    ("1b-decode-1x4224", 1, 4224, 1, 32, 8, 64),
    ("smollm2-decode-1x4224", 1, 4224, 1, 9, 3, 64),
];

pub fn all(gpu: &Gpu) -> Result<Vec<Measured>, KernelError> {
    let stream = gpu.stream();
    let mut flush = l2_flusher(stream)?;
    let mut out = Vec::new();
    for (i, &(name, cells, rows, new, h, kv, hd)) in SHAPES.iter().enumerate() {
        let heads = Heads {
            heads: h,
            kv_heads: kv,
            head_dim: hd,
        };
        let ld = heads.qkv_width();
        let qkv = random_bf16(stream, cells * rows * ld, 1.0, 40 + i as u64)?;
        let mut o: CudaSlice<bf16> = stream.alloc_zeros(cells * rows * heads.q_width())?;
        let spans: Vec<Span> = (0..cells)
            .map(|c| Span {
                in_row: c * rows,
                out_row: c * rows,
                rows: if new > 0 { new } else { rows },
                pos: if new > 0 { rows - new } else { 0 },
                ..Span::default()
            })
            .collect();
        let scale = 1.0 / (hd as f32).sqrt();
        let (flops, bytes) = if new > 0 {
            // every key and value row of the cache, once
            (
                4.0 * (cells * rows * hd * h) as f64,
                (cells * rows * 2 * kv * hd * 2) as f64,
            )
        } else {
            (4.0 * (rows * rows) as f64 * (hd * h) as f64 / 2.0 * cells as f64, 0.0)
        };
        let mut measure = |imp: &str, ms: f64| {
            out.push(Measured {
                op: "attention",
                shape: name.into(),
                imp: imp.into(),
                ms,
                flops,
                bytes,
            })
        };
        let mut run = |attention: AttentionFn, warmup: usize, reps: usize| {
            time(stream, &mut flush, warmup, reps, || {
                attention(
                    gpu,
                    stream,
                    &qkv,
                    ld,
                    &mut o,
                    heads.q_width(),
                    &spans,
                    None,
                    heads,
                    scale,
                )
            })
        };
        if supports(heads) {
            let ms = run(attention_sm90_causal, WARMUP, REPS)?;
            measure("attention_sm90", ms);
        }
        let ms = run(attention_causal, 1, 3)?;
        measure("attention_simt", ms);
    }
    Ok(out)
}
