//! The memory's f32 products at a 1B step (16 cells; D = 384, d = 2048, M = 128): the read's `φ·A`, the write's
//! `kφ·A` and `A += kφᵀ·u`, on the tensor cores (3×TF32) and on the SIMT kernel, beside cuBLAS's f32 SGEMM on the
//! same total rows (its batched form needs equal cells, which these are).

use cudarc::cublas::{sys::cublasOperation_t, CudaBlas, Gemm, GemmConfig};
use cudarc::driver::CudaSlice;

use super::{l2_flusher, random_f32, time, Measured};
use crate::gemm::{gemm_nn_f32_f32_f32, gemm_tn_f32_f32_f32, GemmGroup};
use crate::gemm_tf32x3_sm90::{gemm_sm90_nn_f32_f32_f32_tf32x3, gemm_sm90_tn_f32_f32_f32_tf32x3};
use crate::{Gpu, KernelError};

const CELLS: usize = 16;
const D_KEY: usize = 384;
const D: usize = 2048;
const M: usize = 128;

pub fn all(gpu: &Gpu) -> Result<Vec<Measured>, KernelError> {
    let stream = gpu.stream();
    let blas = CudaBlas::new(stream.clone()).map_err(|e| KernelError::InvalidArgument {
        kernel: "cublas".into(),
        msg: format!("cuBLAS did not load: {e}"),
    })?;
    let mut flush = l2_flusher(stream)?;
    let mut out = Vec::new();
    let states = random_f32(stream, CELLS * D_KEY * D, 0.05, 60)?;
    for (name, rows) in [("read φ·A 16x1152", 1152), ("write kφ·A 16x128", M)] {
        let x = random_f32(stream, CELLS * rows * D_KEY, 1.0, 61)?;
        let mut y: CudaSlice<f32> = stream.alloc_zeros(CELLS * rows * D)?;
        let groups: Vec<GemmGroup> = (0..CELLS)
            .map(|c| GemmGroup {
                a_offset: c * rows * D_KEY,
                b_offset: c * D_KEY * D,
                c_offset: c * rows * D,
                m: rows,
                n: D,
                k: D_KEY,
                lda: D_KEY,
                ldb: D,
                ldc: D,
            })
            .collect();
        let flops = 2.0 * (CELLS * rows * D_KEY * D) as f64;
        let ms = time(stream, &mut flush, 3, 10, || {
            gemm_sm90_nn_f32_f32_f32_tf32x3(gpu, stream, &x, &states, &mut y, &groups, false)
        })?;
        out.push(measured(name, "tf32x3", ms, flops));
        let ms = time(stream, &mut flush, 1, 5, || {
            gemm_nn_f32_f32_f32(gpu, stream, &x, &states, &mut y, &groups, false)
        })?;
        out.push(measured(name, "simt", ms, flops));
        // cuBLAS SGEMM over all rows with state 0 (the same FLOPs): column-major Yᵀ = Aᵀ · Xᵀ
        let cfg = GemmConfig {
            transa: cublasOperation_t::CUBLAS_OP_N,
            transb: cublasOperation_t::CUBLAS_OP_N,
            m: D as i32,
            n: (CELLS * rows) as i32,
            k: D_KEY as i32,
            alpha: 1.0f32,
            lda: D as i32,
            ldb: D_KEY as i32,
            beta: 0.0f32,
            ldc: D as i32,
        };
        let ms = time(stream, &mut flush, 3, 10, || {
            // SAFETY: column-major [D, rows·cells] = [D, D_KEY] (state 0, D_KEY·D elements of `states`) ·
            // [D_KEY, rows·cells] (`x`, all of it); the output is `y`, all of it. Leading dimensions are the stored
            // row lengths.
            unsafe { blas.gemm(cfg, &states, &x, &mut y) }.map_err(|e| KernelError::InvalidArgument {
                kernel: "cublas".into(),
                msg: e.to_string(),
            })
        })?;
        out.push(measured(name, "cublas-sgemm", ms, flops));
    }
    // the update: A[c] += kφ[c]ᵀ · u[c], kφ stored [M, D_KEY], u [M, D]
    let kphi = random_f32(stream, CELLS * M * D_KEY, 1.0, 62)?;
    let u = random_f32(stream, CELLS * M * D, 0.05, 63)?;
    let mut a = random_f32(stream, CELLS * D_KEY * D, 0.05, 64)?;
    let groups: Vec<GemmGroup> = (0..CELLS)
        .map(|c| GemmGroup {
            a_offset: c * M * D_KEY,
            b_offset: c * M * D,
            c_offset: c * D_KEY * D,
            m: D_KEY,
            n: D,
            k: M,
            lda: D_KEY,
            ldb: D,
            ldc: D,
        })
        .collect();
    let flops = 2.0 * (CELLS * D_KEY * M * D) as f64;
    let name = "write A += kφᵀ·u 16x384";
    let ms = time(stream, &mut flush, 3, 10, || {
        gemm_sm90_tn_f32_f32_f32_tf32x3(gpu, stream, &kphi, &u, &mut a, &groups, true)
    })?;
    out.push(measured(name, "tf32x3", ms, flops));
    let ms = time(stream, &mut flush, 1, 5, || {
        gemm_tn_f32_f32_f32(gpu, stream, &kphi, &u, &mut a, &groups, true)
    })?;
    out.push(measured(name, "simt", ms, flops));
    Ok(out)
}

fn measured(shape: &str, imp: &str, ms: f64, flops: f64) -> Measured {
    Measured {
        op: "memory",
        shape: shape.into(),
        imp: imp.into(),
        ms,
        flops,
        bytes: 0.0,
    }
}
