//! Checks that every launcher runs before it turns buffers into device addresses: a span or problem that does not
//! fit its buffer is a [`KernelError::InvalidArgument`], never an out-of-bounds access on the device.

use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DeviceRepr};

use crate::params::{Span, MAX_GROUPS};
use crate::KernelError;

/// Fails unless `1 ≤ n ≤ MAX_GROUPS`.
pub(crate) fn check_groups(kernel: &str, n: usize) -> Result<(), KernelError> {
    if n == 0 || n > MAX_GROUPS {
        return Err(invalid(kernel, format!("{n} groups (1 to {MAX_GROUPS} per launch)")));
    }
    Ok(())
}

/// Fails unless rows `row..row + rows`, columns `col..col + width` of a row-major matrix with row stride `ld`
/// lie inside a buffer of `len` elements.
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_rows(
    kernel: &str,
    what: &str,
    len: usize,
    row: usize,
    rows: usize,
    ld: usize,
    col: usize,
    width: usize,
) -> Result<(), KernelError> {
    if col + width > ld {
        return Err(invalid(
            kernel,
            format!("{what}: columns {col}..{} exceed the row stride {ld}", col + width),
        ));
    }
    if rows > 0 && (row + rows - 1) * ld + col + width > len {
        return Err(invalid(
            kernel,
            format!(
                "{what}: rows {row}..{} × stride {ld} exceed its {len} elements",
                row + rows
            ),
        ));
    }
    if row + rows > i32::MAX as usize || ld > i32::MAX as usize {
        return Err(invalid(kernel, format!("{what}: index beyond 32 bits")));
    }
    Ok(())
}

/// Fails if two spans write overlapping output rows (the cells of one launch must not race).
pub(crate) fn check_disjoint_outputs(kernel: &str, spans: &[Span]) -> Result<(), KernelError> {
    let mut ranges: Vec<(usize, usize)> = spans.iter().map(|s| (s.out_row, s.out_row + s.rows)).collect();
    ranges.sort_unstable();
    if ranges.windows(2).any(|w| w[1].0 < w[0].1) {
        return Err(invalid(kernel, "two spans write overlapping output rows".into()));
    }
    Ok(())
}

pub(crate) fn invalid(kernel: &str, msg: String) -> KernelError {
    KernelError::InvalidArgument {
        kernel: kernel.to_string(),
        msg,
    }
}

/// The device address of a buffer read by a launch.
pub(crate) fn addr<T: DeviceRepr>(buf: &CudaSlice<T>, stream: &CudaStream) -> u64 {
    // Event tracking is off (`Gpu::new`), so the guard records nothing and may drop at once.
    let (ptr, _guard) = buf.device_ptr(stream);
    ptr
}

/// The device address of a buffer written by a launch.
pub(crate) fn addr_mut<T: DeviceRepr>(buf: &mut CudaSlice<T>, stream: &CudaStream) -> u64 {
    let (ptr, _guard) = buf.device_ptr_mut(stream);
    ptr
}
