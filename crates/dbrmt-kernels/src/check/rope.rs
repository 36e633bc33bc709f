//! `rope_bf16` against [`reference::rope::apply_rope`](crate::reference::rope::apply_rope), with llama3-scaled and
//! plain tables.

use half::bf16;

use super::harness::{
    alone_vs_grouped, bf16_normal, bitwise, changed_outside, compare, fail_if, gather, upload_bf16, upload_f32, Block,
    Check, Layout, SplitMix64, BF16_OUT_TOL,
};
use crate::params::{Heads, Span};
use crate::reference::rope::{apply_rope, Llama3Scaling, RopeTable};
use crate::rope::{rope_and_prefetch, L2Prefetch};
use crate::{Gpu, KernelError};

/// Llama 3.1/3.2's `rope_scaling` (theta 5e5).
const LLAMA3: Llama3Scaling = Llama3Scaling {
    factor: 32.0,
    low_freq_factor: 1.0,
    high_freq_factor: 4.0,
    original_max_position_embeddings: 8192.0,
};

/// The head shape of a check.
#[derive(Debug, Clone, Copy)]
pub struct RopeShape {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// llama3-scaled frequencies with theta 5e5; otherwise plain ones with theta 1e4.
    pub llama3: bool,
}

struct Case {
    layout: Layout,
    shape: RopeShape,
    ld: usize,
    table: RopeTable,
    /// The whole QKV buffer before the kernel (gap rows, v columns and row padding included).
    qkv: Vec<f32>,
}

impl Case {
    fn new(seed: u64, rows: &[usize], shape: RopeShape) -> Case {
        let mut rng = SplitMix64::new(seed);
        let layout = Layout::rows(rows, 1, true, 0);
        let ld = (shape.heads + 2 * shape.kv_heads) * shape.head_dim + 6;
        let positions = rows.iter().copied().max().unwrap_or(0) + 3;
        let table = if shape.llama3 {
            RopeTable::new(shape.head_dim, 500000.0, Some(&LLAMA3), positions)
        } else {
            RopeTable::new(shape.head_dim, 10000.0, None, positions)
        };
        let qkv = bf16_normal(&mut rng, layout.in_rows * ld, 1.0);
        Case {
            layout,
            shape,
            ld,
            table,
            qkv,
        }
    }

    fn describe(&self) -> String {
        let rows: Vec<usize> = self.layout.spans.iter().map(|s| s.rows).collect();
        let s = self.shape;
        let t = if s.llama3 { "llama3 θ=5e5" } else { "θ=1e4" };
        format!("rows={rows:?} H={} KV={} hd={} {t}", s.heads, s.kv_heads, s.head_dim)
    }

    /// Uploads the buffer, rotates it on `spans` (a span's first row at its position `pos`) and downloads it.
    fn run(&self, gpu: &Gpu, spans: &[Span]) -> Result<Vec<bf16>, KernelError> {
        Ok(self.run_on(gpu, &self.qkv, spans, None, None)?.0)
    }

    /// [`Case::run`] on another buffer of the same row stride, with a positions buffer for dynamic spans, and with
    /// an L2 prefetch of `prefetch` (the buffer, its rows and their length) beside it: then the buffer comes back
    /// after the launch as well.
    fn run_on(
        &self,
        gpu: &Gpu,
        buf: &[f32],
        spans: &[Span],
        positions: Option<&[i32]>,
        prefetch: Option<(&[f32], usize, usize)>,
    ) -> Result<(Vec<bf16>, Option<Vec<bf16>>), KernelError> {
        let stream = gpu.stream();
        let mut qkv = upload_bf16(stream, buf)?;
        let positions = positions.map(|p| stream.clone_htod(p)).transpose()?;
        let cos = upload_f32(stream, &self.table.cos)?;
        let sin = upload_f32(stream, &self.table.sin)?;
        let s = self.shape;
        let heads = Heads {
            heads: s.heads,
            kv_heads: s.kv_heads,
            head_dim: s.head_dim,
        };
        let weights = prefetch.map(|(w, _, _)| upload_bf16(stream, w)).transpose()?;
        let pf = weights
            .as_ref()
            .zip(prefetch)
            .map(|(buf, (_, rows, row_len))| L2Prefetch {
                buf,
                first_row: 0,
                rows,
                row_len,
                prefix: row_len,
            });
        let (qkv_ld, tables, pos) = ((&mut qkv, self.ld), (&cos, &sin), positions.as_ref());
        rope_and_prefetch(gpu, stream, qkv_ld, tables, spans, pos, heads, pf.as_ref())?;
        let after = weights.as_ref().map(|w| stream.clone_dtoh(w)).transpose()?;
        Ok((stream.clone_dtoh(&qkv)?, after))
    }

    /// The bits of element `i` of the buffer before the kernel, as a bf16 widened to f32.
    fn original_bits(&self, i: usize) -> u32 {
        bf16_bits(&self.qkv, i)
    }

    /// Columns rotated per row.
    fn width(&self) -> usize {
        (self.shape.heads + self.shape.kv_heads) * self.shape.head_dim
    }
}

/// RoPE of one span per entry of `rows` against the f32 reference; every element the kernel must not touch (v
/// columns, row padding, rows outside the spans) must keep its bits. Tolerance [`BF16_OUT_TOL`]: each output is one
/// f32 rotation of bf16 inputs (an FMA where the reference rounds twice: ~1e-7) rounded once to bf16.
pub fn check_rope(gpu: &Gpu, seed: u64, rows: &[usize], shape: RopeShape) -> Result<Check, KernelError> {
    let case = Case::new(seed, rows, shape);
    let out = case.run(gpu, &case.layout.spans)?;
    let width = case.width();
    let (mut got, mut want) = (Vec::new(), Vec::new());
    for s in &case.layout.spans {
        let mut x = gather(&case.qkv, case.ld, s.in_row, s.rows, 0, width);
        apply_rope(&mut x, s.rows, shape.heads + shape.kv_heads, &case.table);
        want.extend(x);
        got.extend(
            gather(&out, case.ld, s.in_row, s.rows, 0, width)
                .into_iter()
                .map(f32::from),
        );
    }
    let check = compare("rope_bf16", case.describe(), &got, &want, BF16_OUT_TOL);
    let regions: Vec<Block> = case
        .layout
        .spans
        .iter()
        .map(|s| Block::rows(case.ld, s.in_row, s.rows, 0, width))
        .collect();
    Ok(fail_if(
        check,
        changed_outside(&out, &regions, |i| case.original_bits(i)),
        "elements outside q/k of the spans changed",
    ))
}

/// The cell of `rows[target]` rotated alone and inside the launch of all `rows`: identical bits.
pub fn check_rope_grouping(
    gpu: &Gpu,
    seed: u64,
    rows: &[usize],
    target: usize,
    shape: RopeShape,
) -> Result<Check, KernelError> {
    let case = Case::new(seed, rows, shape);
    alone_vs_grouped(
        "rope_bf16",
        case.describe(),
        (&case.layout.spans, target),
        |spans| case.run(gpu, spans),
        |s| Block::rows(case.ld, s.in_row, s.rows, 0, case.width()),
    )
}

/// The new rows of open segments: of each span's `rows[i]` rows, only those from `cached[i]` on are rotated, launched
/// as a span starting at position `cached[i]`. Their bits must equal those of the whole span's rotation (the same
/// table row, the same arithmetic), and the cached rows must keep theirs.
pub fn check_rope_at(
    gpu: &Gpu,
    seed: u64,
    rows: &[usize],
    cached: &[usize],
    shape: RopeShape,
) -> Result<Check, KernelError> {
    let case = Case::new(seed, rows, shape);
    let whole = case.run(gpu, &case.layout.spans)?;
    let new: Vec<Span> = case
        .layout
        .spans
        .iter()
        .zip(cached)
        .map(|(s, &c)| Span {
            in_row: s.in_row + c,
            out_row: s.in_row,
            rows: s.rows - c,
            pos: c,
            ..*s
        })
        .collect();
    let out = case.run(gpu, &new)?;
    let width = case.width();
    let pick = |y: &[bf16]| -> Vec<bf16> {
        new.iter()
            .flat_map(|s| gather(y, case.ld, s.in_row, s.rows, 0, width))
            .collect()
    };
    let check = bitwise(
        "rope_bf16",
        format!("{} cached={cached:?} vs whole spans", case.describe()),
        &pick(&out),
        &pick(&whole),
    );
    let regions: Vec<Block> = new
        .iter()
        .map(|s| Block::rows(case.ld, s.in_row, s.rows, 0, width))
        .collect();
    Ok(fail_if(
        check,
        changed_outside(&out, &regions, |i| case.original_bits(i)),
        "elements outside the new rows' q/k changed",
    ))
}

/// A decode step's RoPE: each span's new rows (from `cached[i]` of its `rows[i]`) sit in scratch rows after the
/// buffer's and are rotated into their segment's rows at the position its state holds on the device (a dynamic span
/// bounded by its segment's end, as a KV cache's). The rows written (q and k rotated, v copied) must have the bits the
/// whole span's in-place rotation gives them; nothing else may change, the scratch rows included.
pub fn check_rope_dynamic(
    gpu: &Gpu,
    seed: u64,
    rows: &[usize],
    cached: &[usize],
    shape: RopeShape,
) -> Result<Check, KernelError> {
    rope_dynamic(gpu, seed, rows, cached, shape, None)
}

/// [`check_rope_dynamic`] through `rope_and_prefetch` with an L2 prefetch of a buffer of `weights.0` random rows of
/// `weights.1` bf16 (the `_few_l2` entry unless `DBRMT_L2_PREFETCH=off`): the rows written must have the same bits as
/// without it, nothing else may change, and the prefetched buffer must keep every bit (a prefetch moves no data).
pub fn check_rope_prefetch(
    gpu: &Gpu,
    seed: u64,
    rows: &[usize],
    cached: &[usize],
    shape: RopeShape,
    weights: (usize, usize),
) -> Result<Check, KernelError> {
    rope_dynamic(gpu, seed, rows, cached, shape, Some(weights))
}

fn rope_dynamic(
    gpu: &Gpu,
    seed: u64,
    rows: &[usize],
    cached: &[usize],
    shape: RopeShape,
    prefetch: Option<(usize, usize)>,
) -> Result<Check, KernelError> {
    let case = Case::new(seed, rows, shape);
    let whole = case.run(gpu, &case.layout.spans)?;
    let ld = case.ld;
    let full = (shape.heads + 2 * shape.kv_heads) * shape.head_dim;
    // the new rows copied to scratch rows after the buffer; state i + 1 holds span i's position
    let mut buf = case.qkv.clone();
    let (mut spans, mut positions) = (Vec::new(), vec![-1i32; rows.len() + 2]);
    for (i, (s, &c)) in case.layout.spans.iter().zip(cached).enumerate() {
        let n = s.rows - c;
        let scratch = buf.len() / ld;
        buf.extend(gather(&case.qkv, ld, s.in_row + c, n, 0, ld));
        spans.push(Span {
            in_row: scratch,
            out_row: s.in_row,
            rows: n,
            pos: s.rows - n,
            dynamic: true,
            state: i + 1,
            ..*s
        });
        positions[i + 1] = c as i32;
    }
    let weights = prefetch.map(|(n, len)| bf16_normal(&mut SplitMix64::new(seed ^ 0x9e37), n * len, 1.0));
    let pf = weights.as_deref().zip(prefetch).map(|(w, (n, len))| (w, n, len));
    let (out, after) = case.run_on(gpu, &buf, &spans, Some(&positions), pf)?;
    let written: Vec<Block> = case
        .layout
        .spans
        .iter()
        .zip(cached)
        .map(|(s, &c)| Block::rows(ld, s.in_row + c, s.rows - c, 0, full))
        .collect();
    let pick = |y: &[bf16]| -> Vec<bf16> { written.iter().flat_map(|b| b.gather(y)).collect() };
    let check = bitwise(
        "rope_bf16",
        format!(
            "{} cached={cached:?}, dynamic, from scratch rows vs whole spans{}",
            case.describe(),
            match prefetch {
                Some((n, len)) => format!(", an L2 prefetch of {n} rows of {len} beside it"),
                None => String::new(),
            }
        ),
        &pick(&out),
        &pick(&whole),
    );
    let check = fail_if(
        check,
        changed_outside(&out, &written, |i| bf16_bits(&buf, i)),
        "elements outside the written rows changed",
    );
    let changed = |w: &[f32], a: &[bf16]| {
        (0..w.len())
            .filter(|&i| f32::from(a[i]).to_bits() != bf16_bits(w, i))
            .count()
    };
    Ok(fail_if(
        check,
        weights.zip(after).map_or(0, |(w, a)| changed(&w, &a)),
        "the prefetched buffer changed",
    ))
}

/// The bits of element `i` of an f32 buffer uploaded as bf16, widened back to f32.
fn bf16_bits(buf: &[f32], i: usize) -> u32 {
    f32::from(bf16::from_f32(buf[i])).to_bits()
}

/// RoPE with llama3-scaled and plain tables, head sizes 32/64/128, GQA and MHA, rows not multiples of anything.
pub fn checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    let shape = |heads, kv_heads, head_dim, llama3| RopeShape {
        heads,
        kv_heads,
        head_dim,
        llama3,
    };
    vec![
        check_rope(gpu, seed, &[40, 17], shape(32, 8, 64, true)),
        check_rope(gpu, seed ^ 1, &[40, 17], shape(32, 8, 64, false)),
        check_rope(gpu, seed ^ 2, &[1152, 65, 1], shape(9, 3, 64, true)),
        check_rope(gpu, seed ^ 3, &[100, 7], shape(4, 2, 32, false)),
        check_rope(gpu, seed ^ 4, &[70, 3, 129], shape(24, 8, 128, true)),
        check_rope(gpu, seed ^ 5, &[4352], shape(2, 2, 64, true)),
        check_rope_at(
            gpu,
            seed ^ 7,
            &[1, 64, 1024, 40],
            &[0, 63, 1023, 17],
            shape(9, 3, 64, false),
        ),
        check_rope_dynamic(
            gpu,
            seed ^ 8,
            &[1, 64, 1024, 40],
            &[0, 63, 1023, 17],
            shape(9, 3, 64, true),
        ),
        // SmolLM2's gate/up rows (the model's use), and rows of a prefix-length not a multiple of 128 threads
        check_rope_prefetch(
            gpu,
            seed ^ 9,
            &[1, 64, 1024, 40],
            &[0, 63, 1023, 39],
            shape(9, 3, 64, true),
            (3072, 576),
        ),
        check_rope_prefetch(gpu, seed ^ 10, &[300, 7], &[299, 6], shape(4, 2, 32, false), (77, 40)),
        check_rope_grouping(gpu, seed ^ 6, &[40, 17, 300, 5], 1, shape(32, 8, 64, true)),
    ]
}
