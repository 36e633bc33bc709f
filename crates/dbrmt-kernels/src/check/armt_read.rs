//! `armt_read_apply_bf16` and `armt_read_apply_f32` (bf16 or f32 hidden rows) against
//! [`reference::armt_read::read_apply`](crate::reference::armt_read::read_apply), each also run as the only span of a
//! launch and compared bit for bit with the same cell inside a launch of four.
//!
//! The inputs are shaped like the real ones: φ comes from [`dpfp`] of random vectors, `z` is positive and large
//! (`|N(0,1)|·5 + 1`, a normaliser that has accumulated several segments, [`positive_z`]), and the numerators `φ·A`
//! are drawn so that `num / den` is O(1) like `h` (a read term far below `h`'s bf16 resolution would test nothing).
//!
//! Tolerances: on bf16 rows [`BF16_OUT_TOL`] (the output rounding alone is up to 2⁻⁹ relative, while the f32
//! arithmetic before it agrees with the reference to ~1e-6; any wrong row, state or column is an O(1) error, since
//! the read term is O(1)), plus [`READ_ROUNDED_TOL`] against the reference rounded as the kernel rounds; on f32 rows
//! [`F32_OUT_TOL`] (the denominator is a dot product over D ≤ 768 positive terms reduced in a tree in f32 against the
//! reference's f64, relative difference ≲ 1e-6, then one division and one add, each within half an ulp).

use half::bf16;

use super::harness::{
    bitwise, changed_outside, compare, download_hidden, f32_normal, fail_if, gather, hidden_normal, put, round_bf16,
    upload_f32, upload_hidden, Check, Layout, SplitMix64, BF16_OUT_TOL, F32_OUT_TOL,
};
use crate::armt_read::{armt_read_apply, kernel as read_kernel};
use crate::reference::armt_read::read_apply;
use crate::reference::dpfp::dpfp;
use crate::reference::ARMT_EPS;
use crate::{Gpu, HiddenElem, KernelError};

/// `h` against the reference rounded to bf16 as the kernel rounds it: the f32 values before the rounding agree to
/// ~1e-6 relative, so only the rare element within that distance of a rounding boundary differs, by one bf16 ulp
/// (measured ~1e-5 in the norm). 1e-3 is the bound that catches an error of the read term far below [`BF16_OUT_TOL`]
/// (which the output rounding alone nearly fills): 0.1 % of the read term already exceeds it.
pub const READ_ROUNDED_TOL: f64 = 1e-3;

/// DPFP order of the original ARMT code.
pub(super) const NU: usize = 3;

/// One cell of the read: φ `[rows, D]`, num `[rows, d]`, h `[rows, d]` (values of the hidden rows' type), z `[D]`.
struct ReadCell {
    phi: Vec<f32>,
    num: Vec<f32>,
    h: Vec<f32>,
    z: Vec<f32>,
}

fn read_cell<H: HiddenElem>(rng: &mut SplitMix64, rows: usize, d: usize, d_mem: usize) -> ReadCell {
    let dk = 2 * NU * d_mem;
    let u = f32_normal(rng, rows * d_mem, 1.0);
    let mut phi = vec![0.0f32; rows * dk];
    dpfp(&u, d_mem, NU, &mut phi);
    let z = positive_z(rng, dk);
    let h = hidden_normal::<H>(rng, rows * d, 1.0);
    let mut num = Vec::with_capacity(rows * d);
    for q in phi.chunks_exact(dk) {
        let den = dot64(q, &z) + ARMT_EPS as f64;
        num.extend((0..d).map(|_| (rng.normal() * den) as f32));
    }
    ReadCell { phi, num, h, z }
}

/// `armt_read_apply_<H>` on one cell per entry of `rows` (d columns, `h_pad` extra columns in h's row stride), against
/// [`read_apply`] on the same `h`. For bf16 rows two checks: against the f32 reference ([`BF16_OUT_TOL`]) and against it
/// rounded to bf16 ([`READ_ROUNDED_TOL`]); for f32 rows one, against the f32 reference ([`F32_OUT_TOL`]).
pub fn check_read_apply<H: HiddenElem>(
    gpu: &Gpu,
    seed: u64,
    d: usize,
    d_mem: usize,
    rows: &[usize],
    h_pad: usize,
) -> Result<Vec<Check>, KernelError> {
    let mut rng = SplitMix64::new(seed);
    let cells: Vec<ReadCell> = rows.iter().map(|&r| read_cell::<H>(&mut rng, r, d, d_mem)).collect();
    let cell_refs: Vec<&ReadCell> = cells.iter().collect();
    let layout = Layout::cells(rows, 1);
    let h_ld = d + h_pad;
    let (h_in, h_out) = run_read::<H>(gpu, &mut rng, &cell_refs, &layout, d, d_mem, h_ld)?;
    let (mut got, mut want, mut before) = (Vec::new(), Vec::new(), Vec::new());
    for (i, c) in cells.iter().enumerate() {
        let mut h = c.h.clone();
        read_apply(&mut h, &c.num, &c.phi, &c.z);
        want.extend(h);
        before.extend(&c.h);
        got.extend(gather(&h_out, h_ld, layout.spans[i].out_row, rows[i], 0, d));
    }
    let strays = changed_outside(&h_out, &layout.out_blocks(h_ld, d, 0), |e| h_in[e].to_bits());
    // How much the read moves h: the check is only meaningful if this is far above BF16_OUT_TOL.
    let signal = compare("", String::new(), &before, &want, 0.0).rel_err;
    let shape = format!("d={d} d_mem={d_mem} rows={rows:?} h_ld={h_ld} |read|/|h|={signal:.2}");
    let name = read_kernel::<H>().entry;
    let tol = H::pick(BF16_OUT_TOL, F32_OUT_TOL);
    let mut check = fail_if(compare(name, shape.clone(), &got, &want, tol), strays, "stray writes");
    if signal < 10.0 * BF16_OUT_TOL {
        check.rel_err = f64::INFINITY;
        check.shape += " READ TERM TOO SMALL TO TEST";
    }
    if H::pick(false, true) {
        // f32 rows: nothing is rounded, so there is no rounded reference to compare with.
        return Ok(vec![check]);
    }
    let rounded: Vec<f32> = want.iter().map(|&x| round_bf16(x)).collect();
    let shape = format!("{shape} vs bf16(ref)");
    let rounded_check = fail_if(
        compare(name, shape, &got, &rounded, READ_ROUNDED_TOL),
        strays,
        "stray writes",
    );
    Ok(vec![check, rounded_check])
}

/// Cell `alone` of a launch of `rows.len()` cells, run again as the only span of a launch (other rows, other state
/// index): its h rows (of type `H`) must be the same bits.
pub fn check_read_apply_grouping<H: HiddenElem>(
    gpu: &Gpu,
    seed: u64,
    d: usize,
    d_mem: usize,
    rows: &[usize],
    alone: usize,
) -> Result<Check, KernelError> {
    let mut rng = SplitMix64::new(seed);
    let cells: Vec<ReadCell> = rows.iter().map(|&r| read_cell::<H>(&mut rng, r, d, d_mem)).collect();
    let cell_refs: Vec<&ReadCell> = cells.iter().collect();
    let group = Layout::cells(rows, 1);
    let (_, h) = run_read::<H>(gpu, &mut rng, &cell_refs, &group, d, d_mem, d)?;
    let grouped = gather(&h, d, group.spans[alone].out_row, rows[alone], 0, d);
    let single = Layout::cells(&rows[alone..=alone], 3);
    let (_, h) = run_read::<H>(gpu, &mut rng, &cell_refs[alone..=alone], &single, d, d_mem, d)?;
    let by_itself = gather(&h, d, single.spans[0].out_row, rows[alone], 0, d);
    let shape = format!("alone vs {} spans: cell {alone} of rows={rows:?} d={d}", rows.len());
    Ok(bitwise(read_kernel::<H>().entry, shape, &by_itself, &grouped))
}

/// One launch of [`armt_read_apply`] over `cells` placed by `layout` (random rows and states around them), h stored as
/// `H`; returns the whole h buffer before and after (as f32, exact).
fn run_read<H: HiddenElem>(
    gpu: &Gpu,
    rng: &mut SplitMix64,
    cells: &[&ReadCell],
    layout: &Layout,
    d: usize,
    d_mem: usize,
    h_ld: usize,
) -> Result<(Vec<f32>, Vec<f32>), KernelError> {
    let stream = gpu.stream();
    let dk = 2 * NU * d_mem;
    let mut num = f32_normal(rng, layout.in_rows * d, 1.0);
    let mut phi = f32_normal(rng, layout.in_rows * dk, 1.0);
    let mut h = hidden_normal::<H>(rng, layout.out_rows * h_ld, 1.0);
    let mut z = positive_z(rng, layout.slots * dk);
    for (i, c) in cells.iter().enumerate() {
        put(&mut num, d, layout.spans[i].in_row, &c.num, d);
        put(&mut phi, dk, layout.spans[i].in_row, &c.phi, dk);
        put(&mut h, h_ld, layout.spans[i].out_row, &c.h, d);
        put(&mut z, dk, layout.spans[i].state, &c.z, dk);
    }
    let (num_d, phi_d, z_d) = (
        upload_f32(stream, &num)?,
        upload_f32(stream, &phi)?,
        upload_f32(stream, &z)?,
    );
    let mut h_d = upload_hidden::<H>(stream, &h)?;
    armt_read_apply(gpu, stream, &num_d, &phi_d, &z_d, &mut h_d, h_ld, &layout.spans, d, dk)?;
    Ok((h, download_hidden(stream, &h_d)?))
}

/// Every read check: d = 128, 576, 2048 (d_mem 16, 32, 64; spans of unequal rows that are not multiples of anything,
/// a single-row span, a short last segment, a padded h stride) on bf16 and on f32 hidden rows, and one grouping check
/// (alone vs in a launch of four, bitwise) per hidden type.
pub fn checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    let s = |i: u64| seed.wrapping_add(i);
    let mut out = Vec::new();
    let read_shapes = [
        (128, 16, &[1, 77, 160][..], 0),
        (576, 32, &[300, 129, 45][..], 8),
        (2048, 64, &[1152, 1152, 300][..], 0),
    ];
    for (i, &(d, d_mem, rows, h_pad)) in read_shapes.iter().enumerate() {
        match check_read_apply::<bf16>(gpu, s(i as u64), d, d_mem, rows, h_pad) {
            Ok(pair) => out.extend(pair.into_iter().map(Ok)),
            Err(e) => out.push(Err(e)),
        }
    }
    out.push(check_read_apply_grouping::<bf16>(
        gpu,
        s(3),
        576,
        32,
        &[129, 64, 300, 7],
        2,
    ));
    for (i, &(d, d_mem, rows, h_pad)) in read_shapes.iter().enumerate() {
        match check_read_apply::<f32>(gpu, s(50 + i as u64), d, d_mem, rows, h_pad) {
            Ok(one) => out.extend(one.into_iter().map(Ok)),
            Err(e) => out.push(Err(e)),
        }
    }
    out.push(check_read_apply_grouping::<f32>(
        gpu,
        s(53),
        576,
        32,
        &[129, 64, 300, 7],
        2,
    ));
    out
}

/// A normaliser state after a few segments: positive, |N(0,1)|·5 + 1.
pub(super) fn positive_z(rng: &mut SplitMix64, n: usize) -> Vec<f32> {
    (0..n).map(|_| (rng.normal().abs() * 5.0 + 1.0) as f32).collect()
}

/// Dot product in f64.
pub(super) fn dot64(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_term_is_of_the_order_of_h() {
        let mut rng = SplitMix64::new(7);
        let c = read_cell::<bf16>(&mut rng, 50, 128, 16);
        let mut h = c.h.clone();
        read_apply(&mut h, &c.num, &c.phi, &c.z);
        let rel = compare("", String::new(), &c.h, &h, 0.0).rel_err;
        assert!(rel > 0.5 && rel < 2.0, "{rel}");
    }
}
