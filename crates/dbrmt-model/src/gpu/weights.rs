//! Weights on the device: bf16, stacked per kind, uploaded straight from the checkpoint.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream};
use dbrmt_formats::identity::IdentityBuilder;
use dbrmt_formats::names::{LayerTensor, TensorId};
use dbrmt_formats::source::to_bf16;
use dbrmt_formats::{ModelConfig, TensorRead};
use dbrmt_kernels::gemm_sm90::interleave_gate_up;
use dbrmt_kernels::reference::rope::RopeTable;
use half::bf16;

use crate::ModelError;

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
    /// `[L, 2·I, d]`: gate rows, then up; or, for the fused SwiGLU of the v2 GEMM
    /// ([`dbrmt_kernels::gemm_sm90::interleave_gate_up`]), in blocks of 64 gate rows then the 64 up rows of the same
    /// columns.
    pub gate_up: CudaSlice<bf16>,
    /// Whether `gate_up` is interleaved.
    pub gate_up_interleaved: bool,
    /// `[L, d, I]`.
    pub down: CudaSlice<bf16>,
    /// `[L, d_mem, d]`.
    pub mem_q: CudaSlice<bf16>,
    /// `[L, kvb_rows, d]`: `W_k` rows, `W_v` rows, `w_β`, then zero rows up to [`kvb_rows`] (a multiple of 8).
    pub mem_kvb: CudaSlice<bf16>,
    /// `[L]` f32: `b_β`.
    pub beta_bias: CudaSlice<f32>,
    /// `[T + M, hd/2]` f32 each: the RoPE table (positions restart every segment, so one table serves all).
    pub rope_cos: CudaSlice<f32>,
    pub rope_sin: CudaSlice<f32>,
}

/// Rows of each layer's write projection `[W_k | W_v | w_β]`: `d_mem + d + 1` rounded up to a multiple of 8 with zero
/// rows, so the product's width suits the sm_90a GEMM (16-byte rows of its output) and its rows stay aligned.
pub fn kvb_rows(cfg: &ModelConfig) -> usize {
    (cfg.armt.d_mem + cfg.llama.hidden_size + 1).next_multiple_of(8)
}

/// Elements converted per piece when a tensor is not stored as bf16: bounds the host memory of an upload
/// (64 MB of f32 and 32 MB of bf16 staging) whatever the model's size.
const PIECE: usize = 1 << 24;

impl DeviceWeights {
    /// Uploads every tensor of `src` as bf16, stacked per kind. Tensors stored as bf16 are copied as they are (from
    /// the memory-mapped file); others are converted in pieces of at most [`PIECE`] elements, rounding to nearest
    /// even — so no f32 copy of the model is ever made. Returns the weights and the model's identity
    /// ([`dbrmt_formats::identity`]), sampled as the tensors pass.
    pub fn upload(
        stream: &Arc<CudaStream>,
        src: &impl TensorRead,
        interleave_gate_up: bool,
    ) -> Result<(Self, String), ModelError> {
        let cfg = src.config();
        let layers = cfg.llama.num_layers;
        let rope = RopeTable::new(
            cfg.llama.head_dim,
            cfg.llama.rope_theta,
            cfg.llama.rope_scaling.as_ref(),
            cfg.segment_rows(),
        );
        let mut up = Uploader {
            stream,
            src,
            identity: IdentityBuilder::new(cfg),
            staging: Vec::new(),
        };
        let per_layer = |kinds: &[LayerTensor]| -> Vec<TensorId> {
            (0..layers)
                .flat_map(|i| kinds.iter().map(move |&t| TensorId::Layer(i, t)))
                .collect()
        };
        use LayerTensor as T;
        let weights = Self {
            embed: up.stacked(&[TensorId::Embed])?,
            lm_head: match cfg.llama.tie_word_embeddings {
                true => None,
                false => Some(up.stacked(&[TensorId::LmHead])?),
            },
            memory: up.stacked(&[TensorId::Memory])?,
            final_norm: up.stacked(&[TensorId::Norm])?,
            input_norm: up.stacked(&per_layer(&[T::InputNorm]))?,
            post_norm: up.stacked(&per_layer(&[T::PostNorm]))?,
            qkv: up.stacked(&per_layer(&[T::Q, T::K, T::V]))?,
            o: up.stacked(&per_layer(&[T::O]))?,
            gate_up: match interleave_gate_up {
                false => up.stacked(&per_layer(&[T::Gate, T::Up]))?,
                true => up.gate_up_interleaved(layers, cfg.llama.intermediate_size, cfg.llama.hidden_size)?,
            },
            gate_up_interleaved: interleave_gate_up,
            down: up.stacked(&per_layer(&[T::Down]))?,
            mem_q: up.stacked(&per_layer(&[T::MemQ]))?,
            mem_kvb: {
                let blocks: Vec<Vec<TensorId>> = (0..layers)
                    .map(|i| [T::MemK, T::MemV, T::MemBeta].map(|t| TensorId::Layer(i, t)).to_vec())
                    .collect();
                up.stacked_in_blocks(&blocks, kvb_rows(cfg) * cfg.llama.hidden_size)?
            },
            beta_bias: up.f32s(&per_layer(&[T::MemBetaBias]))?,
            rope_cos: stream.clone_htod(&rope.cos)?,
            rope_sin: stream.clone_htod(&rope.sin)?,
        };
        Ok((weights, up.identity.finish()))
    }

    /// The LM head matrix (the embedding when tied).
    pub fn lm_head(&self) -> &CudaSlice<bf16> {
        self.lm_head.as_ref().unwrap_or(&self.embed)
    }
}

/// One upload's state: the identity being sampled and the reused staging buffer.
struct Uploader<'a, R> {
    stream: &'a Arc<CudaStream>,
    src: &'a R,
    identity: IdentityBuilder,
    staging: Vec<bf16>,
}

impl<R: TensorRead> Uploader<'_, R> {
    /// The tensors `parts`, one after another in one new device buffer.
    fn stacked(&mut self, parts: &[TensorId]) -> Result<CudaSlice<bf16>, ModelError> {
        let total: usize = parts.iter().map(|&id| self.src.len(id)).sum();
        self.stacked_in_blocks(&[parts.to_vec()], total)
    }

    /// Each block's tensors one after another from element `b · block_len` of one new device buffer; what a block
    /// leaves of its `block_len` stays zero (zero rows that pad a width for the GEMM's 16-byte rows).
    fn stacked_in_blocks(&mut self, blocks: &[Vec<TensorId>], block_len: usize) -> Result<CudaSlice<bf16>, ModelError> {
        let mut dev = self.stream.alloc_zeros::<bf16>((blocks.len() * block_len).max(1))?;
        for (b, parts) in blocks.iter().enumerate() {
            let used: usize = parts.iter().map(|&id| self.src.len(id)).sum();
            debug_assert!(used <= block_len, "a block's tensors exceed its length");
            self.copy_parts(parts, &mut dev, b * block_len)?;
        }
        Ok(dev)
    }

    /// The tensors `parts`, one after another into `dev` from element `at`.
    fn copy_parts(&mut self, parts: &[TensorId], dev: &mut CudaSlice<bf16>, mut at: usize) -> Result<(), ModelError> {
        for &id in parts {
            let len = self.src.len(id);
            let stored = self.src.stored_bf16(id).filter(|b| b.len() == 2 * len);
            match stored.and_then(|b| bytemuck::try_cast_slice::<u8, bf16>(b).ok()) {
                Some(values) => {
                    self.identity.bf16_bytes(id, stored.unwrap_or_default());
                    self.stream.memcpy_htod(values, &mut dev.slice_mut(at..at + len))?;
                }
                None => {
                    let (stream, identity, staging) = (self.stream, &mut self.identity, &mut self.staging);
                    self.src.read_pieces(id, PIECE, |first, values| {
                        identity.piece(id, len, first, values);
                        to_bf16(values, staging);
                        let to = at + first;
                        // a pageable copy returns once the driver has taken the bytes, so the staging is reusable
                        stream.memcpy_htod(staging.as_slice(), &mut dev.slice_mut(to..to + values.len()))?;
                        Ok::<(), ModelError>(())
                    })?;
                }
            }
            at += len;
        }
        Ok(())
    }

    /// Every layer's gate and up weights, stacked `[L, 2I, d]` with the rows of each layer interleaved in blocks of 64
    /// ([`interleave_gate_up`]): each piece is copied as runs of rows that stay contiguous.
    fn gate_up_interleaved(&mut self, layers: usize, inter: usize, d: usize) -> Result<CudaSlice<bf16>, ModelError> {
        let mut dev = self.stream.alloc_zeros::<bf16>((layers * 2 * inter * d).max(1))?;
        let stream = self.stream;
        // rows row0.. of `half` (0 gate, 1 up) of `layer`, as bf16, to their interleaved rows: runs stay contiguous
        // until the next block of 64
        let mut copy_rows = |layer: usize, half: usize, row0: usize, rows: &[bf16]| -> Result<(), ModelError> {
            let n = rows.len() / d;
            let mut r = 0;
            while r < n {
                let run = (64 - (row0 + r) % 64).min(n - r);
                let to = (layer * 2 * inter + interleave_gate_up(half * inter + row0 + r, inter)) * d;
                stream.memcpy_htod(&rows[r * d..(r + run) * d], &mut dev.slice_mut(to..to + run * d))?;
                r += run;
            }
            Ok(())
        };
        for layer in 0..layers {
            for (half, t) in [LayerTensor::Gate, LayerTensor::Up].into_iter().enumerate() {
                let id = TensorId::Layer(layer, t);
                let len = self.src.len(id);
                let stored = self.src.stored_bf16(id).filter(|b| b.len() == 2 * len);
                if let Some(values) = stored.and_then(|b| bytemuck::try_cast_slice::<u8, bf16>(b).ok()) {
                    self.identity.bf16_bytes(id, stored.unwrap_or_default());
                    copy_rows(layer, half, 0, values)?;
                    continue;
                }
                let (identity, staging) = (&mut self.identity, &mut self.staging);
                self.src.read_pieces(id, PIECE, |first, values| {
                    identity.piece(id, len, first, values);
                    to_bf16(values, staging);
                    copy_rows(layer, half, first / d, staging)
                })?;
            }
        }
        Ok(dev)
    }

    /// The tensors `parts` as f32 (the β biases).
    fn f32s(&mut self, parts: &[TensorId]) -> Result<CudaSlice<f32>, ModelError> {
        let mut host = Vec::new();
        for &id in parts {
            let len = self.src.len(id);
            let identity = &mut self.identity;
            self.src.read_pieces(id, PIECE, |first, values| {
                identity.piece(id, len, first, values);
                host.extend_from_slice(values);
                Ok::<(), ModelError>(())
            })?;
        }
        Ok(self.stream.clone_htod(&host)?)
    }
}
