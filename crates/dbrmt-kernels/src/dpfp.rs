//! Launcher of `cuda/dpfp.cu`: the DPFP feature map of ARMT's keys and queries, over the spans of one step.
//!
//! The read applies it to `h·W_qᵀ` (`d_mem` columns), the write to the raw K columns of the fused product
//! `P·[W_k|W_v|w_β]ᵀ` (columns `0..d_mem` of a wider matrix, hence `u_ld` and `u_col`). The math is
//! [`reference::dpfp::dpfp`](crate::reference::dpfp::dpfp), feature for feature.

use cudarc::driver::{CudaSlice, CudaStream, LaunchConfig};

use crate::launch::{addr, addr_mut, check_disjoint_outputs, check_groups, check_rows, invalid, Rows};
use crate::params::{Span, Spans};
use crate::{cubins, Gpu, Kernel, KernelError};

const DPFP_F32: Kernel = Kernel::new(cubins::DPFP, "dpfp_f32");

/// `DPFP_THREADS` of dpfp.cu.
const THREADS: usize = 256;
/// The kernel loops over a span's elements (grid-stride), so the grid's x size is capped.
const MAX_BLOCKS_X: usize = 1 << 14;

/// φ = DPFP(u) of order `nu` for every row of every span: rows `span.in_row..+rows` of `u`, columns
/// `u_col..u_col + d_mem` (row stride `u_ld`) become rows `span.out_row..+rows` of `phi`, columns
/// `0..2·nu·d_mem` (row stride `phi_ld`). `span.layer`, `span.state` and `span.flag` are not used.
///
/// Fails with [`KernelError::InvalidArgument`] (before anything is launched) unless `1 ≤ spans.len() ≤ MAX_GROUPS`,
/// `d_mem, nu ≥ 1`, every span fits both buffers and no two spans write the same rows of `phi`.
/// Asynchronous on `stream`.
#[allow(clippy::too_many_arguments)]
pub fn dpfp(
    gpu: &Gpu,
    stream: &CudaStream,
    u: &CudaSlice<f32>,
    u_ld: usize,
    u_col: usize,
    phi: &mut CudaSlice<f32>,
    phi_ld: usize,
    spans: &[Span],
    d_mem: usize,
    nu: usize,
) -> Result<(), KernelError> {
    let cfg = validate(Rows::of(u, u_ld), u_col, Rows::of(phi, phi_ld), spans, d_mem, nu)?;
    let f = gpu.function(&DPFP_F32)?;
    let params = Spans::pack(spans);
    let (u_ptr, phi_ptr) = (addr(u, stream), addr_mut(phi, stream));
    // All fit in i32: `validate` checked them.
    let (u_ld, u_col, phi_ld) = (u_ld as i32, u_col as i32, phi_ld as i32);
    let (d_mem, nu) = (d_mem as i32, nu as i32);
    let mut launch = crate::launch::Launch::new(stream, &f);
    launch
        .arg(&params)
        .arg(&u_ptr)
        .arg(&u_ld)
        .arg(&u_col)
        .arg(&phi_ptr)
        .arg(&phi_ld)
        .arg(&d_mem)
        .arg(&nu);
    // SAFETY: the arguments match `dpfp_f32(Spans, const float* u, int u_ld, int u_col, float* phi, int phi_ld,
    // int d_mem, int nu)` in order and type (Spans mirrors params.h, addresses are 8 bytes). `validate` checked that
    // every span's rows and columns lie inside `u` and `phi` and that no two spans write the same rows; `phi` is
    // borrowed mutably for this call and `u` shared, so nothing else writes them meanwhile; grid.y = spans.len().
    unsafe { launch.launch(cfg) }?;
    Ok(())
}

/// The launcher's checks, on buffer lengths only (so they are tested without a GPU); returns the launch's grid: a
/// grid-stride loop over the longest span's elements (at least one block, at most [`MAX_BLOCKS_X`]) per span.
fn validate(
    u: Rows,
    u_col: usize,
    phi: Rows,
    spans: &[Span],
    d_mem: usize,
    nu: usize,
) -> Result<LaunchConfig, KernelError> {
    let k = DPFP_F32.entry;
    check_groups(k, spans.len())?;
    if d_mem == 0 || nu == 0 || nu.saturating_mul(d_mem) > (i32::MAX / 2) as usize {
        return Err(invalid(
            k,
            format!("d_mem = {d_mem}, nu = {nu}: both must be ≥ 1 (and 2·nu·d_mem < 2³¹)"),
        ));
    }
    let width = 2 * nu * d_mem;
    for s in spans {
        check_rows(k, "u", u, s.in_row, s.rows, u_col, d_mem)?;
        check_rows(k, "phi", phi, s.out_row, s.rows, 0, width)?;
    }
    check_disjoint_outputs(k, spans)?;
    let max_rows = spans.iter().map(|s| s.rows).max().unwrap_or(0);
    let blocks = (max_rows * width).div_ceil(THREADS).clamp(1, MAX_BLOCKS_X);
    Ok(LaunchConfig {
        grid_dim: (blocks as u32, spans.len() as u32, 1),
        block_dim: (THREADS as u32, 1, 1),
        shared_mem_bytes: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::tests::rejected;

    fn span(in_row: usize, out_row: usize, rows: usize) -> Span {
        Span {
            in_row,
            out_row,
            rows,
            ..Span::default()
        }
    }

    #[test]
    fn threads_match_the_kernel() {
        let cu = include_str!("../../../cuda/dpfp.cu");
        assert!(cu.contains(&format!("#define DPFP_THREADS {THREADS}\n")));
    }

    #[test]
    fn validate_accepts_exact_fits_and_rejects_overruns() {
        // (u length, u stride, u column, phi length, phi stride, spans, d_mem, nu), as the launcher's arguments.
        #[allow(clippy::too_many_arguments)]
        fn v(
            u_len: usize,
            u_ld: usize,
            u_col: usize,
            phi_len: usize,
            phi_ld: usize,
            spans: &[Span],
            d_mem: usize,
            nu: usize,
        ) -> Result<LaunchConfig, KernelError> {
            let (u, phi) = (
                Rows { len: u_len, ld: u_ld },
                Rows {
                    len: phi_len,
                    ld: phi_ld,
                },
            );
            validate(u, u_col, phi, spans, d_mem, nu)
        }
        // u: 10 rows of stride 20, K columns 3..19; phi: 10 rows of stride 96 (D = 96 for d_mem 16, nu 3).
        let ok = [span(0, 5, 5), span(5, 0, 5)];
        assert_eq!(v(200, 20, 3, 960, 96, &ok, 16, 3).unwrap().grid_dim, (2, 2, 1));
        // u's last element read is row 9, column 18: index 198, so 199 elements suffice and 198 do not.
        assert!(v(199, 20, 3, 960, 96, &ok, 16, 3).is_ok());
        assert!(rejected(v(198, 20, 3, 960, 96, &ok, 16, 3)));
        assert!(rejected(v(200, 20, 5, 960, 96, &ok, 16, 3)), "columns past the stride");
        assert!(rejected(v(200, 20, 3, 959, 96, &ok, 16, 3)), "phi too short");
        assert!(rejected(v(200, 20, 3, 960, 95, &ok, 16, 3)), "phi stride below D");
        assert!(
            rejected(v(200, 20, 3, 960, 96, &[span(0, 0, 5), span(5, 4, 5)], 16, 3)),
            "overlap"
        );
        assert!(
            rejected(v(200, 20, 3, 960, 96, &[span(6, 0, 5)], 16, 3)),
            "u rows past the end"
        );
        assert!(rejected(v(200, 20, 3, 960, 96, &[], 16, 3)), "no spans");
        assert!(
            rejected(v(200, 20, 3, 960, 96, &vec![span(0, 0, 0); 65], 16, 3)),
            "too many spans"
        );
        assert!(rejected(v(200, 20, 3, 960, 96, &ok, 0, 3)), "d_mem 0");
        assert!(rejected(v(200, 20, 3, 960, 96, &ok, 16, 0)), "nu 0");
        // An empty span only needs its columns to fit.
        assert!(v(0, 20, 3, 0, 96, &[span(1000, 1000, 0)], 16, 3).is_ok());
    }
}
