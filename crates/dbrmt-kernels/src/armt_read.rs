//! Launcher of `cuda/armt_read.cu`: the last step of ARMT's associative read, `h ← h + num / (φ · z + ε)`.
//!
//! The read of a cell (segment ≥ 1) is `u = h·W_qᵀ` (grouped GEMM), `φ = dpfp(u)` ([`crate::dpfp::dpfp`]),
//! `num = φ·A` (grouped GEMM, f32 out), then this kernel; the math is
//! [`reference::armt_read::read_apply`](crate::reference::armt_read::read_apply) with `h` (the hidden rows, [`HiddenElem`])
//! stored in bf16 (rounded once after the add) or f32.

use cudarc::driver::{CudaSlice, CudaStream, LaunchConfig, PushKernelArg};

use crate::launch::{addr, addr_mut, check_disjoint_outputs, check_groups, check_rows, invalid};
use crate::params::{Span, Spans};
use crate::{cubins, Gpu, HiddenElem, Kernel, KernelError};

const ARMT_READ_APPLY_BF16: Kernel = Kernel {
    file: "armt_read",
    cubin: cubins::ARMT_READ,
    entry: "armt_read_apply_bf16",
};
const ARMT_READ_APPLY_F32: Kernel = Kernel {
    file: "armt_read",
    cubin: cubins::ARMT_READ,
    entry: "armt_read_apply_f32",
};

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
    validate(
        kernel.entry,
        num.len(),
        phi.len(),
        z.len(),
        h.len(),
        h_ld,
        spans,
        d,
        d_key,
    )?;
    let f = gpu.function(kernel)?;
    let max_rows = spans.iter().map(|s| s.rows).max().unwrap_or(0).max(1);
    let cfg = LaunchConfig {
        grid_dim: (max_rows as u32, spans.len() as u32, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let params = Spans::pack(spans);
    let (num_ptr, phi_ptr, z_ptr) = (addr(num, stream), addr(phi, stream), addr(z, stream));
    let h_ptr = addr_mut(h, stream);
    // All fit in i32: `validate` checked them.
    let (h_ld, d, d_key) = (h_ld as i32, d as i32, d_key as i32);
    let mut launch = stream.launch_builder(&f);
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

/// Fails unless `index < count` (a state or layer index that the kernel turns into an address) and it fits an i32.
pub(crate) fn check_index(kernel: &str, what: &str, index: usize, count: usize) -> Result<(), KernelError> {
    if index >= count || index > i32::MAX as usize {
        return Err(invalid(
            kernel,
            format!("{what} {index} out of range (the buffer holds {count})"),
        ));
    }
    Ok(())
}

/// Fails unless `1 ≤ n < 2³¹`.
pub(crate) fn check_dim(kernel: &str, what: &str, n: usize) -> Result<(), KernelError> {
    if n == 0 || n > i32::MAX as usize {
        return Err(invalid(kernel, format!("{what} = {n} (must be 1 to 2³¹ − 1)")));
    }
    Ok(())
}

/// The launcher's checks, on buffer lengths only (so they are tested without a GPU).
#[allow(clippy::too_many_arguments)]
fn validate(
    k: &str,
    num_len: usize,
    phi_len: usize,
    z_len: usize,
    h_len: usize,
    h_ld: usize,
    spans: &[Span],
    d: usize,
    d_key: usize,
) -> Result<(), KernelError> {
    check_groups(k, spans.len())?;
    check_dim(k, "d", d)?;
    check_dim(k, "d_key", d_key)?;
    for s in spans {
        check_rows(k, "num", num_len, s.in_row, s.rows, d, 0, d)?;
        check_rows(k, "phi", phi_len, s.in_row, s.rows, d_key, 0, d_key)?;
        check_rows(k, "h", h_len, s.out_row, s.rows, h_ld, 0, d)?;
        check_index(k, "state", s.state, z_len / d_key)?;
    }
    check_disjoint_outputs(k, spans)
}

#[cfg(test)]
mod tests {
    use half::bf16;

    use super::*;

    fn span(in_row: usize, out_row: usize, rows: usize, state: usize) -> Span {
        Span {
            in_row,
            out_row,
            rows,
            state,
            ..Span::default()
        }
    }

    fn rejected(r: Result<(), KernelError>) -> bool {
        matches!(r, Err(KernelError::InvalidArgument { .. }))
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
        let (num, phi, z, h) = (80, 120, 36, 89);
        let ok = [span(0, 6, 4, 2), span(4, 0, 6, 0)];
        assert!(validate("k", num, phi, z, h, 9, &ok, 8, 12).is_ok());
        assert!(rejected(validate("k", num - 1, phi, z, h, 9, &ok, 8, 12)), "num short");
        assert!(rejected(validate("k", num, phi - 1, z, h, 9, &ok, 8, 12)), "phi short");
        assert!(rejected(validate("k", num, phi, z, h - 1, 9, &ok, 8, 12)), "h short");
        assert!(
            rejected(validate("k", num, phi, z, h, 7, &ok, 8, 12)),
            "h stride below d"
        );
        assert!(
            rejected(validate("k", num, phi, 35, h, 9, &ok, 8, 12)),
            "state 2 needs 36 z values"
        );
        assert!(
            rejected(validate("k", num, phi, z, h, 9, &[span(0, 0, 4, 3)], 8, 12)),
            "state out of range"
        );
        assert!(
            rejected(validate(
                "k",
                num,
                phi,
                z,
                h,
                9,
                &[span(0, 0, 4, 0), span(4, 3, 4, 1)],
                8,
                12
            )),
            "overlap"
        );
        assert!(rejected(validate("k", num, phi, z, h, 9, &ok, 0, 12)), "d 0");
        assert!(rejected(validate("k", num, phi, z, h, 9, &ok, 8, 0)), "d_key 0");
        assert!(rejected(validate("k", num, phi, z, h, 9, &[], 8, 12)), "no spans");
    }
}
