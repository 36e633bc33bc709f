/*
One row of RMSNorm by 128 threads, with the bits of every rms_norm entry (rms_norm.cu): thread t's fmaf chain over
columns t, t + 128, ... in order, the xor butterfly inside each warp, the four warp sums added in warp order by
thread 0, s = rsqrtf(total / d + eps), y = bf16(w · (x · s)). The row (d <= RMS_ROW_CACHED · 128 = 4,096 columns) is
loaded once, all at the start, and kept in registers for the second pass. Shared by rms_norm.cu's `_few` entries and
the norm tails (norm_tail.cuh: the last CTA of the launch before a norm normalises its rows), so a row normalised by
either has the same bytes.
*/
#pragma once

#include <cuda_bf16.h>

constexpr int RMS_ROW_THREADS = 128;
constexpr int RMS_ROW_CACHED = 32;

// load(c): column c of x as f32. sync(): a barrier of the 128 threads (t = 0..127). shared: 5 floats of shared
// memory (the warp sums, then the row's scale), free again when this returns to a caller that syncs before its next
// use (a row loop may call it again at once: the scale is read before the next row's first barrier and the warp sums
// written only before it).
template <typename Load, typename Sync>
__device__ __forceinline__ void rms_norm_row_cached(const Load& load, const __nv_bfloat16* __restrict__ wr,
                                                    __nv_bfloat16* __restrict__ yr, int d, float eps, int t,
                                                    float* shared, const Sync& sync) {
    float xv[RMS_ROW_CACHED];
#pragma unroll
    for (int j = 0; j < RMS_ROW_CACHED; ++j) {
        const int c = t + j * RMS_ROW_THREADS;
        xv[j] = c < d ? load(c) : 0.0f;
    }
    float ss = 0.0f;
#pragma unroll
    for (int j = 0; j < RMS_ROW_CACHED; ++j) {
        if (t + j * RMS_ROW_THREADS < d) ss = fmaf(xv[j], xv[j], ss);
    }
    // xor butterfly: every lane ends with the same bits (fp addition is commutative).
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if ((t & 31) == 0) shared[t >> 5] = ss;
    sync();
    if (t == 0) {
        float total = 0.0f;
        for (int i = 0; i < RMS_ROW_THREADS / 32; ++i) total += shared[i];
        shared[RMS_ROW_THREADS / 32] = rsqrtf(total / (float)d + eps);
    }
    sync();
    const float s = shared[RMS_ROW_THREADS / 32];
#pragma unroll
    for (int j = 0; j < RMS_ROW_CACHED; ++j) {
        const int c = t + j * RMS_ROW_THREADS;
        if (c < d) yr[c] = __float2bfloat16(__bfloat162float(wr[c]) * (xv[j] * s));
    }
}
