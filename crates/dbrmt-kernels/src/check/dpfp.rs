//! `dpfp_f32` against [`reference::dpfp::dpfp`](crate::reference::dpfp::dpfp).

use super::armt::{bitwise, extract, flag_strays, poisoned_strays, Layout};
use super::{compare, download_f32, poisoned_f32, upload_f32, Check, Rng};
use crate::dpfp::dpfp;
use crate::reference::dpfp::dpfp as dpfp_ref;
use crate::{Gpu, KernelError};

/// Each feature is one rounded f32 product of the same two f32 values on both sides (relu is exact), so GPU and
/// reference should agree bit for bit; the bound is the 1e-5 of every f32 kernel, far below what a wrong index gives
/// (an O(1) relative error).
pub const TOL: f64 = 1e-5;

/// Extra columns of φ's row stride: never written (they stay poisoned, and are counted if they do not).
const PHI_PAD: usize = 3;

/// φ of one launch: one cell per entry of `rows` (its `u` rows `[rows, d_mem]` drawn from N(0, 1)), placed in a
/// `u` of row stride `u_ld` at column `u_col` (the other columns random, never read), in a [`Layout`] with rows
/// between the spans; φ poisoned. Compared over the spans' rows; any write outside them fails the check.
pub fn check_dpfp(
    gpu: &Gpu,
    seed: u64,
    d_mem: usize,
    nu: usize,
    rows: &[usize],
    u_ld: usize,
    u_col: usize,
) -> Result<Check, KernelError> {
    let mut rng = Rng::new(seed);
    let cells: Vec<Vec<f32>> = rows.iter().map(|&r| rng.f32_normal(r * d_mem, 1.0)).collect();
    let cell_refs: Vec<&[f32]> = cells.iter().map(Vec::as_slice).collect();
    let layout = Layout::new(rows, 1);
    let (phi, strays) = run(gpu, &mut rng, &cell_refs, &layout, d_mem, nu, u_ld, u_col)?;
    let dk = 2 * nu * d_mem;
    let (mut got, mut want) = (Vec::new(), Vec::new());
    for (i, cell) in cells.iter().enumerate() {
        got.extend(extract(&phi, dk + PHI_PAD, layout.out_row[i], rows[i], dk));
        let mut r = vec![0.0f32; rows[i] * dk];
        dpfp_ref(cell, d_mem, nu, &mut r);
        want.extend(r);
    }
    let shape = format!("d_mem={d_mem} nu={nu} rows={rows:?} u_ld={u_ld} u_col={u_col}");
    Ok(flag_strays(compare("dpfp_f32", shape, &got, &want, TOL), strays))
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
    let mut rng = Rng::new(seed);
    let cells: Vec<Vec<f32>> = rows.iter().map(|&r| rng.f32_normal(r * d_mem, 1.0)).collect();
    let cell_refs: Vec<&[f32]> = cells.iter().map(Vec::as_slice).collect();
    let (u_ld, u_col, dk) = (d_mem + 5, 2, 2 * nu * d_mem);
    let group = Layout::new(rows, 1);
    let (phi, _) = run(gpu, &mut rng, &cell_refs, &group, d_mem, nu, u_ld, u_col)?;
    let grouped = extract(&phi, dk + PHI_PAD, group.out_row[alone], rows[alone], dk);
    let single = Layout::new(&rows[alone..=alone], 3);
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
    let by_itself = extract(&phi, dk + PHI_PAD, single.out_row[0], rows[alone], dk);
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
    rng: &mut Rng,
    cells: &[&[f32]],
    layout: &Layout,
    d_mem: usize,
    nu: usize,
    u_ld: usize,
    u_col: usize,
) -> Result<(Vec<f32>, usize), KernelError> {
    let stream = gpu.stream();
    let phi_ld = 2 * nu * d_mem + PHI_PAD;
    let mut host_u = rng.f32_normal(layout.in_rows * u_ld, 1.0);
    for (i, cell) in cells.iter().enumerate() {
        for (r, row) in cell.chunks_exact(d_mem).enumerate() {
            let at = (layout.in_row[i] + r) * u_ld + u_col;
            host_u[at..at + d_mem].copy_from_slice(row);
        }
    }
    let u = upload_f32(stream, &host_u)?;
    let mut phi = poisoned_f32(gpu, stream, layout.out_rows * phi_ld)?;
    dpfp(
        gpu,
        stream,
        &u,
        u_ld,
        u_col,
        &mut phi,
        phi_ld,
        &layout.spans(&[]),
        d_mem,
        nu,
    )?;
    let phi = download_f32(stream, &phi)?;
    let strays = poisoned_strays(&phi, phi_ld, layout, 2 * nu * d_mem);
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
