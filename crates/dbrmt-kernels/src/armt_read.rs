//! Launcher of `cuda/armt_read.cu`: the last step of ARMT's associative read, `h ← h + num / (φ · z + ε)`.
//!
//! The read of a cell (segment ≥ 1) is `u = h·W_qᵀ` (grouped GEMM), `φ = dpfp(u)` ([`crate::dpfp::dpfp`]),
//! `num = φ·A` (grouped GEMM, f32 out), then this kernel; the math is
//! [`reference::armt_read::read_apply`](crate::reference::armt_read::read_apply) with `h` (the hidden rows, [`HiddenElem`])
//! stored in bf16 (rounded once after the add) or f32.

use cudarc::driver::{CudaSlice, CudaStream, LaunchConfig};

use crate::launch::{
    addr, addr_mut, check_dim, check_disjoint_outputs, check_groups, check_index, check_rows, row_grid, Rows,
};
use crate::params::{Span, Spans};
use crate::{cubins, Gpu, HiddenElem, Kernel, KernelError};

const ARMT_READ_APPLY_BF16: Kernel = Kernel::new(cubins::ARMT_READ, "armt_read_apply_bf16");
const ARMT_READ_APPLY_F32: Kernel = Kernel::new(cubins::ARMT_READ, "armt_read_apply_f32");

/// The entry point for hidden rows of type `H`: `armt_read_apply_bf16` or `armt_read_apply_f32`.
pub(crate) fn kernel<H: HiddenElem>() -> &'static Kernel {
    H::pick(&ARMT_READ_APPLY_BF16, &ARMT_READ_APPLY_F32)
}

/// `READ_THREADS` of armt_read.cu (one block per row).
const THREADS: u32 = 256;

/// For every row `r` of every span: `den = φ[in_row + r] · z[state] + ε` (f32, reduced in a fixed order) and
/// `h[out_row + r][c] = h[out_row + r][c] + num[in_row + r][c] / den` for `c < d`, the add in f32 (rounded once to
/// bf16 where `h` is bf16).
///
/// `num` is `[*, d]` (`φ·A`, f32), `phi` `[*, d_key]`, `z` `[states, d_key]` (the cell's normaliser is row
/// `span.state`), `h` `[*, h_ld]` hidden rows (bf16 or f32: `armt_read_apply_bf16` or `armt_read_apply_f32` is
/// launched, as `H` is), updated in place. `span.layer` and `span.flag` are not used: the
/// read is skipped for segment 0, so the caller leaves those cells out.
///
/// Fails with [`KernelError::InvalidArgument`] (before anything is launched) unless `1 ≤ spans.len() ≤ MAX_GROUPS`,
/// `d, d_key ≥ 1`, every span fits `num`, `phi` and `h`, every `state` is a row of `z`, and no two spans write the
/// same rows of `h`. Asynchronous on `stream`.
#[allow(clippy::too_many_arguments)]
pub fn armt_read_apply<H: HiddenElem>(
    gpu: &Gpu,
    stream: &CudaStream,
    num: &CudaSlice<f32>,
    phi: &CudaSlice<f32>,
    z: &CudaSlice<f32>,
    h: &mut CudaSlice<H>,
    h_ld: usize,
    spans: &[Span],
    d: usize,
    d_key: usize,
) -> Result<(), KernelError> {
    let kernel = kernel::<H>();
    let lens = ReadLens {
        num: num.len(),
        phi: phi.len(),
        z: z.len(),
        h: Rows::of(h, h_ld),
    };
    let cfg = validate(kernel.entry, &lens, spans, d, d_key)?;
    if cfg.grid_dim.0 == 0 {
        return Ok(());
    }
    let f = gpu.function(kernel)?;
    let params = Spans::pack(spans);
    let (num_ptr, phi_ptr, z_ptr) = (addr(num, stream), addr(phi, stream), addr(z, stream));
    let h_ptr = addr_mut(h, stream);
    // All fit in i32: `validate` checked them.
    let (h_ld, d, d_key) = (h_ld as i32, d as i32, d_key as i32);
    let mut launch = crate::launch::Launch::new(stream, &f);
    launch
        .arg(&params)
        .arg(&num_ptr)
        .arg(&phi_ptr)
        .arg(&z_ptr)
        .arg(&h_ptr)
        .arg(&h_ld)
        .arg(&d)
        .arg(&d_key);
    // SAFETY: the arguments match `armt_read_apply_<H>(Spans, const float* num, const float* phi, const float* z,
    // H* h, int h_ld, int d, int d_key)` in order and type, the entry point picked by `H` (Spans mirrors params.h,
    // addresses are 8 bytes, half::bf16 is the 2-byte __nv_bfloat16, f32 is float, and `h` holds H). `validate`
    // checked that every span's rows lie inside `num`, `phi` and `h` (in elements of H), that its state is a row of
    // `z`, and that no two spans write the same rows of `h`; `h` is borrowed mutably for this call and the inputs
    // shared, so nothing else writes them meanwhile. grid.x covers the longest span (blocks past a span's end
    // return), grid.y = spans.len().
    unsafe { launch.launch(cfg) }?;
    Ok(())
}

/// Buffer lengths of [`armt_read_apply`], in elements (and h's row stride).
struct ReadLens {
    num: usize,
    phi: usize,
    z: usize,
    h: Rows,
}

/// The launcher's checks, on buffer lengths only (so they are tested without a GPU); returns the launch's grid.
fn validate(k: &str, lens: &ReadLens, spans: &[Span], d: usize, d_key: usize) -> Result<LaunchConfig, KernelError> {
    check_groups(k, spans.len())?;
    check_dim(k, "d", d)?;
    check_dim(k, "d_key", d_key)?;
    for s in spans {
        check_rows(k, "num", Rows { len: lens.num, ld: d }, s.in_row, s.rows, 0, d)?;
        check_rows(
            k,
            "phi",
            Rows {
                len: lens.phi,
                ld: d_key,
            },
            s.in_row,
            s.rows,
            0,
            d_key,
        )?;
        check_rows(k, "h", lens.h, s.out_row, s.rows, 0, d)?;
        check_index(k, "state", s.state, lens.z / d_key)?;
    }
    check_disjoint_outputs(k, spans)?;
    Ok(row_grid(spans, THREADS))
}

#[cfg(test)]
mod tests {
    use half::bf16;

    use super::*;
    use crate::launch::tests::rejected;

    fn span(in_row: usize, out_row: usize, rows: usize, state: usize) -> Span {
        Span {
            in_row,
            out_row,
            rows,
            state,
            ..Span::default()
        }
    }

    #[test]
    fn threads_match_the_kernel() {
        let cu = include_str!("../../../cuda/armt_read.cu");
        assert!(cu.contains(&format!("#define READ_THREADS {THREADS}\n")));
        crate::hidden::assert_entries("armt_read_apply", cu, [kernel::<bf16>().entry, kernel::<f32>().entry]);
    }

    #[test]
    fn validate_checks_rows_states_and_overlaps() {
        // d = 8, D = 12: num/phi 10 rows, h 10 rows of stride 9, z 3 states.
        let lens = || ReadLens {
            num: 80,
            phi: 120,
            z: 36,
            h: Rows { len: 89, ld: 9 },
        };
        let v = |lens: &ReadLens, spans: &[Span]| validate("k", lens, spans, 8, 12);
        let ok = [span(0, 6, 4, 2), span(4, 0, 6, 0)];
        assert_eq!(v(&lens(), &ok).unwrap().grid_dim, (6, 2, 1));
        assert!(rejected(v(&ReadLens { num: 79, ..lens() }, &ok)), "num short");
        assert!(rejected(v(&ReadLens { phi: 119, ..lens() }, &ok)), "phi short");
        assert!(
            rejected(v(
                &ReadLens {
                    h: Rows { len: 88, ld: 9 },
                    ..lens()
                },
                &ok
            )),
            "h short"
        );
        assert!(
            rejected(v(
                &ReadLens {
                    h: Rows { len: 89, ld: 7 },
                    ..lens()
                },
                &ok
            )),
            "h stride below d"
        );
        assert!(
            rejected(v(&ReadLens { z: 35, ..lens() }, &ok)),
            "state 2 needs 36 z values"
        );
        assert!(rejected(v(&lens(), &[span(0, 0, 4, 3)])), "state out of range");
        assert!(rejected(v(&lens(), &[span(0, 0, 4, 0), span(4, 3, 4, 1)])), "overlap");
        assert!(rejected(validate("k", &lens(), &ok, 0, 12)), "d 0");
        assert!(rejected(validate("k", &lens(), &ok, 8, 0)), "d_key 0");
        assert!(rejected(v(&lens(), &[])), "no spans");
        assert!(rejected(v(&lens(), &vec![span(0, 0, 0, 0); 65])), "65 spans");
    }
}
