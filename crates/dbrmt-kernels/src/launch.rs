//! Checks that every launcher runs before it turns buffers into device addresses: a span or problem that does not
//! fit its buffer is a [`KernelError::InvalidArgument`], never an out-of-bounds access on the device.
//!
//! Every launcher has the same shape: a pure `validate` on buffer lengths (unit-tested on the CPU) that checks every
//! argument with the functions here and returns the launch's parameters (its [`LaunchConfig`]), then the launch.

use std::ffi::c_void;
use std::marker::PhantomData;

use cudarc::driver::LaunchConfig;
use cudarc::driver::{sys, CudaFunction, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DeviceRepr, DriverError};

use crate::params::{Span, Spans, MAX_GROUPS};
use crate::switches::RuntimeSwitch;
use crate::{Gpu, Kernel, KernelError};

/// A kernel launch: the arguments pushed in order, then [`Launch::launch`] — as `cudarc`'s launch builder, but through
/// `cuLaunchKernelEx` with programmatic dependent launch allowed (unless `DBRMT_PDL=off`): the kernel may be launched
/// while the one before it on the stream finishes, and waits for it in its first instruction (`pdl_entry()`,
/// `cuda/common/pdl.cuh`), so the launch latency of a chain of short kernels overlaps their tails and no kernel's
/// arithmetic changes.
pub(crate) struct Launch<'a> {
    stream: &'a CudaStream,
    func: &'a CudaFunction,
    args: Vec<*mut c_void>,
    /// The arguments are borrowed for `'a`: their addresses stay valid until the launch.
    _args: PhantomData<&'a ()>,
}

impl<'a> Launch<'a> {
    pub(crate) fn new(stream: &'a CudaStream, func: &'a CudaFunction) -> Self {
        Self {
            stream,
            func,
            args: Vec::with_capacity(12),
            _args: PhantomData,
        }
    }

    /// The next kernel parameter: `x`'s bytes, as the kernel declares it (a device address as `u64`, `i32`, `f32`, a
    /// `#[repr(C)]` parameter struct).
    pub(crate) fn arg<T: DeviceRepr>(&mut self, x: &'a T) -> &mut Self {
        self.args.push(x as *const T as *mut c_void);
        self
    }

    /// Launches the kernel on the stream.
    ///
    /// # Safety
    /// The pushed arguments match the kernel's parameters in number, order and size, and every device address among
    /// them points into a live buffer the kernel may access as it does (each launcher's `validate` checks that).
    pub(crate) unsafe fn launch(&mut self, cfg: LaunchConfig) -> Result<(), DriverError> {
        self.stream.context().bind_to_thread()?;
        // SAFETY: an all-zero attribute is a valid value of the plain C union; the one field set is an int
        let mut attr: sys::CUlaunchAttribute = unsafe { std::mem::zeroed() };
        attr.id = sys::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
        attr.value.programmaticStreamSerializationAllowed = 1;
        let config = sys::CUlaunchConfig {
            gridDimX: cfg.grid_dim.0,
            gridDimY: cfg.grid_dim.1,
            gridDimZ: cfg.grid_dim.2,
            blockDimX: cfg.block_dim.0,
            blockDimY: cfg.block_dim.1,
            blockDimZ: cfg.block_dim.2,
            sharedMemBytes: cfg.shared_mem_bytes,
            hStream: self.stream.cu_stream(),
            attrs: &mut attr,
            numAttrs: u32::from(pdl_enabled()),
        };
        // SAFETY: `config` and `attr` live through the call; `args` holds one pointer per kernel parameter, each to a
        // value borrowed for `'a` (the caller's contract above); the function belongs to the stream's context.
        unsafe {
            sys::cuLaunchKernelEx(
                &config,
                self.func.cu_function(),
                self.args.as_mut_ptr(),
                std::ptr::null_mut(),
            )
        }
        .result()
    }
}

/// Whether launches allow programmatic dependent launch: on unless the environment says `DBRMT_PDL=off` (read at the
/// first launch), or [`set_pdl`] said otherwise.
pub fn pdl_enabled() -> bool {
    PDL.enabled()
}

/// Turns programmatic dependent launch on or off for the launches that follow (the process-wide switch
/// `DBRMT_PDL=off` sets; tests compare both).
pub fn set_pdl(on: bool) {
    PDL.set(on);
}

static PDL: RuntimeSwitch = RuntimeSwitch::new(crate::switches::PDL);

/// Fails unless `1 ≤ n ≤ MAX_GROUPS`.
pub(crate) fn check_groups(kernel: &str, n: usize) -> Result<(), KernelError> {
    if n == 0 || n > MAX_GROUPS {
        return Err(invalid(kernel, format!("{n} groups (1 to {MAX_GROUPS} per launch)")));
    }
    Ok(())
}

/// A buffer of rows as the checks see it: its length in elements and its row stride.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rows {
    pub len: usize,
    pub ld: usize,
}

impl Rows {
    pub(crate) fn of<T>(buf: &CudaSlice<T>, ld: usize) -> Rows {
        Rows { len: buf.len(), ld }
    }
}

/// Fails unless rows `row..row + rows`, columns `col..col + width` of the row-major matrix `m` lie inside it.
pub(crate) fn check_rows(
    kernel: &str,
    what: &str,
    m: Rows,
    row: usize,
    rows: usize,
    col: usize,
    width: usize,
) -> Result<(), KernelError> {
    let Rows { len, ld } = m;
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

/// The grid of a row kernel: one block of `threads` per row of the longest span (x), one row of blocks per span (y).
/// No spans with rows: x is 0, and the launcher launches nothing.
pub(crate) fn row_grid(spans: &[Span], threads: u32) -> LaunchConfig {
    let max_rows = spans.iter().map(|s| s.rows).max().unwrap_or(0);
    LaunchConfig {
        grid_dim: (max_rows as u32, spans.len() as u32, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The checks of a row kernel that reads rows `in_row..` of `x` and writes rows `out_row..` of `y`, columns `0..d` of
/// each span (`to_bf16_f32`, `add_rows_f32`): 1 to MAX_GROUPS spans, each inside both buffers, no two writing the same
/// rows. Returns the grid of `threads`-thread blocks ([`row_grid`]).
pub(crate) fn validate_x_to_y(
    k: &str,
    x: Rows,
    y: Rows,
    spans: &[Span],
    d: usize,
    threads: u32,
) -> Result<LaunchConfig, KernelError> {
    check_groups(k, spans.len())?;
    check_dim(k, "d", d)?;
    for s in spans {
        check_rows(k, "x", x, s.in_row, s.rows, 0, d)?;
        check_rows(k, "y", y, s.out_row, s.rows, 0, d)?;
    }
    check_disjoint_outputs(k, spans)?;
    Ok(row_grid(spans, threads))
}

/// Whether every span has at most [`DECODE_MAX_ROWS`](crate::gemm_sm90::DECODE_MAX_ROWS) rows: a launch of few
/// rows (a decode step), which the row kernels' `_few` entries and the fused read's narrow tiles serve.
pub(crate) fn few_rows(spans: &[Span]) -> bool {
    spans.iter().all(|s| s.rows <= crate::gemm_sm90::DECODE_MAX_ROWS)
}

/// Blocks per row of an elementwise row kernel over `spans`: one per `threads` columns for [`few_rows`] (a decode
/// step's row is then one round of loads instead of a loop of them), else 1.
pub(crate) fn row_chunks(spans: &[Span], d: usize, threads: u32) -> usize {
    match few_rows(spans) {
        true => d.div_ceil(threads as usize).max(1),
        false => 1,
    }
}

/// Checks ([`validate_x_to_y`]) and launches an elementwise row kernel `kernel(Spans, const X* x, int x_ld, Y* y,
/// int y_ld, int d, int chunks)` of `threads`-thread blocks over `spans`: `kernels.0` one block a row (`chunks` 1),
/// or, when [`row_chunks`] gives more, `kernels.1` with that many blocks per row (`blockIdx.x = row · chunks +
/// chunk`; chunk c takes columns `c·threads + t`, stepping by `chunks·threads`).
///
/// # Safety
/// Both kernels take exactly those parameters and, for each span, read only rows `in_row..in_row + rows` of `x` and
/// write only rows `out_row..out_row + rows` of `y`, columns `0..d`; blocks past a span's rows touch nothing.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn launch_x_to_y<X: DeviceRepr, Y: DeviceRepr>(
    gpu: &Gpu,
    stream: &CudaStream,
    kernels: (&Kernel, &Kernel),
    threads: u32,
    (x, x_ld): (&CudaSlice<X>, usize),
    (y, y_ld): (&mut CudaSlice<Y>, usize),
    spans: &[Span],
    d: usize,
) -> Result<(), KernelError> {
    let mut cfg = validate_x_to_y(kernels.0.entry, Rows::of(x, x_ld), Rows::of(y, y_ld), spans, d, threads)?;
    if cfg.grid_dim.0 == 0 {
        return Ok(());
    }
    let chunks = row_chunks(spans, d, threads);
    cfg.grid_dim.0 *= chunks as u32;
    let kernel = if chunks > 1 { kernels.1 } else { kernels.0 };
    let chunks = chunks as i32; // at most d / threads + 1: d fits an i32
    let f = gpu.function(kernel)?;
    let params = Spans::pack(spans);
    let (x_ptr, y_ptr) = (addr(x, stream), addr_mut(y, stream));
    // All fit in i32: the checks above.
    let (x_ld, y_ld, d) = (x_ld as i32, y_ld as i32, d as i32);
    let mut launch = Launch::new(stream, &f);
    launch
        .arg(&params)
        .arg(&x_ptr)
        .arg(&x_ld)
        .arg(&y_ptr)
        .arg(&y_ld)
        .arg(&d)
        .arg(&chunks);
    // SAFETY: the arguments are the kernel's (the caller's contract) in order and size; the checks put every row a
    // span reads inside x and every row it writes inside y, which this call borrows (y mutably, so they do not alias),
    // and no two spans write the same rows.
    unsafe { launch.launch(cfg) }?;
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

/// Fails unless every dynamic span ([`Span::dynamic`]) has its state's entry in the positions buffer: `positions` is
/// that buffer's length, `None` when the launch has none. (The values are the caller's: each is at most its span's
/// `pos`, the bound checked against the buffers, or the kernel traps.)
pub(crate) fn check_positions(kernel: &str, spans: &[Span], positions: Option<usize>) -> Result<(), KernelError> {
    for s in spans.iter().filter(|s| s.dynamic) {
        match positions {
            None => return Err(invalid(kernel, "a dynamic span, but no positions buffer".into())),
            Some(n) => check_index(kernel, "dynamic span's state", s.state, n)?,
        }
    }
    Ok(())
}

/// The device address of a launch's positions buffer (0 without one).
pub(crate) fn positions_addr(positions: Option<&CudaSlice<i32>>, stream: &CudaStream) -> u64 {
    positions.map_or(0, |p| addr(p, stream))
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Whether a launcher's validation refused its arguments (rather than accepting them or failing otherwise).
    pub(crate) fn rejected<T: std::fmt::Debug>(r: Result<T, KernelError>) -> bool {
        matches!(r, Err(KernelError::InvalidArgument { .. }))
    }

    #[test]
    fn few_rows_take_a_block_per_threads_columns() {
        // a decode row of 2048 f32 columns: 16 blocks of 128
        assert_eq!(row_chunks(&[span(0, 0, 1, 0)], 2048, 128), 16);
        assert_eq!(row_chunks(&[span(0, 0, 64, 0)], 2050, 128), 17);
        assert_eq!(row_chunks(&[span(0, 0, 65, 0), span(65, 65, 1, 0)], 2048, 128), 1);
        assert_eq!(row_chunks(&[span(0, 0, 1, 0)], 100, 256), 1);
    }

    /// A span at the given rows, layer and state 0.
    pub(crate) fn span(in_row: usize, out_row: usize, rows: usize, layer: usize) -> Span {
        Span {
            in_row,
            out_row,
            rows,
            layer,
            ..Span::default()
        }
    }

    #[test]
    fn rows_indices_and_dims() {
        let m = Rows { len: 21, ld: 8 };
        // 3 rows of width 5 from row 0: the last ends at 2·8 + 5 = 21.
        assert!(check_rows("k", "m", m, 0, 3, 0, 5).is_ok());
        assert!(rejected(check_rows("k", "m", m, 0, 3, 1, 5)), "last row past the end");
        assert!(rejected(check_rows("k", "m", m, 0, 1, 4, 5)), "columns past the stride");
        assert!(check_rows("k", "m", m, 1000, 0, 0, 5).is_ok(), "no rows");
        assert!(check_index("k", "state", 2, 3).is_ok() && rejected(check_index("k", "state", 3, 3)));
        assert!(check_dim("k", "d", 1).is_ok() && rejected(check_dim("k", "d", 0)));
        assert!(rejected(check_dim("k", "d", 1 << 31)));
        assert!(rejected(check_groups("k", 0)) && rejected(check_groups("k", MAX_GROUPS + 1)));
        let overlap = [span(0, 0, 3, 0), span(3, 2, 3, 0)];
        assert!(rejected(check_disjoint_outputs("k", &overlap)));
        let dynamic = Span {
            dynamic: true,
            state: 2,
            ..span(0, 0, 1, 0)
        };
        assert!(
            check_positions("k", &[span(0, 0, 1, 0)], None).is_ok(),
            "static spans need no buffer"
        );
        assert!(check_positions("k", &[dynamic], Some(3)).is_ok());
        assert!(rejected(check_positions("k", &[dynamic], None)), "no positions buffer");
        assert!(
            rejected(check_positions("k", &[dynamic], Some(2))),
            "state past the buffer"
        );
        let cfg = row_grid(&[span(0, 0, 3, 0), span(3, 3, 5, 0)], 128);
        assert_eq!((cfg.grid_dim, cfg.block_dim), ((5, 2, 1), (128, 1, 1)));
    }
}
