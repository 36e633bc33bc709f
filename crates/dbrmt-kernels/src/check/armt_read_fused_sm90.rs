//! The fused read (`cuda/armt_read_fused_sm90.cu`) against
//! [`reference::armt_read::read_from_u`](crate::reference::armt_read::read_from_u) (DPFP, the f32 product with the
//! state, then `h += num / (φ·z + ε)`), on fresh random inputs at the engine's layout: each cell its own u rows
//! (NaN rows between cells: a tile overhanging a cell reads them, and they must reach no stored row), its own state
//! `A`, `z` (states out of order, unused states around them), its hidden rows in reverse order with rows between them
//! that must not change, and f32 outputs within [`F32_OUT_TOL`]. Bitwise: a cell alone against the same cell inside
//! the launch, and a single row launched alone (as a decoded row is; with the decode tiles on, at the narrow column
//! width the launcher picks for one row) against the same row inside its whole span (128-wide tiles); and the same
//! launch at every column tile width ([`READ_WIDTHS`]) byte for byte ([`check_read_fused_widths`]: the launcher may
//! choose the width by rows only because of it). The tf32 + bf16 read of a pre-split state (the state through
//! [`armt_state_split`] first, then the `_split` entries: [`Variant::pre`]) is checked the same way, and its bytes
//! against the f32 state's at every width.
//!
//! Inputs: u ~ N(0, 1) (as `h·W_qᵀ` of normed rows), `A` ~ N(0, 30²) and `z` positive and large
//! ([`positive_z`]), so that the read term `num / den` is O(1) like `h` (a read far below `h` would test nothing: the
//! check fails if it moves `h` by less than 10% in the norm). Tolerance: [`F32_OUT_TOL`]; the product's error is
//! ~3e-7 (3×TF32) or ~1e-6 (tf32 + bf16 corrections) relative to `num`, the denominator an f32 fma chain against the
//! reference's f64 dot (≲ 1e-6), the division correctly rounded, then one add.

use super::armt_read::positive_z;
use super::armt_state_split::SPLIT_POISON;
use super::harness::{
    bitwise, changed_outside, compare, download_f32, f32_normal, fail_if, gather, put, upload_f32, Check, Layout,
    SplitMix64, F32_OUT_TOL,
};
use crate::armt_read_fused_sm90::armt_read_fused_sm90_q;
use crate::armt_read_fused_sm90::{
    armt_read_fused_sm90, armt_read_fused_sm90_at, ReadShape, ReadSplit, ReadState, READ_WIDTHS,
};
use crate::armt_state_split::{armt_state_split, split_len};
use crate::gemm::GemmGroup;
use crate::gemm_sm90::gemm_sm90_nt_bf16_bf16_f32;
use crate::params::Span;
use crate::reference::armt_read::read_from_u;
use crate::{Gpu, KernelError};

/// Standard deviation of the state `A`: makes `num / den` O(1) for u ~ N(0, 1) and z ≈ 5 (see the module doc).
const A_STD: f64 = 30.0;

/// What a check launches: the split, and whether the state is split first ([`armt_state_split`]) and read by the
/// pre-split entries (tf32 + bf16 only) or read as f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    pub split: ReadSplit,
    pub pre: bool,
}

impl Variant {
    const fn f32(split: ReadSplit) -> Self {
        Self { split, pre: false }
    }

    /// The name a check reports.
    fn entry(self) -> &'static str {
        match self.pre {
            true => "armt_read_fused_sm90_split_f32",
            false => self.split.entry(),
        }
    }
}

/// One reading cell: u `[rows, d_mem]`, its state `A` `[D, d]` and `z` `[D]`, its hidden rows `[rows, d]`.
struct Cell {
    u: Vec<f32>,
    a: Vec<f32>,
    z: Vec<f32>,
    h: Vec<f32>,
}

fn cell(rng: &mut SplitMix64, rows: usize, shape: ReadShape) -> Cell {
    let (d, dk) = (shape.d, shape.d_key());
    Cell {
        u: f32_normal(rng, rows * shape.d_mem, 1.0),
        a: f32_normal(rng, dk * d, A_STD),
        z: positive_z(rng, dk),
        h: f32_normal(rng, rows * d, 1.0),
    }
}

/// The reference: `cell.h` after the read.
fn expected(c: &Cell, shape: ReadShape) -> Vec<f32> {
    let mut h = c.h.clone();
    read_from_u(&mut h, &c.u, &c.a, &c.z, shape.d_mem, shape.nu);
    h
}

/// One launch over `cells` placed by `layout` (spans as given, e.g. narrowed to one row) at column tile width `at`
/// (`None`: the launcher's choice); returns the whole h buffer (row stride `h_ld`) before and after.
fn run(
    gpu: &Gpu,
    rng: &mut SplitMix64,
    (cells, layout, spans): (&[&Cell], &Layout, &[Span]),
    shape: ReadShape,
    (h_ld, at): (usize, Option<usize>),
    v: Variant,
) -> Result<(Vec<f32>, Vec<f32>), KernelError> {
    let stream = gpu.stream();
    let (d, dm, dk) = (shape.d, shape.d_mem, shape.d_key());
    let mut u = vec![f32::NAN; layout.in_rows * dm];
    let mut a = f32_normal(rng, layout.slots * dk * d, A_STD);
    let mut z = positive_z(rng, layout.slots * dk);
    let mut h = f32_normal(rng, layout.out_rows * h_ld, 1.0);
    for (c, s) in cells.iter().zip(&layout.spans) {
        put(&mut u, dm, s.in_row, &c.u, dm);
        put(&mut a, d, s.state * dk, &c.a, d);
        put(&mut z, dk, s.state, &c.z, dk);
        put(&mut h, h_ld, s.out_row, &c.h, d);
    }
    let (u_d, a_d, z_d) = (
        upload_f32(stream, &u)?,
        upload_f32(stream, &a)?,
        upload_f32(stream, &z)?,
    );
    let mut h_d = upload_f32(stream, &h)?;
    let (u_in, h_out) = ((&u_d, dm), (&mut h_d, h_ld));
    let pre_split = match v.pre {
        true => {
            let mut out = stream.clone_htod(&vec![SPLIT_POISON; split_len(layout.slots, dk, d)])?;
            let states: Vec<usize> = layout.spans.iter().map(|s| s.state).collect();
            armt_state_split(gpu, stream, &a_d, &mut out, &states, dk, d)?;
            Some(out)
        }
        false => None,
    };
    let state = match &pre_split {
        Some(s) => ReadState::Split(s),
        None => ReadState::F32(&a_d),
    };
    let split = v.split;
    match at {
        Some(w) => armt_read_fused_sm90_at(gpu, stream, u_in, state, &z_d, h_out, spans, shape, split, w)?,
        None => armt_read_fused_sm90(gpu, stream, u_in, state, &z_d, h_out, spans, shape, split)?,
    }
    Ok((h, download_f32(stream, &h_d)?))
}

fn describe(shape: ReadShape, v: Variant) -> String {
    let pre = if v.pre { " pre-split" } else { "" };
    format!("d={} d_mem={} nu={} {:?}{pre}", shape.d, shape.d_mem, shape.nu, v.split)
}

/// One launch of cells of `rows` rows (h stride `d + h_pad`) against the reference, f32 tolerance, no stray writes.
pub fn check_read_fused(
    gpu: &Gpu,
    seed: u64,
    shape: ReadShape,
    rows: &[usize],
    h_pad: usize,
    v: Variant,
) -> Result<Check, KernelError> {
    let mut rng = SplitMix64::new(seed);
    let cells: Vec<Cell> = rows.iter().map(|&r| cell(&mut rng, r, shape)).collect();
    let refs: Vec<&Cell> = cells.iter().collect();
    let layout = Layout::cells(rows, 1);
    let (d, h_ld) = (shape.d, shape.d + h_pad);
    let (before, after) = run(gpu, &mut rng, (&refs, &layout, &layout.spans), shape, (h_ld, None), v)?;
    let (mut got, mut want, mut old) = (Vec::new(), Vec::new(), Vec::new());
    for (c, s) in cells.iter().zip(&layout.spans) {
        want.extend(expected(c, shape));
        old.extend(&c.h);
        got.extend(gather(&after, h_ld, s.out_row, s.rows, 0, d));
    }
    let strays = changed_outside(&after, &layout.out_blocks(h_ld, d, 0), |e| before[e].to_bits());
    let signal = compare("", String::new(), &old, &want, 0.0).rel_err;
    let name = v.entry();
    let what = format!(
        "{} rows={rows:?} h_ld={h_ld} |read|/|h|={signal:.2}",
        describe(shape, v)
    );
    let mut check = fail_if(compare(name, what, &got, &want, F32_OUT_TOL), strays, "stray writes");
    if signal < 0.1 {
        check.rel_err = f64::INFINITY;
        check.shape += " READ TERM TOO SMALL TO TEST";
    }
    Ok(check)
}

/// Cell `alone` of a launch of `rows.len()` cells, run again as the only cell of a launch (other rows, another state
/// slot): its hidden rows must have the same bits.
pub fn check_read_fused_grouping(
    gpu: &Gpu,
    seed: u64,
    shape: ReadShape,
    rows: &[usize],
    alone: usize,
    v: Variant,
) -> Result<Check, KernelError> {
    let mut rng = SplitMix64::new(seed);
    let cells: Vec<Cell> = rows.iter().map(|&r| cell(&mut rng, r, shape)).collect();
    let refs: Vec<&Cell> = cells.iter().collect();
    let d = shape.d;
    let group = Layout::cells(rows, 1);
    let (_, h) = run(gpu, &mut rng, (&refs, &group, &group.spans), shape, (d, None), v)?;
    let grouped = gather(&h, d, group.spans[alone].out_row, rows[alone], 0, d);
    let single = Layout::cells(&rows[alone..=alone], 3);
    let one = &refs[alone..=alone];
    let (_, h) = run(gpu, &mut rng, (one, &single, &single.spans), shape, (d, None), v)?;
    let by_itself = gather(&h, d, single.spans[0].out_row, rows[alone], 0, d);
    let what = format!(
        "{} alone vs {} cells: cell {alone} of rows={rows:?}",
        describe(shape, v),
        rows.len()
    );
    Ok(bitwise(v.entry(), what, &by_itself, &grouped))
}

/// Row `k` of a cell of `rows` rows, launched as a span of one row (first in its tile, as a decoded row runs): the
/// same bits as inside the whole span (where it sits at tile row `k % 128`).
pub fn check_read_fused_row_position(
    gpu: &Gpu,
    seed: u64,
    shape: ReadShape,
    rows: usize,
    k: usize,
    v: Variant,
) -> Result<Check, KernelError> {
    let mut rng = SplitMix64::new(seed);
    let c = cell(&mut rng, rows, shape);
    let layout = Layout::cells(&[rows], 1);
    let d = shape.d;
    let s = layout.spans[0];
    let (_, whole) = run(
        gpu,
        &mut rng.clone(),
        (&[&c], &layout, &layout.spans),
        shape,
        (d, None),
        v,
    )?;
    let row = Span {
        in_row: s.in_row + k,
        out_row: s.out_row + k,
        rows: 1,
        ..s
    };
    let (_, single) = run(gpu, &mut rng, (&[&c], &layout, &[row]), shape, (d, None), v)?;
    let what = format!("{} row {k} of {rows} alone vs in its span", describe(shape, v));
    Ok(bitwise(
        v.entry(),
        what,
        &gather(&single, d, s.out_row + k, 1, 0, d),
        &gather(&whole, d, s.out_row + k, 1, 0, d),
    ))
}

/// One launch of cells of `rows` rows (h stride `d + 4`) at every column tile width of [`READ_WIDTHS`], the same
/// inputs each time, reading the f32 state and, for the tf32 + bf16 split, also the pre-split state (`v.pre` is not
/// used: both forms run): the first launch against the reference (f32 tolerance), every launch's whole h buffer
/// bitwise against the first's (the cells' rows and the rows around them), no stray writes.
pub fn check_read_fused_widths(
    gpu: &Gpu,
    seed: u64,
    shape: ReadShape,
    rows: &[usize],
    v: Variant,
) -> Result<Check, KernelError> {
    let mut rng = SplitMix64::new(seed);
    let cells: Vec<Cell> = rows.iter().map(|&r| cell(&mut rng, r, shape)).collect();
    let refs: Vec<&Cell> = cells.iter().collect();
    let layout = Layout::cells(rows, 1);
    let (d, h_ld) = (shape.d, shape.d + 4);
    let forms: &[bool] = match v.split {
        ReadSplit::Tf32Bf16 => &[false, true],
        ReadSplit::Tf32x3 => &[false],
    };
    let mut outs = Vec::new();
    for &pre in forms {
        for w in READ_WIDTHS {
            let lay = (&refs[..], &layout, &layout.spans[..]);
            let form = Variant { split: v.split, pre };
            outs.push(((w, pre), run(gpu, &mut rng.clone(), lay, shape, (h_ld, Some(w)), form)?));
        }
    }
    let (before, first) = &outs[0].1;
    let (mut got, mut want) = (Vec::new(), Vec::new());
    for (c, s) in cells.iter().zip(&layout.spans) {
        want.extend(expected(c, shape));
        got.extend(gather(first, h_ld, s.out_row, s.rows, 0, d));
    }
    let blocks = layout.out_blocks(h_ld, d, 0);
    let mut strays = 0;
    let (mut differing, mut which) = (0, Vec::new());
    for (at, (_, after)) in &outs {
        strays += changed_outside(after, &blocks, |e| before[e].to_bits());
        let n = super::harness::differing_bits(after, first);
        if n > 0 {
            differing += n;
            which.push(*at);
        }
    }
    let what = format!(
        "{} rows={rows:?} column tiles {READ_WIDTHS:?}, pre-split {forms:?} (ref: {}; bitwise: all)",
        describe(shape, Variant::f32(v.split)),
        READ_WIDTHS[0]
    );
    let check = fail_if(
        compare(v.entry(), what, &got, &want, F32_OUT_TOL),
        strays,
        "stray writes",
    );
    Ok(fail_if(
        check,
        differing,
        &format!(
            "elements differ in bits from width {} at (width, pre-split) {which:?}",
            READ_WIDTHS[0]
        ),
    ))
}

/// The checks of one variant: the Llama-3.2-1B shape (cells of 1152, 300, 129 and 1 rows), LLaMA-160M's (d = 768),
/// d_mem 32 with a width that is no multiple of the 128-column tile (d = 200) and a padded h stride; grouping and row
/// position bitwise.
fn checks_of(gpu: &Gpu, seed: u64, v: Variant) -> Vec<Result<Check, KernelError>> {
    let s = |i: u64| seed.wrapping_add(i);
    let b1 = ReadShape {
        d: 2048,
        d_mem: 64,
        nu: 3,
    };
    let m160 = ReadShape { d: 768, ..b1 };
    let small = ReadShape {
        d: 200,
        d_mem: 32,
        nu: 3,
    };
    vec![
        check_read_fused(gpu, s(0), b1, &[1152, 1, 300, 129], 0, v),
        check_read_fused(gpu, s(1), m160, &[640, 77, 5], 4, v),
        check_read_fused(gpu, s(2), small, &[1, 200, 64, 130], 8, v),
        check_read_fused_grouping(gpu, s(3), m160, &[129, 64, 300, 7], 2, v),
        check_read_fused_row_position(gpu, s(4), b1, 300, 201, v),
    ]
}

/// The column-width checks of a variant: the 1B shape with cells of 1, 7, 64 and 129 rows, and d = 200 (not a
/// multiple of 32) with d_mem 32 (every width, both state forms of the tf32 + bf16 split); and the last row of a
/// 1152-row cell alone (the launcher's narrow width) against it inside the cell.
fn width_checks_of(gpu: &Gpu, seed: u64, v: Variant) -> Vec<Result<Check, KernelError>> {
    let b1 = ReadShape {
        d: 2048,
        d_mem: 64,
        nu: 3,
    };
    let small = ReadShape {
        d: 200,
        d_mem: 32,
        nu: 3,
    };
    vec![
        check_read_fused_widths(gpu, seed, b1, &[1, 7, 64, 129], v),
        check_read_fused_widths(gpu, seed.wrapping_add(1), small, &[1, 64, 130], v),
        decoded_row(gpu, seed.wrapping_add(2), v),
    ]
}

/// The last row of a 1152-row cell of the 1B shape launched alone (a decoded row: the launcher's narrow width)
/// against the same row inside its cell, bitwise.
fn decoded_row(gpu: &Gpu, seed: u64, v: Variant) -> Result<Check, KernelError> {
    let b1 = ReadShape {
        d: 2048,
        d_mem: 64,
        nu: 3,
    };
    check_read_fused_row_position(gpu, seed, b1, 1152, 1151, v)
}

/// The decode read with its own q projection (`armt_read_fused_sm90_split_q_n32_f32`) against the two launches it
/// replaces — the q GEMM (`gemm_sm90_nt_bf16_bf16_f32`, the engine's) into u, then the pre-split read at 32 columns —
/// on the same bf16 rows, `W_mq` of 3 layers and states: the whole h buffer bitwise (decode == prefill rests on it),
/// and against the reference within the f32 tolerance through the GEMM's u.
pub fn check_read_fused_q(gpu: &Gpu, seed: u64, shape: ReadShape, rows: &[usize]) -> Result<Check, KernelError> {
    const ENTRY: &str = "armt_read_fused_sm90_split_q_n32_f32";
    let mut rng = SplitMix64::new(seed);
    let stream = gpu.stream();
    let (d, dm, dk) = (shape.d, shape.d_mem, shape.d_key());
    let layers = 3;
    let mut layout = Layout::cells(rows, 1);
    for (i, s) in layout.spans.iter_mut().enumerate() {
        s.layer = (i * 2 + 1) % layers;
    }
    let x = f32_normal(&mut rng, layout.in_rows * d, 1.0);
    let w = f32_normal(&mut rng, layers * dm * d, 1.0 / (d as f64).sqrt());
    let a = f32_normal(&mut rng, layout.slots * dk * d, A_STD);
    let z = positive_z(&mut rng, layout.slots * dk);
    let h = f32_normal(&mut rng, layout.out_rows * d, 1.0);
    let (x_d, w_d) = (
        super::harness::upload_bf16(stream, &x)?,
        super::harness::upload_bf16(stream, &w)?,
    );
    let (a_d, z_d) = (upload_f32(stream, &a)?, upload_f32(stream, &z)?);
    let mut split = stream.clone_htod(&vec![SPLIT_POISON; split_len(layout.slots, dk, d)])?;
    let states: Vec<usize> = layout.spans.iter().map(|s| s.state).collect();
    armt_state_split(gpu, stream, &a_d, &mut split, &states, dk, d)?;
    // the two launches: the q GEMM, then the read
    let mut u_d = upload_f32(stream, &vec![f32::NAN; layout.in_rows * dm])?;
    let groups: Vec<GemmGroup> = layout
        .spans
        .iter()
        .map(|s| GemmGroup {
            a_offset: s.in_row * d,
            b_offset: s.layer * dm * d,
            c_offset: s.in_row * dm,
            m: s.rows,
            n: dm,
            k: d,
            lda: d,
            ldb: d,
            ldc: dm,
        })
        .collect();
    gemm_sm90_nt_bf16_bf16_f32(gpu, stream, &x_d, &w_d, &mut u_d, &groups, false)?;
    let mut h2 = upload_f32(stream, &h)?;
    crate::armt_read_fused_sm90::armt_read_fused_sm90_at(
        gpu,
        stream,
        (&u_d, dm),
        ReadState::Split(&split),
        &z_d,
        (&mut h2, d),
        &layout.spans,
        shape,
        ReadSplit::Tf32Bf16,
        32,
    )?;
    let two = download_f32(stream, &h2)?;
    // the one launch
    let mut h1 = upload_f32(stream, &h)?;
    armt_read_fused_sm90_q(
        gpu,
        stream,
        (&x_d, d),
        &w_d,
        &split,
        &z_d,
        (&mut h1, d),
        &layout.spans,
        shape,
    )?;
    let one = download_f32(stream, &h1)?;
    // the reference through the GEMM's u
    let u = download_f32(stream, &u_d)?;
    let (mut got, mut want) = (Vec::new(), Vec::new());
    for s in &layout.spans {
        let mut hc = gather(&h, d, s.out_row, s.rows, 0, d);
        let uc = gather(&u, dm, s.in_row, s.rows, 0, dm);
        let ac = gather(&a, d, s.state * dk, dk, 0, d);
        let zc = &z[s.state * dk..(s.state + 1) * dk];
        read_from_u(&mut hc, &uc, &ac, zc, dm, shape.nu);
        want.extend(hc);
        got.extend(gather(&one, d, s.out_row, s.rows, 0, d));
    }
    let what = format!(
        "{} rows={rows:?} fused q vs q GEMM + read (bitwise), ref",
        describe(shape, PRE_SPLIT)
    );
    let check = compare(ENTRY, what, &got, &want, F32_OUT_TOL);
    Ok(fail_if(
        check,
        super::harness::differing_bits(&one, &two),
        "elements differ in bits from the two launches",
    ))
}

const TF32BF16: Variant = Variant::f32(ReadSplit::Tf32Bf16);
const PRE_SPLIT: Variant = Variant {
    split: ReadSplit::Tf32Bf16,
    pre: true,
};

/// The column-width checks of both splits and of the pre-split state (decode steps take the narrow widths).
pub fn width_checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    let mut out = width_checks_of(gpu, seed, TF32BF16);
    out.extend(width_checks_of(
        gpu,
        seed.wrapping_add(10),
        Variant::f32(ReadSplit::Tf32x3),
    ));
    out.push(decoded_row(gpu, seed.wrapping_add(20), PRE_SPLIT));
    out
}

/// Every shape and width of a variant.
fn suite_of(gpu: &Gpu, seed: u64, v: Variant) -> Vec<Result<Check, KernelError>> {
    let mut out = checks_of(gpu, seed, v);
    out.extend(width_checks_of(gpu, seed.wrapping_add(100), v));
    out
}

/// The fused read (tf32 + bf16) of the f32 state, every shape and width: the GPU tests and `dbrmt selftest`.
pub fn checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    suite_of(gpu, seed, TF32BF16)
}

/// The engine's read: tf32 + bf16 of the pre-split state ([`armt_state_split`] then the `_split` entries), every
/// shape and width: the GPU tests and `dbrmt selftest`.
pub fn checks_pre_split(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    let mut out = checks_of(gpu, seed, PRE_SPLIT);
    out.push(decoded_row(gpu, seed.wrapping_add(100), PRE_SPLIT));
    let b1 = ReadShape {
        d: 2048,
        d_mem: 64,
        nu: 3,
    };
    out.push(check_read_fused_q(gpu, seed.wrapping_add(101), b1, &[1, 1, 7, 64]));
    out.push(check_read_fused_q(
        gpu,
        seed.wrapping_add(102),
        ReadShape { d: 576, ..b1 },
        &[1],
    ));
    out.push(check_read_fused_q(
        gpu,
        seed.wrapping_add(103),
        ReadShape {
            d: 200,
            d_mem: 32,
            nu: 3,
        },
        &[1, 3],
    ));
    out
}

/// The 3×TF32 split (`DBRMT_MEMORY=tf32x3`) at the same shapes, widths and tolerance: the GPU tests and
/// `dbrmt selftest`.
pub fn checks_tf32x3(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    suite_of(gpu, seed, Variant::f32(ReadSplit::Tf32x3))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inputs make the read term O(1) against h at the 1B and small shapes (the check's premise).
    #[test]
    fn read_term_is_of_the_order_of_h() {
        for (shape, rows) in [
            (
                ReadShape {
                    d: 2048,
                    d_mem: 64,
                    nu: 3,
                },
                20,
            ),
            (
                ReadShape {
                    d: 200,
                    d_mem: 32,
                    nu: 3,
                },
                50,
            ),
        ] {
            let mut rng = SplitMix64::new(11);
            let c = cell(&mut rng, rows, shape);
            let rel = compare("", String::new(), &c.h, &expected(&c, shape), 0.0).rel_err;
            assert!(rel > 0.3 && rel < 3.0, "{shape:?}: {rel}");
        }
    }
}
