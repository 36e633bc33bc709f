//! The projections of every model shape as the engine runs them — q/k/v (bf16 out), o and down (f32, accumulating
//! into the residual), gate/up with SwiGLU fused — on the v2 kernel (`gemm_sm90`), beside cuBLAS bf16 (f32 compute)
//! on the same total rows as one GEMM and, where the cells are equal, as a strided-batched GEMM of the cells; and the
//! version-1 kernel at the 1B shapes for the ladder. For o and down cuBLAS also runs the engine's work exactly
//! (`cublas-f32acc`: f32 C += A·Bᵀ), the fair yardstick for them. Shapes are those of `check/gemm_sm90.rs`'s real cases and issue
//! #12: cells of T + M = 1152 rows (a short cell of 300 + 128 among 16), LLaMA-160M's 12 cells of 640.

use cudarc::cublas::{sys::cublasOperation_t, CudaBlas, Gemm, GemmConfig, StridedBatchedConfig};
use cudarc::driver::CudaSlice;
use half::bf16;

use super::{l2_flusher, random_bf16, random_f32, time, Measured};
use crate::gemm::{gemm_nt_bf16_bf16_bf16, gemm_nt_bf16_bf16_f32, GemmGroup};
use crate::gemm_sm90::{
    decode_tiles_enabled, gemm_sm90_nt_bf16_bf16_bf16, gemm_sm90_nt_bf16_bf16_f32, gemm_sm90_nt_bf16_bf16_swiglu,
    launch_at_width, launch_tile_width, Epilogue, F32_OFFLOADED_WIDTHS,
};
use crate::{Gpu, KernelError};

const WARMUP: usize = 3;
const REPS: usize = 10;

/// How the engine runs a projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proj {
    /// q/k/v: bf16 out.
    Qkv,
    /// o and down: f32 out, added into the residual.
    Residual,
    /// gate/up with SwiGLU: `n` = 2I B rows, I outputs.
    GateUp,
}

/// One shape: a projection of a model, `n` columns (B rows) over `k`, for cells of the given rows.
struct Shape {
    name: String,
    proj: Proj,
    n: usize,
    k: usize,
    cells: Vec<usize>,
    /// Distinct layers the cells use (one per cell up to the model's layers).
    layers: usize,
}

fn shapes() -> Vec<Shape> {
    let mut out = Vec::new();
    // (model, layers, d, qkv width, inter, cell counts (each 1152 rows unless 160M))
    let models: [(&str, usize, usize, usize, usize); 4] = [
        ("1b", 16, 2048, 3072, 8192),
        ("160m", 12, 768, 2304, 3072),
        ("3b", 28, 3072, 5120, 8192),
        ("8b", 32, 4096, 6144, 14336),
    ];
    for (model, layers, d, qkv, inter) in models {
        let counts: Vec<(String, Vec<usize>)> = match model {
            "1b" => vec![
                ("x1".into(), vec![1152]),
                ("x4".into(), vec![1152; 4]),
                ("x16".into(), vec![1152; 16]),
                ("x16s".into(), [vec![1152; 15], vec![428]].concat()),
            ],
            "160m" => vec![("x12".into(), vec![640; 12])],
            _ => vec![("x1".into(), vec![1152]), (format!("x{layers}"), vec![1152; layers])],
        };
        for (tag, cells) in counts {
            // o reads the attention output, whose width (H·hd) is d for these models
            for (proj, pname, n, k) in [
                (Proj::Qkv, "qkv", qkv, d),
                (Proj::Residual, "o", d, d),
                (Proj::GateUp, "gateup-swiglu", 2 * inter, d),
                (Proj::Residual, "down", d, inter),
            ] {
                out.push(Shape {
                    name: format!("{model} {pname} {tag}"),
                    proj,
                    n,
                    k,
                    layers: cells.len().min(layers),
                    cells: cells.clone(),
                });
            }
        }
    }
    out
}

/// Every projection shape: ours (v2), cuBLAS one GEMM and batched; v1 at the 1B ×16 shapes.
pub fn all(gpu: &Gpu) -> Result<Vec<Measured>, KernelError> {
    let stream = gpu.stream();
    let blas = CudaBlas::new(stream.clone()).map_err(|e| KernelError::InvalidArgument {
        kernel: "cublas".into(),
        msg: format!("cuBLAS did not load: {e}"),
    })?;
    let mut flush = l2_flusher(stream)?;
    let mut out = Vec::new();
    for (i, s) in shapes().iter().enumerate() {
        let rows: usize = s.cells.iter().sum();
        let flops = 2.0 * rows as f64 * s.n as f64 * s.k as f64;
        let a = random_bf16(stream, rows * s.k, 1.0, 10 + i as u64)?;
        let b = random_bf16(stream, s.layers * s.n * s.k, 1.0 / (s.k as f32).sqrt(), 20 + i as u64)?;
        let out_cols = if s.proj == Proj::GateUp { s.n / 2 } else { s.n };
        let mut row = 0;
        let groups: Vec<GemmGroup> = s
            .cells
            .iter()
            .enumerate()
            .map(|(c, &m)| {
                let g = GemmGroup {
                    a_offset: row * s.k,
                    b_offset: (c % s.layers) * s.n * s.k,
                    c_offset: row * out_cols,
                    m,
                    n: s.n,
                    k: s.k,
                    lda: s.k,
                    ldb: s.k,
                    ldc: out_cols,
                };
                row += m;
                g
            })
            .collect();
        let mut measure = |imp: &str, ms: f64| {
            out.push(Measured {
                op: "gemm",
                shape: s.name.clone(),
                imp: imp.into(),
                ms,
                flops,
                bytes: 0.0,
            })
        };
        // ours, as the engine calls it
        let ms = match s.proj {
            Proj::Qkv => {
                let mut c: CudaSlice<bf16> = stream.alloc_zeros(rows * out_cols)?;
                time(stream, &mut flush, WARMUP, REPS, || {
                    gemm_sm90_nt_bf16_bf16_bf16(gpu, stream, &a, &b, &mut c, &groups)
                })?
            }
            Proj::Residual => {
                let mut c = random_f32(stream, rows * out_cols, 1.0, 30)?;
                time(stream, &mut flush, WARMUP, REPS, || {
                    gemm_sm90_nt_bf16_bf16_f32(gpu, stream, &a, &b, &mut c, &groups, true)
                })?
            }
            Proj::GateUp => {
                let mut c: CudaSlice<bf16> = stream.alloc_zeros(rows * out_cols)?;
                time(stream, &mut flush, WARMUP, REPS, || {
                    gemm_sm90_nt_bf16_bf16_swiglu(gpu, stream, &a, &b, &mut c, &groups)
                })?
            }
        };
        measure("gemm_sm90", ms);
        // o and down at the other offloaded-epilogue widths than the launch's (which the row above took): the same
        // bytes at every width, so the tile rule may move to whichever is fastest here (#12's misses are these shapes)
        if s.proj == Proj::Residual {
            let f32_acc = Epilogue::F32 { accumulate: true };
            let chosen = launch_tile_width(&groups, f32_acc, gpu.sm_count(), decode_tiles_enabled());
            for bn in F32_OFFLOADED_WIDTHS.into_iter().filter(|&bn| bn != chosen) {
                let mut c = random_f32(stream, rows * out_cols, 1.0, 30)?;
                let ms = time(stream, &mut flush, WARMUP, REPS, || {
                    launch_at_width(gpu, stream, (&a, &b), &mut c, &groups, f32_acc, bn)
                })?;
                measure(&format!("gemm_sm90 bn{bn}"), ms);
            }
        }
        // version 1 at the 1B x16 shapes (the ladder); its gate/up has no fused SwiGLU, so it is timed bf16-out
        if s.name.starts_with("1b ") && s.name.ends_with(" x16") {
            let ms = match s.proj {
                Proj::Residual => {
                    let mut c = random_f32(stream, rows * out_cols, 1.0, 31)?;
                    time(stream, &mut flush, WARMUP, REPS, || {
                        gemm_nt_bf16_bf16_f32(gpu, stream, &a, &b, &mut c, &groups, true)
                    })?
                }
                _ => {
                    let plain: Vec<GemmGroup> = groups
                        .iter()
                        .map(|g| GemmGroup {
                            c_offset: g.a_offset / s.k * s.n,
                            ldc: s.n,
                            ..*g
                        })
                        .collect();
                    let mut c: CudaSlice<bf16> = stream.alloc_zeros(rows * s.n)?;
                    time(stream, &mut flush, WARMUP, REPS, || {
                        gemm_nt_bf16_bf16_bf16(gpu, stream, &a, &b, &mut c, &plain, false)
                    })?
                }
            };
            measure("gemm_v1", ms);
        }
        // cuBLAS, bf16 out (its fastest output), C = A·Bᵀ with layer 0's B for all rows as one GEMM
        let mut c: CudaSlice<bf16> = stream.alloc_zeros(rows * s.n)?;
        let cfg = GemmConfig {
            transa: cublasOperation_t::CUBLAS_OP_T,
            transb: cublasOperation_t::CUBLAS_OP_N,
            m: s.n as i32,
            n: rows as i32,
            k: s.k as i32,
            alpha: bf16::ONE,
            lda: s.k as i32,
            ldb: s.k as i32,
            beta: bf16::ZERO,
            ldc: s.n as i32,
        };
        let ms = time(stream, &mut flush, WARMUP, REPS, || {
            // SAFETY: column-major C^T[n, rows] = B[n, k] (as its transpose of the stored [k, n]) · A^T[k, rows]:
            // B holds at least n·k elements (layer 0), A rows·k, C rows·n; the leading dimensions are the stored row
            // lengths, so every access lies inside the three buffers.
            unsafe { blas.gemm(cfg, &b, &a, &mut c) }.map_err(|e| KernelError::InvalidArgument {
                kernel: "cublas".into(),
                msg: e.to_string(),
            })
        })?;
        measure("cublas", ms);
        let equal = s.cells.windows(2).all(|w| w[0] == w[1]);
        if s.cells.len() > 1 && equal {
            let m = s.cells[0];
            let batched = StridedBatchedConfig {
                gemm: GemmConfig { n: m as i32, ..cfg },
                batch_size: s.cells.len() as i32,
                stride_a: (s.n * s.k * usize::from(s.layers > 1)) as i64,
                stride_b: (m * s.k) as i64,
                stride_c: (m * s.n) as i64,
            };
            let ms = time(stream, &mut flush, WARMUP, REPS, || {
                // SAFETY: batch i reads B layer (i if several layers else 0) — at most `layers` blocks of n·k, all
                // inside b since cells ≤ layers or the stride is 0 — and A rows i·m.., writing C rows i·m..: with
                // cells·m = rows, every access lies inside the buffers.
                unsafe { blas.gemm_strided_batched(batched, &b, &a, &mut c) }.map_err(|e| {
                    KernelError::InvalidArgument {
                        kernel: "cublas".into(),
                        msg: e.to_string(),
                    }
                })
            })?;
            measure("cublas-batched", ms);
        }
        if s.proj == Proj::Residual {
            // the same work as ours: C (f32) += A·Bᵀ, so the yardstick reads and writes the f32 rows too
            let mut c = random_f32(stream, rows * s.n, 1.0, 32)?;
            let ms = time(stream, &mut flush, WARMUP, REPS, || {
                cublas_f32_accumulate(&blas, stream, (s.n, rows, s.k), &b, &a, &mut c, None)
            })?;
            measure("cublas-f32acc", ms);
            if s.cells.len() > 1 && equal {
                let m = s.cells[0];
                let strides = BatchStrides {
                    count: s.cells.len(),
                    b: s.n * s.k * usize::from(s.layers > 1),
                    a: m * s.k,
                    c: m * s.n,
                };
                let ms = time(stream, &mut flush, WARMUP, REPS, || {
                    cublas_f32_accumulate(&blas, stream, (s.n, m, s.k), &b, &a, &mut c, Some(strides))
                })?;
                measure("cublas-f32acc-batched", ms);
            }
        }
    }
    Ok(out)
}

/// Strides (in elements) of a strided-batched GEMM over the cells.
#[derive(Debug, Clone, Copy)]
struct BatchStrides {
    count: usize,
    b: usize,
    a: usize,
    c: usize,
}

/// cuBLAS `C += A·Bᵀ` with bf16 A and B, f32 C and f32 compute (`cublasGemmEx`, or `cublasGemmStridedBatchedEx` over
/// `batch`), row-major: `(n, rows, k)` with C `[rows, n]`, A `[rows, k]`, B `[n, k]`.
fn cublas_f32_accumulate(
    blas: &CudaBlas,
    stream: &cudarc::driver::CudaStream,
    (n, rows, k): (usize, usize, usize),
    b: &CudaSlice<bf16>,
    a: &CudaSlice<bf16>,
    c: &mut CudaSlice<f32>,
    batch: Option<BatchStrides>,
) -> Result<(), KernelError> {
    use cudarc::cublas::sys::{cublasComputeType_t, cublasGemmAlgo_t, cublasStatus_t, cudaDataType};
    use cudarc::driver::{DevicePtr, DevicePtrMut};
    let count = batch.map_or(1, |s| s.count);
    let (sa, sb, sc) = batch.map_or((0, 0, 0), |s| (s.a, s.b, s.c));
    // Every access must lie inside the buffers (the SAFETY argument below rests on these).
    let fits = (count - 1) * sb + n * k <= b.len()
        && (count - 1) * sa + rows * k <= a.len()
        && (count - 1) * sc + rows * n <= c.len();
    if !fits {
        return Err(KernelError::InvalidArgument {
            kernel: "cublas".into(),
            msg: "the GEMM does not fit its buffers".into(),
        });
    }
    let (alpha, beta) = (1.0f32, 1.0f32);
    let (t, nn) = (cublasOperation_t::CUBLAS_OP_T, cublasOperation_t::CUBLAS_OP_N);
    let (bf, f) = (cudaDataType::CUDA_R_16BF, cudaDataType::CUDA_R_32F);
    let (compute, algo) = (
        cublasComputeType_t::CUBLAS_COMPUTE_32F,
        cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
    );
    let (b_ptr, _gb) = b.device_ptr(stream);
    let (a_ptr, _ga) = a.device_ptr(stream);
    let (c_ptr, _gc) = c.device_ptr_mut(stream);
    let (n, rows, k) = (n as i32, rows as i32, k as i32);
    // SAFETY: column-major C^T[n, rows] += B^T-op[n, k] · A[k, rows] (the stored row-major B [n, k] read transposed,
    // A [rows, k] as column-major [k, rows]); the checks above keep every batch's B, A and C inside the three
    // buffers, whose device pointers outlive the call (the guards are held); alpha and beta are f32 host scalars, as
    // CUBLAS_COMPUTE_32F with the default (host) pointer mode takes them; the handle is bound to `stream`.
    let status = unsafe {
        match batch {
            None => cudarc::cublas::sys::cublasGemmEx(
                *blas.handle(),
                t,
                nn,
                n,
                rows,
                k,
                (&alpha as *const f32).cast(),
                b_ptr as *const _,
                bf,
                k,
                a_ptr as *const _,
                bf,
                k,
                (&beta as *const f32).cast(),
                c_ptr as *mut _,
                f,
                n,
                compute,
                algo,
            ),
            Some(_) => cudarc::cublas::sys::cublasGemmStridedBatchedEx(
                *blas.handle(),
                t,
                nn,
                n,
                rows,
                k,
                (&alpha as *const f32).cast(),
                b_ptr as *const _,
                bf,
                k,
                sb as i64,
                a_ptr as *const _,
                bf,
                k,
                sa as i64,
                (&beta as *const f32).cast(),
                c_ptr as *mut _,
                f,
                n,
                sc as i64,
                count as i32,
                compute,
                algo,
            ),
        }
    };
    if status != cublasStatus_t::CUBLAS_STATUS_SUCCESS {
        return Err(KernelError::InvalidArgument {
            kernel: "cublas".into(),
            msg: format!("cublasGemmEx: {status:?}"),
        });
    }
    Ok(())
}
