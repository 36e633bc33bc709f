//! The norm tail (`cuda/common/norm_tail.cuh`) as the launches that end with it leave it: the rows it wrote must have,
//! bit for bit, what [`rms_norm`] (the launch it replaces; its `_few` entry for these few rows) gives for the same f32
//! rows read back after the launch; nothing of `y` outside the spans changes; the counter is 0 again. The launches'
//! own checks (`check/gemm_sm90.rs`, `check/armt_read_fused_sm90.rs`) also compare their f32 output with the same
//! launch without the tail, bitwise.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream};
use half::bf16;

use super::harness::{
    bf16_normal, changed_outside, differing_bits, download_bf16, poison_bits, poisoned_bf16, round_bf16, upload_bf16,
    Block, SplitMix64,
};
use crate::norm_tail::NormAfter;
use crate::params::Span;
use crate::rms_norm::rms_norm;
use crate::{Gpu, KernelError};

/// The ε of LLaMA's RMSNorm.
const EPS: f32 = 1e-5;

/// A tail's buffers on the device: weights of `layers` rows, poisoned output rows, a zero counter.
#[derive(Debug)]
pub struct Tail {
    pub w: CudaSlice<bf16>,
    pub y: CudaSlice<bf16>,
    pub y_ld: usize,
    pub counter: CudaSlice<u32>,
    /// One a problem: `in_row` its first row of the launch's output, `out_row` its first row of `y`.
    pub spans: Vec<Span>,
    pub d: usize,
}

/// What [`Tail::verify`] found.
#[derive(Debug, Default)]
pub struct TailResult {
    /// The tail's rows and [`rms_norm`]'s, widened to f32 (for the report's error).
    pub got: Vec<f32>,
    pub want: Vec<f32>,
    /// Elements of the spans whose bits differ, of `y` outside them that changed, and whether the counter is not 0.
    pub differing: usize,
    pub strays: usize,
    pub counter_left: bool,
}

impl Tail {
    /// For problems writing rows `(first, rows)` of `d` columns, each normalised with layer `i % layers`'s weights
    /// into its own rows of `y` (in reverse order, one spare row between them: the kernel must use the spans).
    pub fn new(
        gpu: &Gpu,
        stream: &Arc<CudaStream>,
        seed: u64,
        problems: &[(usize, usize)],
        layers: usize,
        d: usize,
    ) -> Result<Tail, KernelError> {
        let mut rng = SplitMix64::new(seed);
        let w: Vec<f32> = bf16_normal(&mut rng, layers * d, 0.2)
            .into_iter()
            .map(|v| round_bf16(1.0 + v))
            .collect();
        let mut out_row = 1;
        let mut spans: Vec<Span> = problems
            .iter()
            .enumerate()
            .rev()
            .map(|(i, &(first, rows))| {
                let s = Span {
                    in_row: first,
                    out_row,
                    rows,
                    layer: (i * 2 + 1) % layers,
                    ..Span::default()
                };
                out_row += rows + 1;
                s
            })
            .collect();
        spans.reverse();
        let y_ld = d + 8;
        Ok(Tail {
            w: upload_bf16(stream, &w)?,
            y: poisoned_bf16(gpu, stream, out_row * y_ld)?,
            y_ld,
            counter: stream.alloc_zeros::<u32>(1)?,
            spans,
            d,
        })
    }

    /// Poisons `y` again (before each launch of a check that launches several times: a tail that did not run must
    /// not pass on the rows of one that did).
    pub fn repoison(&mut self, gpu: &Gpu, stream: &Arc<CudaStream>) -> Result<(), KernelError> {
        self.y = poisoned_bf16(gpu, stream, self.y.len())?;
        Ok(())
    }

    /// The tail as a launcher takes it.
    pub fn after(&mut self) -> NormAfter<'_> {
        NormAfter {
            counter: &mut self.counter,
            w: &self.w,
            y: (&mut self.y, self.y_ld),
            spans: &self.spans,
            eps: EPS,
        }
    }

    /// After the launch: `y` against [`rms_norm`] of the launch's output rows `x` (stride `x_ld`).
    pub fn verify(
        &self,
        gpu: &Gpu,
        stream: &Arc<CudaStream>,
        x: &CudaSlice<f32>,
        x_ld: usize,
    ) -> Result<TailResult, KernelError> {
        let got = download_bf16(stream, &self.y)?;
        let mut y2 = poisoned_bf16(gpu, stream, got.len())?;
        rms_norm(
            gpu,
            stream,
            x,
            x_ld,
            &self.w,
            &mut y2,
            self.y_ld,
            &self.spans,
            self.d,
            EPS,
        )?;
        let want = download_bf16(stream, &y2)?;
        let counter = stream.clone_dtoh(&self.counter)?;
        let blocks: Vec<Block> = self
            .spans
            .iter()
            .map(|s| Block::rows(self.y_ld, s.out_row, s.rows, 0, self.d))
            .collect();
        let gather = |v: &[f32]| -> Vec<f32> { blocks.iter().flat_map(|b| b.gather(v)).collect() };
        let (g, w) = (gather(&got), gather(&want));
        Ok(TailResult {
            differing: differing_bits(&g, &w),
            strays: changed_outside(&got, &blocks, |_| poison_bits::<bf16>()),
            counter_left: counter.iter().any(|&c| c != 0),
            got: g,
            want: w,
        })
    }
}

impl TailResult {
    /// Adds another launch's findings (checks that run several widths or repeats).
    pub fn add(&mut self, other: TailResult) {
        self.got.extend(other.got);
        self.want.extend(other.want);
        self.differing += other.differing;
        self.strays += other.strays;
        self.counter_left |= other.counter_left;
    }

    /// `check` failed where the tail's rows differ from [`rms_norm`]'s, `y` changed outside them, or the counter
    /// was left non-zero.
    pub fn fold(&self, check: super::Check) -> super::Check {
        let check = super::harness::fail_if(check, self.differing, "norm tail elements differ from rms_norm's");
        let check = super::harness::fail_if(check, self.strays, "norm tail writes outside its rows");
        super::harness::fail_if(check, usize::from(self.counter_left), "norm tail counter not reset")
    }
}
