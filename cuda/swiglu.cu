/*
SwiGLU activation of the LLaMA MLP over the rows of the cells of one step: the fused gate/up product gu holds gate in
columns [0, I) and up in [I, 2I) of each row; act = silu(gate) · up with silu(x) = x / (1 + e^−x), in f32, rounded once
to bf16. One block per row (blockIdx.y the span, blockIdx.x the row), blocks past a span's rows return at once; every
element is computed on its own, so the result cannot depend on the other spans of the launch.
Bytes: rows · I · 6 (gate and up read, act written, bf16).
*/
#include <cuda_bf16.h>

#include "common/common.cuh"
#include "common/params.h"
#include "common/pdl.cuh"

#define SWIGLU_THREADS 256

// ----------------------------------------------------------------------------
// CUDA kernels

// `inter` = I, the MLP's intermediate size.
extern "C" __global__ void __launch_bounds__(SWIGLU_THREADS)
    swiglu_bf16(const Spans spans, const __nv_bfloat16* __restrict__ gu, int gu_ld, __nv_bfloat16* __restrict__ act,
                int act_ld, int inter) { pdl_entry();
    const RowSpan span = spans.spans[blockIdx.y];
    const int r = blockIdx.x;
    if (r >= span.rows) return;

    const __nv_bfloat16* g = gu + (size_t)(span.in_row + r) * gu_ld;
    const __nv_bfloat16* u = g + inter;
    __nv_bfloat16* a = act + (size_t)(span.out_row + r) * act_ld;
    for (int c = threadIdx.x; c < inter; c += SWIGLU_THREADS) {
        const float x = __bfloat162float(g[c]);
        // expf, not __expf: the reference is f32 x / (1 + exp(-x)); for x << 0, exp(-x) = inf gives -0 as it does.
        const float silu = x / (1.0f + expf(-x));
        a[c] = __float2bfloat16(silu * __bfloat162float(u[c]));
    }
}
