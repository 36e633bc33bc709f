//! Weights on the device: bf16, stacked per kind.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream};
use dbrmt_kernels::{reference::rope::RopeTable, KernelError};
use half::bf16;

use dbrmt_formats::{ModelConfig, Weights};

/// Every weight of the model on the device.
#[derive(Debug)]
pub struct DeviceWeights {
    /// `[V, d]`.
    pub embed: CudaSlice<bf16>,
    /// `[V, d]`; `None` when tied to `embed`.
    pub lm_head: Option<CudaSlice<bf16>>,
    /// `[M, d]`.
    pub memory: CudaSlice<bf16>,
    /// `[1, d]`.
    pub final_norm: CudaSlice<bf16>,
    /// `[L, d]` each.
    pub input_norm: CudaSlice<bf16>,
    pub post_norm: CudaSlice<bf16>,
    /// `[L, H·hd + 2·KV·hd, d]`: q rows, then k, then v.
    pub qkv: CudaSlice<bf16>,
    /// `[L, d, H·hd]`.
    pub o: CudaSlice<bf16>,
    /// `[L, 2·I, d]`: gate rows, then up.
    pub gate_up: CudaSlice<bf16>,
    /// `[L, d, I]`.
    pub down: CudaSlice<bf16>,
    /// `[L, d_mem, d]`.
    pub mem_q: CudaSlice<bf16>,
    /// `[L, d_mem + d + 1, d]`: `W_k` rows, `W_v` rows, `w_β`.
    pub mem_kvb: CudaSlice<bf16>,
    /// `[L]` f32: `b_β`.
    pub beta_bias: CudaSlice<f32>,
    /// `[T + M, hd/2]` f32 each: the RoPE table (positions restart every segment, so one table serves all).
    pub rope_cos: CudaSlice<f32>,
    pub rope_sin: CudaSlice<f32>,
}

impl DeviceWeights {
    /// Uploads `w` (rounding f32 to bf16; bf16 checkpoints round-trip exactly).
    pub fn upload(stream: &Arc<CudaStream>, cfg: &ModelConfig, w: &Weights) -> Result<Self, KernelError> {
        let layers = &w.layers;
        let rope = RopeTable::new(
            cfg.llama.head_dim,
            cfg.llama.rope_theta,
            cfg.llama.rope_scaling.as_ref(),
            cfg.segment_rows(),
        );
        let beta_bias: Vec<f32> = layers.iter().map(|l| l.mem_beta_bias).collect();
        let one = |t: &[f32]| upload_bf16(stream, [t]);
        Ok(Self {
            embed: one(&w.embed)?,
            lm_head: w.lm_head.as_deref().map(one).transpose()?,
            memory: one(&w.memory)?,
            final_norm: one(&w.norm)?,
            input_norm: upload_bf16(stream, layers.iter().map(|l| l.input_norm.as_slice()))?,
            post_norm: upload_bf16(stream, layers.iter().map(|l| l.post_norm.as_slice()))?,
            qkv: upload_bf16(
                stream,
                layers
                    .iter()
                    .flat_map(|l| [l.q.as_slice(), l.k.as_slice(), l.v.as_slice()]),
            )?,
            o: upload_bf16(stream, layers.iter().map(|l| l.o.as_slice()))?,
            gate_up: upload_bf16(stream, layers.iter().flat_map(|l| [l.gate.as_slice(), l.up.as_slice()]))?,
            down: upload_bf16(stream, layers.iter().map(|l| l.down.as_slice()))?,
            mem_q: upload_bf16(stream, layers.iter().map(|l| l.mem_q.as_slice()))?,
            mem_kvb: upload_bf16(
                stream,
                layers
                    .iter()
                    .flat_map(|l| [l.mem_k.as_slice(), l.mem_v.as_slice(), l.mem_beta.as_slice()]),
            )?,
            beta_bias: stream.clone_htod(&beta_bias)?,
            rope_cos: stream.clone_htod(&rope.cos)?,
            rope_sin: stream.clone_htod(&rope.sin)?,
        })
    }

    /// The LM head matrix (the embedding when tied).
    pub fn lm_head(&self) -> &CudaSlice<bf16> {
        self.lm_head.as_ref().unwrap_or(&self.embed)
    }
}

/// Concatenates `parts` (f32) and uploads them as one bf16 buffer.
fn upload_bf16<'a>(
    stream: &Arc<CudaStream>,
    parts: impl IntoIterator<Item = &'a [f32]>,
) -> Result<CudaSlice<bf16>, KernelError> {
    let host: Vec<bf16> = parts
        .into_iter()
        .flat_map(|p| p.iter().map(|&x| bf16::from_f32(x)))
        .collect();
    Ok(stream.clone_htod(&host)?)
}
