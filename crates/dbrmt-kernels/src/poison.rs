//! Launcher of `cuda/poison.cu`: fill a device buffer of 4-byte elements with one bit pattern.
//!
//! GPU tests poison every output buffer before running the kernel under test, so an element the
//! kernel never writes keeps a pattern (for f32, [`POISON_F32_BITS`], a NaN) that no comparison
//! with the CPU reference lets through.

use bytemuck::AnyBitPattern;
use cudarc::driver::{CudaStream, DevicePtrMut, LaunchConfig};

use crate::{cubins, Gpu, Kernel, KernelError};

/// The bits [`poison_f32`] writes: a quiet NaN with a recognisable payload.
pub const POISON_F32_BITS: u32 = 0x7FC0_DEAD;

const POISON_U32: Kernel = Kernel::new(cubins::POISON, "poison_u32");

const BLOCK_SIZE: u32 = 256;
/// The kernel loops over the buffer (grid-stride), so the grid is capped: enough blocks to fill
/// every SM of an H100/H200 several times over, without launching millions for large buffers.
const MAX_BLOCKS: u32 = 4096;

/// Sets every element of `buf` to the 4-byte `pattern`, on `stream`.
///
/// `T` is any 4-byte type for which every bit pattern is a valid value (`u32`, `i32`, `f32`, …);
/// other sizes are rejected at compile time. Works on a whole `CudaSlice` or a `CudaViewMut` of
/// one. Asynchronous: ordered on `stream` like any kernel.
pub fn poison_u32<T, B>(gpu: &Gpu, stream: &CudaStream, buf: &mut B, pattern: u32) -> Result<(), KernelError>
where
    T: AnyBitPattern,
    B: DevicePtrMut<T>,
{
    const {
        assert!(
            std::mem::size_of::<T>() == 4,
            "poison_u32 writes 4-byte words: the element type must be 4 bytes"
        )
    };
    let f = gpu.function(&POISON_U32)?;
    let n = buf.len();
    if n == 0 {
        return Ok(());
    }
    let blocks = n.div_ceil(BLOCK_SIZE as usize).min(MAX_BLOCKS as usize) as u32;
    let cfg = LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (BLOCK_SIZE, 1, 1),
        shared_mem_bytes: 0,
    };
    let n = n as u64;
    // The kernel takes `unsigned int*`; passing the raw address lets one launcher serve every
    // 4-byte element type. `_write` records the write for cudarc's stream ordering and must live
    // until the launch is enqueued.
    let (ptr, _write) = buf.device_ptr_mut(stream);
    let mut launch = crate::launch::Launch::new(stream, &f);
    launch.arg(&ptr).arg(&n).arg(&pattern);
    // SAFETY: the arguments match `poison_u32(unsigned int* out, unsigned long long n, unsigned
    // int pattern)` in order and size (a device pointer is 8 bytes). `ptr` points at `n` elements
    // of 4 bytes that `buf` owns or borrows mutably for the duration of this call, so the kernel
    // writes only memory we may write (threads with i >= n do nothing), and any 4-byte pattern is
    // a valid `T` (`AnyBitPattern`).
    unsafe { launch.launch(cfg) }?;
    Ok(())
}

/// Fills an f32 buffer with the NaN [`POISON_F32_BITS`], on `stream`.
pub fn poison_f32<B>(gpu: &Gpu, stream: &CudaStream, buf: &mut B) -> Result<(), KernelError>
where
    B: DevicePtrMut<f32>,
{
    poison_u32(gpu, stream, buf, POISON_F32_BITS)
}
