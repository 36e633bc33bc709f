//! The attention kernels — `attention_causal_bf16_hd*` (SIMT) and `attention_sm90_causal_bf16_hd*` (tensor cores) —
//! against [`reference::attention::causal_gqa_attention`](crate::reference::attention::causal_gqa_attention): the
//! same cases for both, the same tolerance, the same bitwise grouping and decode-equals-prefill checks.

use half::bf16;

use super::harness::{
    alone_vs_grouped, bf16_normal, changed_outside, compare, differing_bits, fail_if, gather, poison_bits,
    poisoned_bf16, upload_bf16, Block, Check, Layout, SplitMix64, BF16_OUT_TOL,
};
use crate::attention::attention_causal;
use crate::attention_sm90::attention_sm90_causal;
use crate::params::{Heads, Span};
use crate::reference::attention::{causal_gqa_attention, causal_gqa_attention_cached};
use crate::{Gpu, KernelError};

/// Which attention kernel a check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attention {
    /// `cuda/attention.cu`.
    Simt,
    /// `cuda/attention_sm90.cu`.
    Sm90,
}

impl Attention {
    fn name(self) -> &'static str {
        match self {
            Attention::Simt => "attention_causal_bf16",
            Attention::Sm90 => "attention_sm90_causal",
        }
    }
}

struct Case {
    kernel: Attention,
    layout: Layout,
    shape: Heads,
    qkv_ld: usize,
    out_ld: usize,
    scale: f32,
    qkv: Vec<f32>,
}

impl Case {
    fn new(kernel: Attention, seed: u64, rows: &[usize], shape: Heads) -> Case {
        let mut rng = SplitMix64::new(seed);
        let layout = Layout::rows(rows, 1, false, 0);
        // Padded strides, the kernel must use them, not the widths: even for SIMT; for the tensor-core kernel the
        // strides TMA and its 16-byte stores take (qkv_ld a multiple of the head dim, out_ld of 8).
        let (qkv_pad, out_pad) = match kernel {
            Attention::Simt => (8, 2),
            Attention::Sm90 => (shape.head_dim, 8),
        };
        let qkv_ld = (shape.heads + 2 * shape.kv_heads) * shape.head_dim + qkv_pad;
        let out_ld = shape.heads * shape.head_dim + out_pad;
        // N(0, 1) q and k: scores q·k/√hd of standard deviation 1, a softmax neither flat nor one-hot.
        let qkv = bf16_normal(&mut rng, layout.in_rows * qkv_ld, 1.0);
        let scale = 1.0 / (shape.head_dim as f32).sqrt();
        Case {
            kernel,
            layout,
            shape,
            qkv_ld,
            out_ld,
            scale,
            qkv,
        }
    }

    fn describe(&self) -> String {
        let rows: Vec<usize> = self.layout.spans.iter().map(|s| s.rows).collect();
        let s = self.shape;
        format!("rows={rows:?} H={} KV={} hd={}", s.heads, s.kv_heads, s.head_dim)
    }

    /// Launches on `spans` (a span's queries from its position `pos`: the rows before it act as a KV cache) over a
    /// poisoned output; returns the whole output buffer.
    fn run(&self, gpu: &Gpu, spans: &[Span]) -> Result<Vec<bf16>, KernelError> {
        self.run_at(gpu, spans, None)
    }

    /// [`Case::run`] with a positions buffer for dynamic spans.
    fn run_at(&self, gpu: &Gpu, spans: &[Span], positions: Option<&[i32]>) -> Result<Vec<bf16>, KernelError> {
        let stream = gpu.stream();
        let qkv = upload_bf16(stream, &self.qkv)?;
        let positions = positions.map(|p| stream.clone_htod(p)).transpose()?;
        let mut out = poisoned_bf16(gpu, stream, self.layout.out_rows * self.out_ld)?;
        let launch = match self.kernel {
            Attention::Simt => attention_causal,
            Attention::Sm90 => attention_sm90_causal,
        };
        launch(
            gpu,
            stream,
            &qkv,
            self.qkv_ld,
            &mut out,
            self.out_ld,
            spans,
            positions.as_ref(),
            self.shape,
            self.scale,
        )?;
        Ok(stream.clone_dtoh(&out)?)
    }

    fn q_width(&self) -> usize {
        self.shape.heads * self.shape.head_dim
    }
}

/// Causal GQA attention of one span per entry of `rows` against the f32 reference (which forms the full score matrix
/// and sums the softmax in f64). Tolerance [`BF16_OUT_TOL`]: q, k, v are the same bf16 values on both sides and the
/// kernel keeps scores, probabilities and the accumulator in f32, so the error is the output's one bf16 rounding
/// (≈ 1e-3 RMS) plus f32 accumulation-order differences over up to 4352 keys (~1e-5).
pub fn check_attention(
    gpu: &Gpu,
    kernel: Attention,
    seed: u64,
    rows: &[usize],
    shape: Heads,
) -> Result<Check, KernelError> {
    let case = Case::new(kernel, seed, rows, shape);
    let out = case.run(gpu, &case.layout.spans)?;
    let Heads {
        heads,
        kv_heads,
        head_dim,
    } = shape;
    let (qw, kw) = (heads * head_dim, kv_heads * head_dim);
    let (mut got, mut want) = (Vec::new(), Vec::new());
    for s in &case.layout.spans {
        let q = gather(&case.qkv, case.qkv_ld, s.in_row, s.rows, 0, qw);
        let k = gather(&case.qkv, case.qkv_ld, s.in_row, s.rows, qw, kw);
        let v = gather(&case.qkv, case.qkv_ld, s.in_row, s.rows, qw + kw, kw);
        let mut o = vec![0.0; s.rows * qw];
        causal_gqa_attention(&q, &k, &v, s.rows, heads, kv_heads, head_dim, case.scale, &mut o);
        want.extend(o);
        got.extend(
            gather(&out, case.out_ld, s.out_row, s.rows, 0, qw)
                .into_iter()
                .map(f32::from),
        );
    }
    let check = compare(kernel.name(), case.describe(), &got, &want, BF16_OUT_TOL);
    let strays = changed_outside(&out, &case.layout.out_blocks(case.out_ld, qw, 0), |_| {
        poison_bits::<bf16>()
    });
    Ok(fail_if(check, strays, "writes outside the spans"))
}

/// The cell of `rows[target]` launched alone and inside the launch of all `rows`: identical bits.
pub fn check_attention_grouping(
    gpu: &Gpu,
    kernel: Attention,
    seed: u64,
    rows: &[usize],
    target: usize,
    shape: Heads,
) -> Result<Check, KernelError> {
    let case = Case::new(kernel, seed, rows, shape);
    alone_vs_grouped(
        kernel.name(),
        case.describe(),
        (&case.layout.spans, target),
        |spans| case.run(gpu, spans),
        |s| Block::rows(case.out_ld, s.out_row, s.rows, 0, case.q_width()),
    )
}

/// The new rows of open segments: span `i` has `cached[i]` rows already in the buffer (its KV cache) and the rest of
/// its `rows[i]` are new queries from position `cached[i]`, written from the span's out_row. Against the f32
/// reference for cached attention (tolerance [`BF16_OUT_TOL`], as the square case), and bitwise equal to the same
/// queries computed inside the whole span: decoding a token gives the bits a prefill of the text would. `dynamic`:
/// each position is read on the device (span `i` a dynamic span of state `i + 1`, bounded by its segment's end), as a
/// captured decode step has it.
pub fn check_attention_cached(
    gpu: &Gpu,
    kernel: Attention,
    seed: u64,
    rows: &[usize],
    cached: &[usize],
    shape: Heads,
    dynamic: bool,
) -> Result<Check, KernelError> {
    let case = Case::new(kernel, seed, rows, shape);
    let whole = case.run(gpu, &case.layout.spans)?;
    let new: Vec<Span> = case
        .layout
        .spans
        .iter()
        .zip(cached)
        .enumerate()
        .map(|(i, (s, &c))| Span {
            rows: s.rows - c,
            pos: c,
            dynamic,
            state: i + 1,
            ..*s
        })
        .collect();
    let positions: Vec<i32> = [-1].into_iter().chain(cached.iter().map(|&c| c as i32)).collect();
    let out = case.run_at(gpu, &new, dynamic.then_some(&positions[..]))?;
    let Heads {
        heads,
        kv_heads,
        head_dim,
    } = shape;
    let (qw, kw) = (heads * head_dim, kv_heads * head_dim);
    let (mut got, mut want, mut inside) = (Vec::new(), Vec::new(), Vec::new());
    for ((s, n), &c) in case.layout.spans.iter().zip(&new).zip(cached) {
        let q = gather(&case.qkv, case.qkv_ld, s.in_row + c, n.rows, 0, qw);
        let k = gather(&case.qkv, case.qkv_ld, s.in_row, s.rows, qw, kw);
        let v = gather(&case.qkv, case.qkv_ld, s.in_row, s.rows, qw + kw, kw);
        let mut o = vec![0.0; n.rows * qw];
        causal_gqa_attention_cached(
            &q, &k, &v, n.rows, s.rows, heads, kv_heads, head_dim, case.scale, &mut o,
        );
        want.extend(o);
        got.extend(gather(&out, case.out_ld, n.out_row, n.rows, 0, qw));
        inside.extend(gather(&whole, case.out_ld, s.out_row + c, n.rows, 0, qw));
    }
    let how = if dynamic { ", dynamic" } else { "" };
    let describe = format!("{} cached={cached:?}{how} (bitwise = whole span)", case.describe());
    let got_f32: Vec<f32> = got.iter().copied().map(f32::from).collect();
    let check = compare(kernel.name(), describe, &got_f32, &want, BF16_OUT_TOL);
    let regions: Vec<Block> = new
        .iter()
        .map(|s| Block::rows(case.out_ld, s.out_row, s.rows, 0, qw))
        .collect();
    let check = fail_if(
        check,
        changed_outside(&out, &regions, |_| poison_bits::<bf16>()),
        "writes outside the spans",
    );
    Ok(fail_if(
        check,
        differing_bits(&got, &inside),
        "elements differ in bits from the whole span's",
    ))
}

/// Attention at the published head shapes and at awkward ones: every head size, GQA groups of 4, 3, 2 and 1, rows
/// that are not multiples of the 64-query or 32-key tiles (1, 17, 40, 65, 1152 + a short last segment, 4352 = T + M
/// at T = 4096, M = 256), several spans per launch, and the grouping check.
pub fn checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    checks_of(gpu, seed, Attention::Simt)
}

/// The same cases on the tensor-core kernel (its head dims, 64 and 128).
pub fn checks_sm90(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    checks_of(gpu, seed, Attention::Sm90)
}

fn checks_of(gpu: &Gpu, seed: u64, k: Attention) -> Vec<Result<Check, KernelError>> {
    let shape = |heads, kv_heads, head_dim| Heads {
        heads,
        kv_heads,
        head_dim,
    };
    let mut all = vec![
        check_attention(gpu, k, seed ^ 1, &[1152, 65, 1], shape(32, 8, 64)),
        check_attention(gpu, k, seed ^ 2, &[1152, 200], shape(9, 3, 64)),
        check_attention(gpu, k, seed ^ 3, &[300, 64, 63], shape(8, 2, 128)),
        check_attention(gpu, k, seed ^ 4, &[97, 33], shape(4, 4, 128)),
        check_attention(gpu, k, seed ^ 5, &[4352], shape(2, 1, 64)),
        // one query head per KV head at hd 64 (the 160M model): the two-warpgroup entry of the tensor-core kernel
        check_attention(gpu, k, seed ^ 12, &[640, 129], shape(12, 12, 64)),
        check_attention_cached(
            gpu,
            k,
            seed ^ 13,
            &[1, 640, 200],
            &[0, 639, 130],
            shape(12, 12, 64),
            false,
        ),
        check_attention_grouping(gpu, k, seed ^ 6, &[40, 17, 300, 129], 0, shape(32, 8, 64)),
        check_attention_grouping(gpu, k, seed ^ 7, &[200, 1, 70, 64], 2, shape(4, 2, 128)),
        // decoding: one new row after 0, 63, 64 and 1023 cached rows; a few new rows after a tile edge
        check_attention_cached(
            gpu,
            k,
            seed ^ 8,
            &[1, 64, 65, 1024],
            &[0, 63, 64, 1023],
            shape(9, 3, 64),
            false,
        ),
        check_attention_cached(gpu, k, seed ^ 9, &[100, 40], &[33, 31], shape(32, 8, 64), false),
        check_attention_cached(gpu, k, seed ^ 10, &[130, 7], &[129, 2], shape(8, 2, 128), false),
        // the same positions read on the device (a captured decode step)
        check_attention_cached(
            gpu,
            k,
            seed ^ 11,
            &[1, 64, 65, 1024],
            &[0, 63, 64, 1023],
            shape(9, 3, 64),
            true,
        ),
    ];
    if k == Attention::Simt {
        all.insert(0, check_attention(gpu, k, seed, &[40, 17, 130], shape(4, 2, 32)));
    }
    all
}
