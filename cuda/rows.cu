/*
Row moves of a step whose decode rows share one GEMM group (docs/ARCHITECTURE.md, "Many requests"): the merged
product writes the rows of several requests one after another in the packed scratch, and these kernels take each
request's rows from there to where its own cell keeps them.
  copy_rows_bf16: rows in_row.. of `buf` to rows out_row.. of the same buffer (the q/k/v rows of a merged product,
                  from the scratch into each request's KV cache rows). A copy: the bits are the product's.
  add_rows_f32:   y[out_row + r] = y[out_row + r] + x[in_row + r] (the o and down products of a merged group, added
                  to each request's f32 hidden rows). One f32 add per element, C + product, exactly what the GEMMs'
                  fused residual add computes (gemm_sm90.cu's f32 epilogue, gemm_bf16.cu's store_out), so a row gets
                  the bits the fused add gives it.
One block per row: blockIdx.y is the span (the cell), blockIdx.x the row inside it; no element is touched by two
threads, and the launchers refuse spans whose outputs overlap each other or (copy) any span's input.
Bytes: copy 4 · rows · d; add 12 · rows · d.
*/
#include <cuda_bf16.h>

#include "common/common.cuh"
#include "common/params.h"
#include "common/pdl.cuh"

#define ROWS_THREADS 256

extern "C" __global__ void __launch_bounds__(ROWS_THREADS)
    copy_rows_bf16(const Spans spans, __nv_bfloat16* __restrict__ buf, int ld, int d) { pdl_entry();
    const RowSpan span = spans.spans[blockIdx.y];
    const int r = blockIdx.x;
    if (r >= span.rows) return;
    const __nv_bfloat16* src = buf + (size_t)(span.in_row + r) * ld;
    __nv_bfloat16* dst = buf + (size_t)(span.out_row + r) * ld;
    for (int c = threadIdx.x; c < d; c += ROWS_THREADS) dst[c] = src[c];
}

// CHUNKED (the `_few` entry): `chunks` blocks per row (launch.rs's row_chunks: several for a decode step's few rows);
// else one block a row. Elementwise, so the bits do not depend on it.
template <bool CHUNKED>
__device__ __forceinline__ void add_rows(const Spans& spans, const float* __restrict__ x, int x_ld,
                                         float* __restrict__ y, int y_ld, int d, int chunks) {
    const RowSpan span = spans.spans[blockIdx.y];
    const auto [r, first, step] = row_block<ROWS_THREADS, CHUNKED>(chunks);
    if (r >= span.rows) return;
    const float* xr = x + (size_t)(span.in_row + r) * x_ld;
    float* yr = y + (size_t)(span.out_row + r) * y_ld;
    for (int c = first; c < d; c += step) yr[c] = yr[c] + xr[c];
}

extern "C" __global__ void __launch_bounds__(ROWS_THREADS)
    add_rows_f32(const Spans spans, const float* __restrict__ x, int x_ld, float* __restrict__ y, int y_ld, int d,
                 int chunks) { pdl_entry();
    add_rows<false>(spans, x, x_ld, y, y_ld, d, chunks);
}

extern "C" __global__ void __launch_bounds__(ROWS_THREADS)
    add_rows_f32_few(const Spans spans, const float* __restrict__ x, int x_ld, float* __restrict__ y, int y_ld, int d,
                     int chunks) { pdl_entry();
    add_rows<true>(spans, x, x_ld, y, y_ld, d, chunks);
}
