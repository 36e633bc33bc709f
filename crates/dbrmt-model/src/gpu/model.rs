//! One diagonal step on the device: up to `max_cells` cells, each a group of every grouped launch.

use std::sync::Arc;

use cudarc::driver::CudaStream;
use dbrmt_kernels::{
    armt_read::armt_read_apply,
    armt_write::{armt_write_prep, armt_z_update, WritePrep},
    attention::attention_causal,
    dpfp::dpfp,
    embed::embed_segment,
    gemm::{
        gemm_nn_f32_f32_f32, gemm_nt_bf16_bf16_bf16, gemm_nt_bf16_bf16_f32, gemm_nt_f32_bf16_f32, gemm_tn_f32_f32_f32,
        GemmGroup,
    },
    params::{Heads, Span, MAX_GROUPS},
    rms_norm::rms_norm,
    rope::rope,
    swiglu::swiglu,
    Gpu, KernelError,
};

use super::{DeviceState, DeviceWeights, Workspace};
use dbrmt_formats::ModelConfig;

use crate::output::LogitsMode;

/// One cell of a step, as the device sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepCell {
    pub layer: usize,
    /// Index of its memory state in [`DeviceState`].
    pub state: usize,
    /// Hidden slot of its segment in [`Workspace::hidden`].
    pub slot: usize,
    /// Text rows of its segment (`T`, or fewer for a short last segment).
    pub text_rows: usize,
    /// Segment 0 of its request: no read; the write uses `V̄ = 0`, `γ = 1`.
    pub first_segment: bool,
    /// At layer 0 the segment enters: its embeddings are written first, from this offset in [`Workspace::ids`].
    pub enters_at_token: Option<usize>,
    /// `Some(p)`: new text rows of an **open** segment (generation), at positions `p..p + text_rows`. They run in
    /// generate mode: no memory rows and no write; their q/k/v rows go to the layer's rows of the KV cache
    /// ([`Workspace::cache_row`]) and attend to the `p` rows cached before them. `None`: a whole segment.
    pub open_at: Option<usize>,
}

impl StepCell {
    /// Rows this cell runs: its text rows, and the memory rows unless it is an open segment's.
    fn rows(&self, mem: usize) -> usize {
        self.text_rows + if self.open_at.is_some() { 0 } else { mem }
    }
}

/// The model on the device: config and weights.
#[derive(Debug)]
pub struct GpuModel {
    pub cfg: ModelConfig,
    pub weights: DeviceWeights,
}

/// `(offset, rows)` of each cell in the step's packed scratch.
fn packed_rows(cells: &[StepCell], mem: usize) -> Vec<(usize, usize)> {
    let mut at = 0;
    cells
        .iter()
        .map(|c| {
            let r = c.rows(mem);
            at += r;
            (at - r, r)
        })
        .collect()
}

impl GpuModel {
    /// Runs one step: every cell's read, decoder layer and write. The cells must be independent (one step of a
    /// valid schedule); more than the workspace or a launch can hold are run in chunks, which is equally valid.
    pub fn step(
        &self,
        gpu: &Gpu,
        stream: &Arc<CudaStream>,
        ws: &mut Workspace,
        st: &mut DeviceState,
        cells: &[StepCell],
    ) -> Result<(), KernelError> {
        let t = self.cfg.armt.segment_size;
        for x in cells {
            if let Some(p) = x.open_at {
                if ws.cache_layers <= x.layer || p + x.text_rows > t {
                    return Err(KernelError::InvalidArgument {
                        kernel: "step".into(),
                        msg: format!(
                            "open rows {p}..{} of layer {}: the workspace caches {} layers of {t} rows",
                            p + x.text_rows,
                            x.layer,
                            ws.cache_layers
                        ),
                    });
                }
            }
        }
        for chunk in cells.chunks(ws.max_cells.min(MAX_GROUPS)) {
            self.step_chunk(gpu, stream, ws, st, chunk)?;
        }
        Ok(())
    }

    fn step_chunk(
        &self,
        gpu: &Gpu,
        stream: &Arc<CudaStream>,
        ws: &mut Workspace,
        st: &mut DeviceState,
        cells: &[StepCell],
    ) -> Result<(), KernelError> {
        let c = &self.cfg;
        let w = &self.weights;
        let (d, m, r) = (c.llama.hidden_size, c.armt.num_mem_tokens, ws.rows);
        let (dm, dk, inter, q) = (c.armt.d_mem, c.d_key(), c.llama.intermediate_size, c.llama.q_dim());
        let qkv = q + 2 * c.llama.kv_dim();
        let packed = packed_rows(cells, m);
        let hid = |x: &StepCell| x.slot * r;

        // Spans: hidden rows → packed scratch rows, packed → packed, packed → hidden.
        let span = |i: usize, x: &StepCell, in_row: usize, out_row: usize| Span {
            in_row,
            out_row,
            rows: packed[i].1,
            layer: x.layer,
            flag: x.first_segment,
            state: x.state,
            pos: 0,
        };
        let to_scratch: Vec<Span> = cells
            .iter()
            .enumerate()
            .map(|(i, x)| span(i, x, hid(x), packed[i].0))
            .collect();
        let in_scratch: Vec<Span> = cells
            .iter()
            .enumerate()
            .map(|(i, x)| span(i, x, packed[i].0, packed[i].0))
            .collect();
        // group of cell i: offsets (a, b, c) and (n, k) with row strides (lda, ldb, ldc); m = the cell's rows
        let gemm = |i: usize, off: (usize, usize, usize), nk: (usize, usize), ld: (usize, usize, usize)| GemmGroup {
            a_offset: off.0,
            b_offset: off.1,
            c_offset: off.2,
            m: packed[i].1,
            n: nk.0,
            k: nk.1,
            lda: ld.0,
            ldb: ld.1,
            ldc: ld.2,
        };

        // 1. segments entering layer 0: their embeddings and memory rows
        let entering: Vec<Span> = cells
            .iter()
            .filter_map(|x| {
                x.enters_at_token.map(|tok| Span {
                    in_row: tok,
                    out_row: hid(x),
                    rows: x.text_rows,
                    ..Span::default()
                })
            })
            .collect();
        if !entering.is_empty() {
            embed_segment(
                gpu,
                stream,
                &ws.ids,
                &w.embed,
                &w.memory,
                &mut ws.hidden,
                &entering,
                d,
                c.llama.vocab_size,
            )?;
        }

        // 2. the read, from segment 1 on: H += φ(H W_qᵀ) A / (φ(H W_qᵀ)·z + ε)
        let readers: Vec<usize> = (0..cells.len()).filter(|&i| !cells[i].first_segment).collect();
        if !readers.is_empty() {
            let pick = |v: &[Span]| readers.iter().map(|&i| v[i]).collect::<Vec<Span>>();
            let g: Vec<GemmGroup> = readers
                .iter()
                .map(|&i| {
                    let x = &cells[i];
                    gemm(i, (hid(x) * d, x.layer * dm * d, packed[i].0 * dm), (dm, d), (d, d, dm))
                })
                .collect();
            gemm_nt_f32_bf16_f32(gpu, stream, &ws.hidden, &w.mem_q, &mut ws.u, &g, false)?;
            dpfp(
                gpu,
                stream,
                &ws.u,
                dm,
                0,
                &mut ws.phi,
                dk,
                &pick(&in_scratch),
                dm,
                c.armt.nu,
            )?;
            let g: Vec<GemmGroup> = readers
                .iter()
                .map(|&i| {
                    let x = &cells[i];
                    gemm(
                        i,
                        (packed[i].0 * dk, x.state * dk * d, packed[i].0 * d),
                        (d, dk),
                        (dk, d, d),
                    )
                })
                .collect();
            gemm_nn_f32_f32_f32(gpu, stream, &ws.phi, &st.a, &mut ws.num, &g, false)?;
            let apply: Vec<Span> = readers
                .iter()
                .map(|&i| Span {
                    in_row: packed[i].0,
                    out_row: hid(&cells[i]),
                    ..in_scratch[i]
                })
                .collect();
            armt_read_apply(gpu, stream, &ws.num, &ws.phi, &st.z, &mut ws.hidden, d, &apply, d, dk)?;
        }

        // 3. attention block: x += o(attn(rope(qkv(norm(x)))))
        rms_norm(
            gpu,
            stream,
            &ws.hidden,
            d,
            &w.input_norm,
            &mut ws.normed,
            d,
            &to_scratch,
            d,
            c.llama.rms_norm_eps,
        )?;
        // q/k/v rows: a whole segment's in the packed scratch, an open segment's in its layer's KV cache rows
        let cache_rows: Vec<usize> = cells.iter().map(|x| ws.cache_row(x.layer)).collect();
        let qkv_row = |i: usize, x: &StepCell| match x.open_at {
            None => packed[i].0,
            Some(p) => cache_rows[i] + p,
        };
        let g: Vec<GemmGroup> = cells
            .iter()
            .enumerate()
            .map(|(i, x)| {
                gemm(
                    i,
                    (packed[i].0 * d, x.layer * qkv * d, qkv_row(i, x) * qkv),
                    (qkv, d),
                    (d, d, qkv),
                )
            })
            .collect();
        gemm_nt_bf16_bf16_bf16(gpu, stream, &ws.normed, &w.qkv, &mut ws.qkv, &g, false)?;
        let heads = Heads {
            heads: c.llama.num_heads,
            kv_heads: c.llama.num_kv_heads,
            head_dim: c.llama.head_dim,
        };
        let starts: Vec<usize> = cells.iter().map(|x| x.open_at.unwrap_or(0)).collect();
        let rotate: Vec<Span> = cells
            .iter()
            .enumerate()
            .map(|(i, x)| Span {
                in_row: qkv_row(i, x),
                out_row: qkv_row(i, x),
                pos: starts[i],
                ..in_scratch[i]
            })
            .collect();
        rope(gpu, stream, &mut ws.qkv, qkv, &w.rope_cos, &w.rope_sin, &rotate, heads)?;
        // keys from the segment's row 0: for an open segment, its cache rows before the new ones
        let attend: Vec<Span> = cells
            .iter()
            .enumerate()
            .map(|(i, x)| Span {
                in_row: qkv_row(i, x) - starts[i],
                pos: starts[i],
                ..in_scratch[i]
            })
            .collect();
        let scale = 1.0 / (heads.head_dim as f32).sqrt();
        attention_causal(gpu, stream, &ws.qkv, qkv, &mut ws.attn, q, &attend, heads, scale)?;
        let g: Vec<GemmGroup> = cells
            .iter()
            .enumerate()
            .map(|(i, x)| gemm(i, (packed[i].0 * q, x.layer * d * q, hid(x) * d), (d, q), (q, q, d)))
            .collect();
        gemm_nt_bf16_bf16_f32(gpu, stream, &ws.attn, &w.o, &mut ws.hidden, &g, true)?;

        // 4. MLP block: x += down(silu(gate(norm(x))) · up(norm(x)))
        rms_norm(
            gpu,
            stream,
            &ws.hidden,
            d,
            &w.post_norm,
            &mut ws.normed,
            d,
            &to_scratch,
            d,
            c.llama.rms_norm_eps,
        )?;
        let g: Vec<GemmGroup> = cells
            .iter()
            .enumerate()
            .map(|(i, x)| {
                gemm(
                    i,
                    (packed[i].0 * d, x.layer * 2 * inter * d, packed[i].0 * 2 * inter),
                    (2 * inter, d),
                    (d, d, 2 * inter),
                )
            })
            .collect();
        gemm_nt_bf16_bf16_bf16(gpu, stream, &ws.normed, &w.gate_up, &mut ws.gate_up, &g, false)?;
        swiglu(
            gpu,
            stream,
            &ws.gate_up,
            2 * inter,
            &mut ws.act,
            inter,
            &in_scratch,
            inter,
        )?;
        let g: Vec<GemmGroup> = cells
            .iter()
            .enumerate()
            .map(|(i, x)| {
                gemm(
                    i,
                    (packed[i].0 * inter, x.layer * d * inter, hid(x) * d),
                    (d, inter),
                    (inter, inter, d),
                )
            })
            .collect();
        gemm_nt_bf16_bf16_f32(gpu, stream, &ws.act, &w.down, &mut ws.hidden, &g, true)?;

        // 5. the write from the M post-block memory rows (whole segments only; an open segment writes when it closes)
        let writers: Vec<(usize, &StepCell)> = cells.iter().enumerate().filter(|(_, x)| x.open_at.is_none()).collect();
        if writers.is_empty() {
            return Ok(());
        }
        self.write(gpu, stream, ws, st, &writers, &in_scratch)
    }

    /// The write of `cells` (index in the step, cell): their M memory rows, left in the hidden slots after the layer,
    /// update `A` and `z` (scratch rows: the cell's index · M).
    fn write(
        &self,
        gpu: &Gpu,
        stream: &Arc<CudaStream>,
        ws: &mut Workspace,
        st: &mut DeviceState,
        cells: &[(usize, &StepCell)],
        in_scratch: &[Span],
    ) -> Result<(), KernelError> {
        let c = &self.cfg;
        let w = &self.weights;
        let (d, m, r) = (c.llama.hidden_size, c.armt.num_mem_tokens, ws.rows);
        let (dm, dk) = (c.armt.d_mem, c.d_key());
        let kvb = dm + d + 1;
        let hid = |x: &StepCell| x.slot * r;
        let gemm = |off: (usize, usize, usize), nk: (usize, usize), ld: (usize, usize, usize)| GemmGroup {
            a_offset: off.0,
            b_offset: off.1,
            c_offset: off.2,
            m,
            n: nk.0,
            k: nk.1,
            lda: ld.0,
            ldb: ld.1,
            ldc: ld.2,
        };
        let mem: Vec<Span> = cells
            .iter()
            .map(|&(i, _)| Span {
                in_row: i * m,
                out_row: i * m,
                rows: m,
                ..in_scratch[i]
            })
            .collect();
        let mem_gemm = |g: GemmGroup| GemmGroup { m, ..g };
        let g: Vec<GemmGroup> = cells
            .iter()
            .map(|&(i, x)| {
                mem_gemm(gemm(
                    ((hid(x) + x.text_rows) * d, x.layer * kvb * d, i * m * kvb),
                    (kvb, d),
                    (d, d, kvb),
                ))
            })
            .collect();
        gemm_nt_f32_bf16_f32(gpu, stream, &ws.hidden, &w.mem_kvb, &mut ws.kvb, &g, false)?;
        dpfp(gpu, stream, &ws.kvb, kvb, 0, &mut ws.kphi, dk, &mem, dm, c.armt.nu)?;
        let g: Vec<GemmGroup> = cells
            .iter()
            .filter(|(_, x)| !x.first_segment)
            .map(|&(i, x)| mem_gemm(gemm((i * m * dk, x.state * dk * d, i * m * d), (d, dk), (dk, d, d))))
            .collect();
        if !g.is_empty() {
            gemm_nn_f32_f32_f32(gpu, stream, &ws.kphi, &st.a, &mut ws.ka, &g, false)?;
        }
        let prep = WritePrep {
            kvb: &ws.kvb,
            kvb_ld: kvb,
            v_col: dm,
            kphi: &ws.kphi,
            ka: &ws.ka,
            z: &st.z,
            b_beta: &w.beta_bias,
            d,
            d_key: dk,
            correction: c.armt.correction,
        };
        armt_write_prep(gpu, stream, &prep, &mut ws.upd, &mut ws.gamma, &mem)?;
        // A += Kᵀ U: K stored [M, D] is the transposed left operand of a [D, d] product over M
        let g: Vec<GemmGroup> = cells
            .iter()
            .map(|&(i, x)| GemmGroup {
                a_offset: i * m * dk,
                b_offset: i * m * d,
                c_offset: x.state * dk * d,
                m: dk,
                n: d,
                k: m,
                lda: dk,
                ldb: d,
                ldc: d,
            })
            .collect();
        gemm_tn_f32_f32_f32(gpu, stream, &ws.kphi, &ws.upd, &mut st.a, &g, true)?;
        armt_z_update(gpu, stream, &ws.kphi, &ws.gamma, &mut st.z, &mem, dk)?;
        Ok(())
    }

    /// A segment leaving the top layer: the final norm of its text rows (kept in [`Workspace::final_hidden`]) and,
    /// as asked, the logits of all of them or of the last one only (in [`Workspace::logits`]). Returns the number of
    /// logit rows written.
    pub fn finish(
        &self,
        gpu: &Gpu,
        stream: &Arc<CudaStream>,
        ws: &mut Workspace,
        slot: usize,
        text_rows: usize,
        logits: LogitsMode,
    ) -> Result<usize, KernelError> {
        let (d, v) = (self.cfg.llama.hidden_size, self.cfg.llama.vocab_size);
        let span = Span {
            in_row: slot * ws.rows,
            out_row: 0,
            rows: text_rows,
            ..Span::default()
        };
        let w = &self.weights;
        rms_norm(
            gpu,
            stream,
            &ws.hidden,
            d,
            &w.final_norm,
            &mut ws.final_hidden,
            d,
            &[span],
            d,
            self.cfg.llama.rms_norm_eps,
        )?;
        let (first, rows) = match logits {
            LogitsMode::None => return Ok(0),
            LogitsMode::Last => (text_rows - 1, 1),
            LogitsMode::All => (0, text_rows),
        };
        let g = GemmGroup {
            a_offset: first * d,
            b_offset: 0,
            c_offset: 0,
            m: rows,
            n: v,
            k: d,
            lda: d,
            ldb: d,
            ldc: v,
        };
        gemm_nt_bf16_bf16_f32(gpu, stream, &ws.final_hidden, w.lm_head(), &mut ws.logits, &[g], false)?;
        Ok(rows)
    }
}
