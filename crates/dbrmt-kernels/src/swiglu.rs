//! Launcher of `cuda/swiglu.cu`: the SwiGLU activation of the LLaMA MLP over the rows of the cells of one step.
//!
//! The fused gate/up product holds gate in columns `0..I` and up in `I..2I` of each row; the output is
//! `silu(gate) · up` (f32 math, bf16 storage). The CPU reference is [`crate::reference::swiglu::swiglu`].

use cudarc::driver::{CudaSlice, CudaStream, LaunchConfig, PushKernelArg};
use half::bf16;

use crate::launch::{addr, addr_mut, check_disjoint_outputs, check_groups, check_rows, invalid};
use crate::params::{Span, Spans};
use crate::{cubins, Gpu, Kernel, KernelError};

const SWIGLU_BF16: Kernel = Kernel {
    file: "swiglu",
    cubin: cubins::SWIGLU,
    entry: "swiglu_bf16",
};

/// `SWIGLU_THREADS` of swiglu.cu.
const THREADS: u32 = 256;

/// For each span, rows `out_row..out_row + rows` of `act` (row stride `act_ld`, `intermediate` columns) get
/// `silu(gate) · up` of rows `in_row..` of `gu` (row stride `gu_ld`, gate in columns `0..intermediate`, up in
/// `intermediate..2·intermediate`), on `stream`.
///
/// Every span is checked against the buffers first, and spans must not write the same output rows; anything that
/// does not fit is a [`KernelError::InvalidArgument`].
#[allow(clippy::too_many_arguments)]
pub fn swiglu(
    gpu: &Gpu,
    stream: &CudaStream,
    gu: &CudaSlice<bf16>,
    gu_ld: usize,
    act: &mut CudaSlice<bf16>,
    act_ld: usize,
    spans: &[Span],
    intermediate: usize,
) -> Result<(), KernelError> {
    let name = SWIGLU_BF16.entry;
    check_groups(name, spans.len())?;
    if intermediate == 0 || intermediate > (i32::MAX / 2) as usize {
        return Err(invalid(name, format!("intermediate size {intermediate}")));
    }
    for s in spans {
        check_rows(name, "gu", gu.len(), s.in_row, s.rows, gu_ld, 0, 2 * intermediate)?;
        check_rows(name, "act", act.len(), s.out_row, s.rows, act_ld, 0, intermediate)?;
    }
    check_disjoint_outputs(name, spans)?;
    let max_rows = spans.iter().map(|s| s.rows).max().unwrap_or(0);
    if max_rows == 0 {
        return Ok(());
    }

    let f = gpu.function(&SWIGLU_BF16)?;
    let params = Spans::pack(spans);
    let (gu_ptr, act_ptr) = (addr(gu, stream), addr_mut(act, stream));
    let (gu_ld, act_ld, inter) = (gu_ld as i32, act_ld as i32, intermediate as i32);
    let cfg = LaunchConfig {
        grid_dim: (max_rows as u32, spans.len() as u32, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut launch = stream.launch_builder(&f);
    launch
        .arg(&params)
        .arg(&gu_ptr)
        .arg(&gu_ld)
        .arg(&act_ptr)
        .arg(&act_ld)
        .arg(&inter);
    // SAFETY: the arguments match `swiglu_bf16(Spans, const bf16* gu, int gu_ld, bf16* act, int act_ld, int inter)`
    // in order and size. Every span was checked above: the rows and 2·intermediate columns it reads from gu and the
    // rows and intermediate columns it writes in act lie inside those buffers (act borrowed mutably, so the two do
    // not alias), and no two spans write the same rows.
    unsafe { launch.launch(cfg) }?;
    Ok(())
}
