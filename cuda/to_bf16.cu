/*
f32 rows to bf16 rows (round to nearest even, as __float2bfloat16 and half::bf16::from_f32): the f32 hidden rows a
projection reads, rounded once so the sm_90a GEMM (bf16 A through TMA) can take them. v1's gemm_nt_f32_bf16_f32
rounds the same way while it stages A, so the products see the same bf16 values either way.
`chunks` blocks per row (launch.rs's row_chunks: several when a launch has few rows, a decode step): blockIdx.y is the
span (the cell), blockIdx.x = row · chunks + chunk; no arithmetic, so the bits never depend on the other spans of the
launch or on `chunks`. Four columns a thread where every row is 16-byte aligned (d and both strides multiples of 4:
the 160M step's 7,680 rows took 17 µs for 35 MB, session 12). Bytes: 6 · rows · d (f32 read, bf16 written).
*/
#include <cuda_bf16.h>

#include "common/common.cuh"
#include "common/params.h"
#include "common/pdl.cuh"

#define TO_BF16_THREADS 128

// CHUNKED (the `_few` entry): `chunks` blocks per row; else one block a row (`chunks` is 1, the stride a constant).
template <bool CHUNKED>
__device__ __forceinline__ void to_bf16(const Spans& spans, const float* __restrict__ x, int x_ld,
                                        __nv_bfloat16* __restrict__ y, int y_ld, int d, int chunks) {
    const RowSpan span = spans.spans[blockIdx.y];
    const auto [r, first, step] = row_block<TO_BF16_THREADS, CHUNKED>(chunks);
    if (r >= span.rows) return;
    const float* xr = x + (size_t)(span.in_row + r) * x_ld;
    __nv_bfloat16* yr = y + (size_t)(span.out_row + r) * y_ld;
    if (((x_ld | y_ld | d) & 3) == 0 && ((reinterpret_cast<size_t>(x) | reinterpret_cast<size_t>(y)) & 15) == 0) {
        // four columns a thread (16-byte loads, 8-byte stores: half the instructions a byte; every row 16-byte aligned)
#pragma unroll 4
        for (int c = 4 * first; c < d; c += 4 * step) {
            const float4 v = *reinterpret_cast<const float4*>(xr + c);
            __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
            uint2 packed;
            packed.x = *reinterpret_cast<const unsigned*>(&lo);
            packed.y = *reinterpret_cast<const unsigned*>(&hi);
            *reinterpret_cast<uint2*>(yr + c) = packed;
        }
        return;
    }
#pragma unroll 4
    for (int c = first; c < d; c += step) yr[c] = __float2bfloat16_rn(xr[c]);
}

extern "C" __global__ void __launch_bounds__(TO_BF16_THREADS)
    to_bf16_f32(const Spans spans, const float* __restrict__ x, int x_ld, __nv_bfloat16* __restrict__ y, int y_ld,
                int d, int chunks) { pdl_entry();
    to_bf16<false>(spans, x, x_ld, y, y_ld, d, chunks);
}

extern "C" __global__ void __launch_bounds__(TO_BF16_THREADS)
    to_bf16_f32_few(const Spans spans, const float* __restrict__ x, int x_ld, __nv_bfloat16* __restrict__ y, int y_ld,
                    int d, int chunks) { pdl_entry();
    to_bf16<true>(spans, x, x_ld, y, y_ld, d, chunks);
}
