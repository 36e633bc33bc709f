//! The memory-bound row kernels at a 1B step (16 cells of 1152 rows, d = 2048), in GB/s of the bytes they must
//! move, beside the device's copy bandwidth measured in the same run (a 2 GiB device-to-device copy, bytes read plus
//! written).

use cudarc::driver::CudaSlice;
use half::bf16;

use super::{l2_flusher, random_bf16, random_f32, time, Measured};
use crate::params::Span;
use crate::rms_norm;
use crate::swiglu::swiglu;
use crate::to_bf16::to_bf16;
use crate::{Gpu, KernelError};

const ROWS: usize = 16 * 1152;
const D: usize = 2048;
const INTER: usize = 8192;

/// The device copy bandwidth: 2 GiB copied device to device.
pub fn copy_bandwidth(gpu: &Gpu) -> Result<Vec<Measured>, KernelError> {
    let stream = gpu.stream();
    let mut flush = l2_flusher(stream)?;
    let n = 1usize << 30;
    let src = random_bf16(stream, n, 1.0, 1)?;
    let mut dst: CudaSlice<bf16> = stream.alloc_zeros(n)?;
    let ms = time(stream, &mut flush, 2, 10, || Ok(stream.memcpy_dtod(&src, &mut dst)?))?;
    Ok(vec![Measured {
        op: "copy",
        shape: "2GiB".into(),
        imp: "cuMemcpyDtoD".into(),
        ms,
        flops: 0.0,
        bytes: 2.0 * (n * 2) as f64,
    }])
}

/// RMSNorm (f32 hidden rows in, bf16 out), the f32 → bf16 rounding of the rows the memory's projections read, and
/// SwiGLU (bf16 gate/up in, bf16 out) over a 1B step's rows.
pub fn all(gpu: &Gpu) -> Result<Vec<Measured>, KernelError> {
    let stream = gpu.stream();
    let mut flush = l2_flusher(stream)?;
    let mut out = Vec::new();
    let spans = [Span {
        rows: ROWS,
        ..Span::default()
    }];
    let hidden: CudaSlice<f32> = random_f32(stream, ROWS * D, 1.0, 2)?;
    let w = random_bf16(stream, D, 1.0, 3)?;
    let mut normed: CudaSlice<bf16> = stream.alloc_zeros(ROWS * D)?;
    // The launcher's entry (a warp per row at this width since session 21) and the block per row, which it replaced.
    let picked = rms_norm::kernel_for::<f32>(&spans, D, (D, D));
    for kernel in [picked, rms_norm::kernel::<f32>()] {
        let ms = time(stream, &mut flush, 3, 10, || {
            rms_norm::launch_with(kernel, gpu, stream, (&hidden, D), &w, (&mut normed, D), &spans, D, 1e-5)
        })?;
        out.push(Measured {
            op: "rms_norm",
            shape: "1b-16x1152".into(),
            imp: kernel.entry.into(),
            ms,
            flops: 0.0,
            bytes: (ROWS * D * (4 + 2)) as f64,
        });
    }
    let ms = time(stream, &mut flush, 3, 10, || {
        to_bf16(gpu, stream, &hidden, D, &mut normed, D, &spans, D)
    })?;
    out.push(Measured {
        op: "to_bf16",
        shape: "1b-16x1152".into(),
        imp: "to_bf16_f32".into(),
        ms,
        flops: 0.0,
        bytes: (ROWS * D * (4 + 2)) as f64,
    });
    let gate_up = random_bf16(stream, ROWS * 2 * INTER, 1.0, 4)?;
    let mut act: CudaSlice<bf16> = stream.alloc_zeros(ROWS * INTER)?;
    let ms = time(stream, &mut flush, 3, 10, || {
        swiglu(gpu, stream, &gate_up, 2 * INTER, &mut act, INTER, &spans, INTER)
    })?;
    out.push(Measured {
        op: "swiglu",
        shape: "1b-16x1152".into(),
        imp: "swiglu_bf16".into(),
        ms,
        flops: 0.0,
        bytes: (ROWS * INTER * 3 * 2) as f64,
    });
    Ok(out)
}
