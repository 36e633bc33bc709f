/*
DPFP (deterministic parameter-free projection), the feature map of ARMT's associative memory (armt-spec §1.2), over
the rows of the cells of one step: per row, u (d_mem values, read from column u_col of a wider matrix so that the K
columns of the fused write product P·[W_k|W_v|w_β]ᵀ need no copy) becomes x = [relu(u), relu(−u)] (2·d_mem values)
and φ (D = 2·ν·d_mem values), whose block j = 1..ν holds x ⊙ roll(x, j): φ[(j−1)·2d_m + i] = x[i] · x[(i − j) mod 2d_m],
the feature order of reference::dpfp::dpfp. Every feature is one f32 product of two values it reads itself, so a
thread computes any element on its own: a grid-stride loop over the span's rows × D elements, blockIdx.y the span.
No reduction at all, hence trivially independent of which spans share the launch.
Bytes: 4 · rows · (d_mem + D) of DRAM traffic (u read once, each value re-read from L1 2·ν times; φ written once);
FLOPs: rows · D products — divide by the time for the achieved bandwidth.
*/
#include "common/common.cuh"
#include "common/params.h"
#include "common/pdl.cuh"

// Threads per block; each thread handles every (DPFP_THREADS · gridDim.x)-th element of its span.
#define DPFP_THREADS 256

// ----------------------------------------------------------------------------
// CUDA kernels

// x[i] of the row ur: relu(u[i]) for i < d_mem, relu(−u[i − d_mem]) after (fmaxf is the reference's f32::max).
__device__ __forceinline__ float dpfp_x(const float* ur, int i, int d_mem) {
    return i < d_mem ? fmaxf(ur[i], 0.0f) : fmaxf(-ur[i - d_mem], 0.0f);
}

extern "C" __global__ void __launch_bounds__(DPFP_THREADS)
    dpfp_f32(const Spans spans, const float* __restrict__ u, int u_ld, int u_col, float* __restrict__ phi, int phi_ld,
             int d_mem, int nu) { pdl_entry();
    if ((int)blockIdx.y >= spans.count) return;
    const RowSpan span = spans.spans[blockIdx.y];
    const int w = 2 * d_mem;   // length of x
    const int width = nu * w;  // D
    const long long n = (long long)span.rows * width;
    const long long stride = (long long)gridDim.x * DPFP_THREADS;
    for (long long e = (long long)blockIdx.x * DPFP_THREADS + threadIdx.x; e < n; e += stride) {
        const int r = (int)(e / width);
        const int c = (int)(e - (long long)r * width);
        const int j = c / w + 1;               // block 1..nu
        const int i = c - (j - 1) * w;         // position inside the block, 0..w-1
        const int k = (i + w - j % w) % w;     // (i − j) mod w, never negative
        const float* ur = u + (size_t)(span.in_row + r) * u_ld + u_col;
        // __fmul_rn: one rounded product, as the reference computes it (no contraction can apply anyway).
        phi[(size_t)(span.out_row + r) * phi_ld + c] = __fmul_rn(dpfp_x(ur, i, d_mem), dpfp_x(ur, k, d_mem));
    }
}
