/*
The last step of ARMT's associative read (armt-spec §1.3), over the rows of the cells of one step: with φ = dpfp(h·W_qᵀ)
and num = φ·A from the products before it, each row becomes h ← h + num / (φ · z + ε), ε = 1e-5, for all d columns,
where z is the cell's normaliser z[span.state] (f32). h is the hidden rows, bf16 or f32 (entry points
`armt_read_apply_<H>`, one template): the add is in f32, and a bf16 row is rounded once after it. One block per row:
blockIdx.y is the span (the cell), blockIdx.x the row inside it; blocks past a span's last row return at once. The
denominator is a dot product over the D = 2·ν·d_mem features reduced in a fixed order (each thread's strided partial
sum, a xor butterfly inside each warp, the warps' sums added in warp order), so a row's bits never depend on which
spans share the launch. The read is skipped for segment 0: the caller leaves those cells out (span.flag is not looked
at).
Bytes: rows · (4·D + 4·d + 2·sizeof(H)·d) of DRAM traffic (φ and num read, h read and written; z comes from L2);
FLOPs: rows · (2·D + 2·d) — divide by the time for the achieved bandwidth.
*/
#include <cuda_bf16.h>

#include "common/armt.cuh"
#include "common/common.cuh"
#include "common/params.h"
#include "common/pdl.cuh"

// Fixed, not a launch parameter: the reduction order (which features each thread sums) depends on it.
#define READ_THREADS 256
#define READ_WARPS (READ_THREADS / 32)

namespace {

__device__ __forceinline__ float load_h(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ float load_h(const float* p) { return *p; }
__device__ __forceinline__ void store_h(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }
__device__ __forceinline__ void store_h(float* p, float v) { *p = v; }

template <typename H>
__device__ __forceinline__ void armt_read_apply(const RowSpan span, const float* __restrict__ num,
                                                const float* __restrict__ phi, const float* __restrict__ z,
                                                H* __restrict__ h, int h_ld, int d, int d_key) {
    const int r = blockIdx.x;
    if (r >= span.rows) return;  // block-uniform: no thread of this block reaches the barrier below

    const float* q = phi + (size_t)(span.in_row + r) * d_key;
    const float* zs = z + (size_t)span.state * d_key;
    float part = 0.0f;
    for (int c = threadIdx.x; c < d_key; c += READ_THREADS) part = fmaf(q[c], zs[c], part);
    // xor butterfly: every lane ends with the same bits (fp addition is commutative).
    for (int o = 16; o > 0; o >>= 1) part += __shfl_xor_sync(0xffffffffu, part, o);

    __shared__ float warp_sums[READ_WARPS];
    if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = part;
    __syncthreads();
    float dot = 0.0f;
    for (int w = 0; w < READ_WARPS; ++w) dot += warp_sums[w];  // same order in every thread
    const float den = dot + ARMT_EPS;

    const float* nr = num + (size_t)(span.in_row + r) * d;
    H* hr = h + (size_t)(span.out_row + r) * h_ld;
    for (int c = threadIdx.x; c < d; c += READ_THREADS) {
        // As the reference: an IEEE division, then the add (in f32), then at most one rounding (to bf16).
        store_h(hr + c, __fadd_rn(load_h(hr + c), __fdiv_rn(nr[c], den)));
    }
}

}  // namespace

// ----------------------------------------------------------------------------
// CUDA kernels

extern "C" __global__ void __launch_bounds__(READ_THREADS)
    armt_read_apply_bf16(const Spans spans, const float* __restrict__ num, const float* __restrict__ phi,
                         const float* __restrict__ z, __nv_bfloat16* __restrict__ h, int h_ld, int d, int d_key) { pdl_entry();
    if ((int)blockIdx.y >= spans.count) return;
    armt_read_apply(spans.spans[blockIdx.y], num, phi, z, h, h_ld, d, d_key);
}

// As armt_read_apply_bf16, with f32 hidden rows (no rounding after the add).
extern "C" __global__ void __launch_bounds__(READ_THREADS)
    armt_read_apply_f32(const Spans spans, const float* __restrict__ num, const float* __restrict__ phi,
                        const float* __restrict__ z, float* __restrict__ h, int h_ld, int d, int d_key) { pdl_entry();
    if ((int)blockIdx.y >= spans.count) return;
    armt_read_apply(spans.spans[blockIdx.y], num, phi, z, h, h_ld, d, d_key);
}
