//! `embed_segment_bf16` and `embed_segment_f32` against
//! [`reference::embed::segment_input`](crate::reference::embed::segment_input): a copy, so exact. The hidden rows are
//! read back as f32 (exact for both types), so one set of checks serves both.

use cudarc::driver::CudaSlice;
use half::bf16;

use super::harness::{
    alone_vs_grouped, below, bf16_normal, changed_outside, compare, download_hidden, fail_if, gather, poison_bits,
    poisoned_hidden, upload_bf16, Block, Check, Layout, SplitMix64,
};
use crate::embed::{embed_segment, embed_segment_mirrored, kernel, BAD_ID_F32_BITS};
use crate::params::Span;
use crate::reference::embed::segment_input;
use crate::{Gpu, HiddenElem, KernelError};

/// The ids, the embedding table and the memory rows on the device.
type Uploaded = (CudaSlice<u32>, CudaSlice<bf16>, CudaSlice<bf16>);

struct Case {
    layout: Layout,
    d: usize,
    vocab: usize,
    mem_rows: usize,
    ids: Vec<u32>,
    embed: Vec<f32>,
    memory: Vec<f32>,
}

impl Case {
    fn new(seed: u64, rows: &[usize], d: usize, vocab: usize, mem_rows: usize) -> Case {
        let mut rng = SplitMix64::new(seed);
        let layout = Layout::rows(rows, 1, false, mem_rows);
        // Ids outside the spans are out of range: a kernel reading the wrong ids writes NaN rows and fails.
        let mut ids = vec![u32::MAX; layout.in_rows];
        for s in &layout.spans {
            ids[s.in_row..s.in_row + s.rows]
                .iter_mut()
                .for_each(|id| *id = below(&mut rng, vocab) as u32);
        }
        let embed = bf16_normal(&mut rng, vocab * d, 1.0);
        let memory = bf16_normal(&mut rng, mem_rows * d, 0.5);
        Case {
            layout,
            d,
            vocab,
            mem_rows,
            ids,
            embed,
            memory,
        }
    }

    fn describe(&self) -> String {
        let rows: Vec<usize> = self.layout.spans.iter().map(|s| s.rows).collect();
        format!("T_s={rows:?} M={} d={} V={}", self.mem_rows, self.d, self.vocab)
    }

    /// Launches on `spans` over poisoned hidden rows of type `H`; returns the whole hidden buffer as f32.
    fn run<H: HiddenElem>(&self, gpu: &Gpu, spans: &[Span]) -> Result<Vec<f32>, KernelError> {
        let stream = gpu.stream();
        let (ids, embed, memory) = self.upload(gpu)?;
        let mut hidden = poisoned_hidden::<H>(gpu, stream, self.layout.out_rows * self.d)?;
        let (d, vocab) = (self.d, self.vocab);
        embed_segment(gpu, stream, &ids, &embed, &memory, &mut hidden, spans, d, vocab)?;
        download_hidden(stream, &hidden)
    }

    /// `embed_segment_f32_mirrored` on all spans over poisoned f32 rows and a poisoned bf16 mirror; returns both as
    /// f32.
    fn run_mirrored(&self, gpu: &Gpu) -> Result<(Vec<f32>, Vec<f32>), KernelError> {
        let stream = gpu.stream();
        let (ids, embed, memory) = self.upload(gpu)?;
        let n = self.layout.out_rows * self.d;
        let mut hidden = poisoned_hidden::<f32>(gpu, stream, n)?;
        let mut mirror = poisoned_hidden::<bf16>(gpu, stream, n)?;
        let (spans, d, vocab) = (&self.layout.spans, self.d, self.vocab);
        let out = (&mut hidden, &mut mirror);
        embed_segment_mirrored(gpu, stream, &ids, &embed, &memory, out, spans, d, vocab)?;
        Ok((download_hidden(stream, &hidden)?, download_hidden(stream, &mirror)?))
    }

    /// The ids and both tables on the device.
    fn upload(&self, gpu: &Gpu) -> Result<Uploaded, KernelError> {
        let stream = gpu.stream();
        let ids = stream.clone_htod(&self.ids)?;
        Ok((
            ids,
            upload_bf16(stream, &self.embed)?,
            upload_bf16(stream, &self.memory)?,
        ))
    }

    /// The rows each span writes: `T_s + M` rows from its out_row.
    fn regions(&self) -> Vec<Block> {
        self.layout.out_blocks(self.d, self.d, self.mem_rows)
    }

    /// The reference rows of span `s`, with the ids of `ids`.
    fn reference(&self, ids: &[u32], s: &Span) -> Vec<f32> {
        let mut r = vec![0.0; (s.rows + self.mem_rows) * self.d];
        segment_input(
            &ids[s.in_row..s.in_row + s.rows],
            &self.embed,
            &self.memory,
            self.d,
            &mut r,
        );
        r
    }
}

/// The segment inputs of one span per entry of `rows` (T_s text rows each; the last may be short), written as hidden
/// rows of type `H`, against the reference. Tolerance 0: the kernel copies bf16 rows (into bf16, or exactly into f32),
/// so every element must equal the table's.
pub fn check_embed<H: HiddenElem>(
    gpu: &Gpu,
    seed: u64,
    rows: &[usize],
    d: usize,
    vocab: usize,
    mem_rows: usize,
) -> Result<Check, KernelError> {
    let case = Case::new(seed, rows, d, vocab, mem_rows);
    let hidden = case.run::<H>(gpu, &case.layout.spans)?;
    let (mut got, mut want) = (Vec::new(), Vec::new());
    for s in &case.layout.spans {
        want.extend(case.reference(&case.ids, s));
        got.extend(gather(&hidden, d, s.out_row, s.rows + mem_rows, 0, d));
    }
    let check = compare(kernel::<H>().entry, case.describe(), &got, &want, 0.0);
    Ok(fail_if(
        check,
        changed_outside(&hidden, &case.regions(), |_| poison_bits::<H>()),
        "writes outside the spans",
    ))
}

/// Ids `>= vocab` inside the spans (`vocab` itself and `u32::MAX`): their rows must be the NaN
/// [`BAD_ID_BF16_BITS`](crate::embed::BAD_ID_BF16_BITS) (in f32 rows [`BAD_ID_F32_BITS`], which is also what a bf16
/// NaN row reads back as), every other row exact. Tolerance 0.
pub fn check_embed_bad_ids<H: HiddenElem>(gpu: &Gpu, seed: u64) -> Result<Check, KernelError> {
    let (d, vocab, mem_rows) = (64, 50, 3);
    let mut case = Case::new(seed, &[9, 4], d, vocab, mem_rows);
    let spans = case.layout.spans.clone();
    let bad = [(spans[0].in_row + 2, vocab as u32), (spans[1].in_row + 3, u32::MAX)];
    for &(i, id) in &bad {
        case.ids[i] = id;
    }
    let hidden = case.run::<H>(gpu, &spans)?;
    let (mut got, mut want, mut not_nan) = (Vec::new(), Vec::new(), 0);
    // The reference with valid ids in the bad places; the bad rows are then compared by bits instead.
    let mut valid_ids = case.ids.clone();
    for &(i, _) in &bad {
        valid_ids[i] = 0;
    }
    for (si, s) in spans.iter().enumerate() {
        let bad_row = bad[si].0 - s.in_row;
        let r = case.reference(&valid_ids, s);
        for row in 0..s.rows + mem_rows {
            let out = &hidden[(s.out_row + row) * d..(s.out_row + row + 1) * d];
            if row == bad_row {
                not_nan += out.iter().filter(|v| v.to_bits() != BAD_ID_F32_BITS).count();
            } else {
                want.extend_from_slice(&r[row * d..(row + 1) * d]);
                got.extend_from_slice(out);
            }
        }
    }
    let mut shape = case.describe();
    shape.push_str(" ids >= V");
    let check = compare(kernel::<H>().entry, shape, &got, &want, 0.0);
    let check = fail_if(check, not_nan, "elements of bad-id rows are not the NaN 0x7FFF");
    Ok(fail_if(
        check,
        changed_outside(&hidden, &case.regions(), |_| poison_bits::<H>()),
        "writes outside the spans",
    ))
}

/// The cell of `rows[target]` launched alone and inside the launch of all `rows` (hidden rows of type `H`): identical
/// bits.
pub fn check_embed_grouping<H: HiddenElem>(
    gpu: &Gpu,
    seed: u64,
    rows: &[usize],
    target: usize,
) -> Result<Check, KernelError> {
    let (d, vocab, mem_rows) = (576, 1000, 16);
    let case = Case::new(seed, rows, d, vocab, mem_rows);
    alone_vs_grouped(
        kernel::<H>().entry,
        case.describe(),
        (&case.layout.spans, target),
        |spans| case.run::<H>(gpu, spans),
        |s| Block::rows(d, s.out_row, s.rows + mem_rows, 0, d),
    )
}

/// Segment inputs at SmolLM2's and Llama-3.2-1B's widths, full and short last segments, with and without memory
/// rows, bad ids, and the grouping check; each for bf16 and for f32 hidden rows.
pub fn checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    vec![
        check_embed::<bf16>(gpu, seed, &[40, 17], 576, 1000, 16),
        check_embed::<bf16>(gpu, seed ^ 1, &[128, 128, 5], 2048, 3000, 128),
        check_embed::<bf16>(gpu, seed ^ 2, &[7, 1], 100, 37, 0),
        check_embed_bad_ids::<bf16>(gpu, seed ^ 3),
        check_embed_grouping::<bf16>(gpu, seed ^ 4, &[40, 17, 128, 3], 1),
        check_embed::<f32>(gpu, seed ^ 5, &[40, 17], 576, 1000, 16),
        check_embed::<f32>(gpu, seed ^ 6, &[128, 128, 5], 2048, 3000, 128),
        check_embed::<f32>(gpu, seed ^ 7, &[7, 1], 100, 37, 0),
        check_embed_bad_ids::<f32>(gpu, seed ^ 8),
        check_embed_grouping::<f32>(gpu, seed ^ 9, &[40, 17, 128, 3], 1),
        check_embed_mirrored(gpu, seed ^ 10, &[40, 17], 576, 1000, 16),
        check_embed_mirrored(gpu, seed ^ 11, &[128, 1, 5], 2048, 3000, 128),
    ]
}

/// `embed_segment_f32_mirrored`: the f32 rows as `embed_segment_f32` writes them (bitwise; the reference, tolerance
/// 0), the bf16 mirror the same values (bf16 → f32 exact, so compared as f32), and neither buffer written outside the
/// spans' rows (both poisoned before).
pub fn check_embed_mirrored(
    gpu: &Gpu,
    seed: u64,
    rows: &[usize],
    d: usize,
    vocab: usize,
    mem_rows: usize,
) -> Result<Check, KernelError> {
    let case = Case::new(seed, rows, d, vocab, mem_rows);
    let plain = case.run::<f32>(gpu, &case.layout.spans)?;
    let (hidden, mirror) = case.run_mirrored(gpu)?;
    let (mut got, mut want) = (Vec::new(), Vec::new());
    for s in &case.layout.spans {
        let r = case.reference(&case.ids, s);
        got.extend(gather(&hidden, d, s.out_row, s.rows + mem_rows, 0, d));
        got.extend(gather(&mirror, d, s.out_row, s.rows + mem_rows, 0, d));
        want.extend(r.iter().copied());
        want.extend(r);
    }
    let shape = format!("{} (f32 rows, then the bf16 mirror)", case.describe());
    let check = compare("embed_segment_f32_mirrored", shape, &got, &want, 0.0);
    let strays = changed_outside(&hidden, &case.regions(), |_| poison_bits::<f32>())
        + changed_outside(&mirror, &case.regions(), |_| poison_bits::<bf16>());
    let check = fail_if(check, strays, "writes outside the spans");
    Ok(fail_if(
        check,
        super::harness::differing_bits(&hidden, &plain),
        "f32 rows differ from embed_segment_f32's",
    ))
}
