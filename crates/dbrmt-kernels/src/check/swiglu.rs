//! `swiglu_bf16` against [`reference::swiglu::swiglu`](crate::reference::swiglu::swiglu).

use half::bf16;

use super::harness::{
    alone_vs_grouped, bf16_normal, changed_outside, compare, fail_if, gather, poison_bits, poisoned_bf16, upload_bf16,
    Block, Check, Layout, SplitMix64, BF16_OUT_TOL,
};
use crate::params::Span;
use crate::reference::swiglu::swiglu as swiglu_ref;
use crate::swiglu::swiglu;
use crate::{Gpu, KernelError};

struct Case {
    layout: Layout,
    inter: usize,
    gu_ld: usize,
    act_ld: usize,
    gu: Vec<f32>,
}

impl Case {
    fn new(seed: u64, rows: &[usize], inter: usize) -> Case {
        let mut rng = SplitMix64::new(seed);
        let layout = Layout::rows(rows, 1, false, 0);
        let (gu_ld, act_ld) = (2 * inter + 4, inter + 3);
        // std 3: gates from deep in silu's negative tail to its linear part.
        let gu = bf16_normal(&mut rng, layout.in_rows * gu_ld, 3.0);
        Case {
            layout,
            inter,
            gu_ld,
            act_ld,
            gu,
        }
    }

    fn describe(&self) -> String {
        let rows: Vec<usize> = self.layout.spans.iter().map(|s| s.rows).collect();
        format!("rows={rows:?} I={}", self.inter)
    }

    fn run(&self, gpu: &Gpu, spans: &[Span]) -> Result<Vec<bf16>, KernelError> {
        let stream = gpu.stream();
        let gu = upload_bf16(stream, &self.gu)?;
        let mut act = poisoned_bf16(gpu, stream, self.layout.out_rows * self.act_ld)?;
        swiglu(gpu, stream, &gu, self.gu_ld, &mut act, self.act_ld, spans, self.inter)?;
        Ok(stream.clone_dtoh(&act)?)
    }
}

/// SwiGLU of one span per entry of `rows` against the f32 reference. Tolerance [`BF16_OUT_TOL`]: the same f32
/// formula (device `expf` and the host's `exp` differ by an ulp or two) rounded once to bf16.
pub fn check_swiglu(gpu: &Gpu, seed: u64, rows: &[usize], inter: usize) -> Result<Check, KernelError> {
    let case = Case::new(seed, rows, inter);
    let act = case.run(gpu, &case.layout.spans)?;
    let (mut got, mut want) = (Vec::new(), Vec::new());
    for s in &case.layout.spans {
        let gate = gather(&case.gu, case.gu_ld, s.in_row, s.rows, 0, inter);
        let up = gather(&case.gu, case.gu_ld, s.in_row, s.rows, inter, inter);
        let mut r = vec![0.0; gate.len()];
        swiglu_ref(&gate, &up, &mut r);
        want.extend(r);
        got.extend(
            gather(&act, case.act_ld, s.out_row, s.rows, 0, inter)
                .into_iter()
                .map(f32::from),
        );
    }
    let check = compare("swiglu_bf16", case.describe(), &got, &want, BF16_OUT_TOL);
    let strays = changed_outside(&act, &case.layout.out_blocks(case.act_ld, inter, 0), |_| {
        poison_bits::<bf16>()
    });
    Ok(fail_if(check, strays, "writes outside the spans"))
}

/// The cell of `rows[target]` launched alone and inside the launch of all `rows`: identical bits.
pub fn check_swiglu_grouping(
    gpu: &Gpu,
    seed: u64,
    rows: &[usize],
    target: usize,
    inter: usize,
) -> Result<Check, KernelError> {
    let case = Case::new(seed, rows, inter);
    alone_vs_grouped(
        "swiglu_bf16",
        case.describe(),
        (&case.layout.spans, target),
        |spans| case.run(gpu, spans),
        |s| Block::rows(case.act_ld, s.out_row, s.rows, 0, inter),
    )
}

/// SwiGLU at SmolLM2's and Llama-3.2-1B's intermediate sizes and at an odd one, short spans included.
pub fn checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    vec![
        check_swiglu(gpu, seed, &[40, 17], 1536),
        check_swiglu(gpu, seed ^ 1, &[3, 130, 1], 8192),
        check_swiglu(gpu, seed ^ 2, &[33, 9, 100], 299),
        check_swiglu_grouping(gpu, seed ^ 3, &[40, 17, 200, 3], 3, 1536),
    ]
}
