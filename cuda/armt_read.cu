/*
The last step of ARMT's associative read (armt-spec §1.3), over the rows of the cells of one step: with φ = dpfp(h·W_qᵀ)
and num = φ·A from the products before it, each row becomes h ← bf16(h + num / (φ · z + ε)), ε = 1e-5, for all d
columns, where z is the cell's normaliser z[span.state] (f32). One block per row: blockIdx.y is the span (the cell),
blockIdx.x the row inside it; blocks past a span's last row return at once. The denominator is a dot product over the
D = 2·ν·d_mem features reduced in a fixed order (each thread's strided partial sum, a xor butterfly inside each warp,
the warps' sums added in warp order), so a row's bits never depend on which spans share the launch. The read is
skipped for segment 0: the caller leaves those cells out (span.flag is not looked at).
Bytes: rows · (4·D + 4·d + 2·2·d) of DRAM traffic (φ and num read, h read and written in bf16; z comes from L2);
FLOPs: rows · (2·D + 2·d) — divide by the time for the achieved bandwidth.
*/
#include <cuda_bf16.h>

#include "common/common.cuh"
#include "common/params.h"

// Fixed, not a launch parameter: the reduction order (which features each thread sums) depends on it.
#define READ_THREADS 256
#define READ_WARPS (READ_THREADS / 32)
// The ε the original ARMT code adds to the denominator (reference::MEM_EPS).
#define ARMT_EPS 1e-5f

// ----------------------------------------------------------------------------
// CUDA kernels

extern "C" __global__ void __launch_bounds__(READ_THREADS)
    armt_read_apply_bf16(const Spans spans, const float* __restrict__ num, const float* __restrict__ phi,
                         const float* __restrict__ z, __nv_bfloat16* __restrict__ h, int h_ld, int d, int d_key) {
    if ((int)blockIdx.y >= spans.count) return;
    const RowSpan span = spans.spans[blockIdx.y];
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
    __nv_bfloat16* hr = h + (size_t)(span.out_row + r) * h_ld;
    for (int c = threadIdx.x; c < d; c += READ_THREADS) {
        // As the reference: an IEEE division, then the add, then one rounding to bf16.
        hr[c] = __float2bfloat16_rn(__fadd_rn(__bfloat162float(hr[c]), __fdiv_rn(nr[c], den)));
    }
}
