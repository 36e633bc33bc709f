//! `dpfp_f32` against [`reference::dpfp::dpfp`](crate::reference::dpfp::dpfp).

use super::harness::{
    bitwise, changed_outside, compare, download_f32, f32_normal, fail_if, gather, poisoned_f32, upload_f32, Check,
    Layout, SplitMix64, F32_OUT_TOL,
};
use crate::dpfp::dpfp;
use crate::reference::dpfp::dpfp as dpfp_ref;
use crate::{Gpu, KernelError};

/// Extra columns of φ's row stride: never written (they stay poisoned, and are counted if they do not).
const PHI_PAD: usize = 3;

/// φ of one launch: one cell per entry of `rows` (its `u` rows `[rows, d_mem]` drawn from N(0, 1)), placed in a
/// `u` of row stride `u_ld` at column `u_col` (the other columns random, never read), in a [`Layout`] with rows
/// between the spans; φ poisoned. Compared over the spans' rows; any write outside them fails the check. Tolerance
/// [`F32_OUT_TOL`]: each feature is one rounded f32 product of the same two f32 values on both sides (relu is exact),
/// so GPU and reference should agree bit for bit; a wrong index gives an O(1) relative error.
pub fn check_dpfp(
    gpu: &Gpu,
    seed: u64,
    d_mem: usize,
    nu: usize,
    rows: &[usize],
    u_ld: usize,
    u_col: usize,
) -> Result<Check, KernelError> {
    let mut rng = SplitMix64::new(seed);
    let cells: Vec<Vec<f32>> = rows.iter().map(|&r| f32_normal(&mut rng, r * d_mem, 1.0)).collect();
    let cell_refs: Vec<&[f32]> = cells.iter().map(Vec::as_slice).collect();
    let layout = Layout::cells(rows, 1);
    let (phi, strays) = run(gpu, &mut rng, &cell_refs, &layout, d_mem, nu, u_ld, u_col)?;
    let dk = 2 * nu * d_mem;
    let (mut got, mut want) = (Vec::new(), Vec::new());
    for (i, cell) in cells.iter().enumerate() {
        got.extend(gather(&phi, dk + PHI_PAD, layout.spans[i].out_row, rows[i], 0, dk));
        let mut r = vec![0.0f32; rows[i] * dk];
        dpfp_ref(cell, d_mem, nu, &mut r);
        want.extend(r);
    }
    let shape = format!("d_mem={d_mem} nu={nu} rows={rows:?} u_ld={u_ld} u_col={u_col}");
    Ok(fail_if(
        compare("dpfp_f32", shape, &got, &want, F32_OUT_TOL),
        strays,
        "stray writes",
    ))
}

/// Cell `alone` of a launch of `rows.len()` cells, run again as the only span of a launch with its rows elsewhere:
/// its φ must be the same bits (tolerance 0).
pub fn check_dpfp_grouping(
    gpu: &Gpu,
    seed: u64,
    d_mem: usize,
    nu: usize,
    rows: &[usize],
    alone: usize,
) -> Result<Check, KernelError> {
    let mut rng = SplitMix64::new(seed);
    let cells: Vec<Vec<f32>> = rows.iter().map(|&r| f32_normal(&mut rng, r * d_mem, 1.0)).collect();
    let cell_refs: Vec<&[f32]> = cells.iter().map(Vec::as_slice).collect();
    let (u_ld, u_col, dk) = (d_mem + 5, 2, 2 * nu * d_mem);
    let group = Layout::cells(rows, 1);
    let (phi, _) = run(gpu, &mut rng, &cell_refs, &group, d_mem, nu, u_ld, u_col)?;
    let grouped = gather(&phi, dk + PHI_PAD, group.spans[alone].out_row, rows[alone], 0, dk);
    let single = Layout::cells(&rows[alone..=alone], 3);
    let (phi, _) = run(
        gpu,
        &mut rng,
        &cell_refs[alone..=alone],
        &single,
        d_mem,
        nu,
        u_ld,
        u_col,
    )?;
    let by_itself = gather(&phi, dk + PHI_PAD, single.spans[0].out_row, rows[alone], 0, dk);
    let shape = format!(
        "alone vs {} spans: cell {alone} of rows={rows:?} d_mem={d_mem}",
        rows.len()
    );
    Ok(bitwise("dpfp_f32", shape, &by_itself, &grouped))
}

/// One launch of [`dpfp`] over `cells` placed by `layout`; returns φ (the whole buffer, row stride D + PHI_PAD) and
/// the number of its elements written outside the spans.
#[allow(clippy::too_many_arguments)]
fn run(
    gpu: &Gpu,
    rng: &mut SplitMix64,
    cells: &[&[f32]],
    layout: &Layout,
    d_mem: usize,
    nu: usize,
    u_ld: usize,
    u_col: usize,
) -> Result<(Vec<f32>, usize), KernelError> {
    let stream = gpu.stream();
    let phi_ld = 2 * nu * d_mem + PHI_PAD;
    let mut host_u = f32_normal(rng, layout.in_rows * u_ld, 1.0);
    for (i, cell) in cells.iter().enumerate() {
        for (r, row) in cell.chunks_exact(d_mem).enumerate() {
            let at = (layout.spans[i].in_row + r) * u_ld + u_col;
            host_u[at..at + d_mem].copy_from_slice(row);
        }
    }
    let u = upload_f32(stream, &host_u)?;
    let mut phi = poisoned_f32(gpu, stream, layout.out_rows * phi_ld)?;
    dpfp(gpu, stream, &u, u_ld, u_col, &mut phi, phi_ld, &layout.spans, d_mem, nu)?;
    let phi = download_f32(stream, &phi)?;
    let strays = changed_outside(&phi, &layout.out_blocks(phi_ld, 2 * nu * d_mem, 0), |_| {
        crate::poison::POISON_F32_BITS
    });
    Ok((phi, strays))
}

/// Every DPFP check: the read's layout (`u` = the `W_q` product, stride d_mem) and the write's (the K columns of the
/// fused product, stride d_mem + d + 1), an offset column, d_mem 16..128 and an odd one, spans of unequal row counts
/// that are not multiples of the block size (one of them empty, one of a single row), and the grouping check.
pub fn checks(gpu: &Gpu, seed: u64) -> Vec<Result<Check, KernelError>> {
    let s = |i: u64| seed.wrapping_add(i);
    vec![
        check_dpfp(gpu, s(0), 16, 3, &[1, 37, 200], 16, 0),
        check_dpfp(gpu, s(1), 32, 3, &[128, 0, 64, 7], 32 + 576 + 1, 0),
        check_dpfp(gpu, s(2), 64, 3, &[300, 129, 5], 64 + 3, 3),
        check_dpfp(gpu, s(3), 128, 3, &[17, 256, 1], 128 + 2048 + 1, 0),
        check_dpfp(gpu, s(4), 5, 2, &[9, 33], 7, 1),
        check_dpfp_grouping(gpu, s(5), 64, 3, &[129, 8, 300, 45], 2),
    ]
}
