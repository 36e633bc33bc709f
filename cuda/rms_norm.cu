/*
RMSNorm over the rows of the cells of one step: y = w[layer] · (x · rsqrt(mean(x²) + eps)) per row, in the order of
operations of HF LlamaRMSNorm (x bf16 or f32, f32 math, one rounding to bf16 on store). One block per row: blockIdx.y
is the span (the cell), blockIdx.x the row inside it; blocks past a span's last row return at once, so a row's
arithmetic (each thread's strided partial sum, a fixed xor-butterfly inside each warp, the warps' sums added in warp
order) is the same whichever spans share the launch. Also the final norm before the LM head (one weight, layer 0).
Entry points `rms_norm_<X>`, X the input rows' type (bf16, f32; the output is bf16): one template.
Bytes: (sizeof(X) + 2) · rows · d of DRAM traffic (x read once and y written once; x's second read and w[layer] come
from L1/L2) — divide by the time for the achieved bandwidth.
Launches of many rows whose width is a multiple of 128 and at most WARP_MAX_D (the 160M model's 768) take the `_warp`
entries: a warp per row (four rows a block, no barrier), lane l loading columns 4l .. 4l + 3 of each 128 (one 16-
or 8-byte load each) and so holding whole the partial sums of threads 4l .. 4l + 3 of the block per row; it ends
them with the same butterfly (stages 16, 8, 4 across lanes, 2 and 1 inside a lane) and adds the four warp sums in
warp order: the block's bits, one round of loads, no barrier (session 12; one block per row is latency-bound at 768
columns, and a warp per row in its own order cost a decoded row more: docs/log/row_kernels.md). The `_warp_wide`
entries do the same for rows of up to WARP_WIDE_MAX_D (2048: the 1B model) columns, 64 values a lane (session 21:
a block per row read its row twice, the second time from L2, and reached ~3.2 TB/s at the 1B step).
*/
#include <cuda_bf16.h>

#include "common/common.cuh"
#include "common/params.h"
#include "common/pdl.cuh"

// Fixed, not a launch parameter: the reduction order (which columns each thread sums) depends on it. 128 (256 until
// 2026-12-01): twice the rows in flight per SM at the same thread occupancy, for the short rows of small models.
#define RMS_NORM_THREADS 128
// The widest row of the `_warp` entries (a multiple of 128): 4 · WARP_MAX_D / 128 columns a lane in registers.
#define WARP_MAX_D 768
// The widest row of the `_warp_wide` entries (session 21: the 1B model's 2048; 64 values a lane in registers, kept
// apart from `_warp` so that the 160M model's launches keep that one's registers and occupancy).
#define WARP_WIDE_MAX_D 2048

namespace {

__device__ __forceinline__ float load_x(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ float load_x(const float* p) { return *p; }

// FEW (the `_few` entries, launches of at most 64 rows: a decode step): rows of up to CACHED · 128 columns (every model
// we run: d <= 4096) are loaded once, all at the start, and kept in registers for the second pass; a decoded row
// otherwise waited for four rounds of dependent loads and read x twice (1B: 5.4 µs a norm, s11 ledger). Separate
// entries, because the cache's registers (48 against 25) would cost the many-row launches their occupancy (160M's
// 131K prefill 1.7% slower, s11 call 7). The partial sums are the same fmaf chain in the same column order either way,
// so the bits are too (check::rms_norm's grouping checks compare a few-row launch with a many-row one).
constexpr int CACHED = 32;

template <bool FEW, typename X>
__device__ __forceinline__ void rms_norm(const RowSpan span, const X* __restrict__ x, int x_ld,
                                         const __nv_bfloat16* __restrict__ w, __nv_bfloat16* __restrict__ y, int y_ld,
                                         int d, float eps) {
    const int r = blockIdx.x;
    if (r >= span.rows) return;  // block-uniform: no thread of this block reaches the barriers below

    const X* xr = x + (size_t)(span.in_row + r) * x_ld;
    const __nv_bfloat16* wr = w + (size_t)span.layer * d;
    __nv_bfloat16* yr = y + (size_t)(span.out_row + r) * y_ld;

    const bool cached = FEW && d <= CACHED * RMS_NORM_THREADS;
    float xv[FEW ? CACHED : 1];
    float ss = 0.0f;
    if constexpr (FEW) {
        if (cached) {
#pragma unroll
            for (int j = 0; j < CACHED; ++j) {
                const int c = threadIdx.x + j * RMS_NORM_THREADS;
                xv[j] = c < d ? load_x(xr + c) : 0.0f;
            }
#pragma unroll
            for (int j = 0; j < CACHED; ++j) {
                if (threadIdx.x + j * RMS_NORM_THREADS < d) ss = fmaf(xv[j], xv[j], ss);
            }
        }
    }
    if (!cached) {
#pragma unroll 4
        for (int c = threadIdx.x; c < d; c += RMS_NORM_THREADS) {
            const float v = load_x(xr + c);
            ss = fmaf(v, v, ss);
        }
    }
    // xor butterfly: every lane ends with the same bits (fp addition is commutative).
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);

    __shared__ float warp_sums[RMS_NORM_THREADS / 32];
    __shared__ float row_scale;
    if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x == 0) {
        float total = 0.0f;
        for (int i = 0; i < RMS_NORM_THREADS / 32; ++i) total += warp_sums[i];
        row_scale = rsqrtf(total / (float)d + eps);
    }
    __syncthreads();
    const float s = row_scale;

    if constexpr (FEW) {
        if (cached) {
#pragma unroll
            for (int j = 0; j < CACHED; ++j) {
                const int c = threadIdx.x + j * RMS_NORM_THREADS;
                if (c < d) yr[c] = __float2bfloat16(__bfloat162float(wr[c]) * (xv[j] * s));
            }
            return;
        }
    }
#pragma unroll 4
    for (int c = threadIdx.x; c < d; c += RMS_NORM_THREADS) {
        const float v = load_x(xr + c);
        yr[c] = __float2bfloat16(__bfloat162float(wr[c]) * (v * s));
    }
}


// Four consecutive values of a row as f32 (16 bytes of f32, 8 of bf16; the launcher checks the alignment).
__device__ __forceinline__ float4 load4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ float4 load4(const __nv_bfloat16* p) {
    const uint2 raw = *reinterpret_cast<const uint2*>(p);
    const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.x));
    const float2 b = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.y));
    return make_float4(a.x, a.y, b.x, b.y);
}

// A warp per row (row blockIdx.x · RMS_NORM_THREADS / 32 + warp), d a multiple of 128 and <= WARP_MAX_D: the bits of
// rms_norm<false> above. Block thread T sums columns T, T + 128, ...; lane l holds T = 4l + i (i < 4) here. The
// block's butterfly over warp w's threads (T = 32w + j, partner j ^ o) is, for o = 16, 8, 4, lane l ^ (o / 4) with
// the same i, and for o = 2, 1 the lane's own i ^ o; every sum is self + partner, as ss += shfl(ss, o) is.
template <int MAX_D, typename X>
__device__ __forceinline__ void rms_norm_warp(const RowSpan span, const X* __restrict__ x, int x_ld,
                                              const __nv_bfloat16* __restrict__ w, __nv_bfloat16* __restrict__ y,
                                              int y_ld, int d, float eps) {
    // one lane's four columns per 128 are four threads of the block: the layout holds for 128 threads a block only
    static_assert(RMS_NORM_THREADS == 128 && MAX_D % 128 == 0, "the warp entries mirror a 128-thread block");
    constexpr int MAX_K = MAX_D / 128;
    const int lane = threadIdx.x & 31;
    const int r = blockIdx.x * (RMS_NORM_THREADS / 32) + (threadIdx.x >> 5);
    if (r >= span.rows) return;  // warp-uniform, and no block barrier follows
    const X* xr = x + (size_t)(span.in_row + r) * x_ld + 4 * lane;
    const __nv_bfloat16* wr = w + (size_t)span.layer * d + 4 * lane;
    __nv_bfloat16* yr = y + (size_t)(span.out_row + r) * y_ld + 4 * lane;
    const int kk = d / 128;
    float4 v[MAX_K];
#pragma unroll
    for (int k = 0; k < MAX_K; ++k) v[k] = k < kk ? load4(xr + 128 * k) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int k = 0; k < MAX_K; ++k) {
        if (k < kk) {
            c[0] = fmaf(v[k].x, v[k].x, c[0]);
            c[1] = fmaf(v[k].y, v[k].y, c[1]);
            c[2] = fmaf(v[k].z, v[k].z, c[2]);
            c[3] = fmaf(v[k].w, v[k].w, c[3]);
        }
    }
#pragma unroll
    for (int o = 4; o > 0; o >>= 1) {
#pragma unroll
        for (int i = 0; i < 4; ++i) c[i] += __shfl_xor_sync(0xffffffffu, c[i], o);
    }
    float e[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) e[i] = c[i] + c[i ^ 2];
#pragma unroll
    for (int i = 0; i < 4; ++i) c[i] = e[i] + e[i ^ 1];
    // every lane of group g (lanes 8g .. 8g + 7) now holds warp g's sum of the block; thread 0's total, in warp order
    float total = 0.0f;
#pragma unroll
    for (int g = 0; g < RMS_NORM_THREADS / 32; ++g) total += __shfl_sync(0xffffffffu, c[0], 8 * g);
    const float s = rsqrtf(total / (float)d + eps);
#pragma unroll
    for (int k = 0; k < MAX_K; ++k) {
        if (k < kk) {
            const float4 wk = load4(wr + 128 * k);
            const __nv_bfloat162 lo = __floats2bfloat162_rn(wk.x * (v[k].x * s), wk.y * (v[k].y * s));
            const __nv_bfloat162 hi = __floats2bfloat162_rn(wk.z * (v[k].z * s), wk.w * (v[k].w * s));
            uint2 packed;
            packed.x = *reinterpret_cast<const unsigned*>(&lo);
            packed.y = *reinterpret_cast<const unsigned*>(&hi);
            *reinterpret_cast<uint2*>(yr + 128 * k) = packed;
        }
    }
}

}  // namespace

// ----------------------------------------------------------------------------
// CUDA kernels

extern "C" __global__ void __launch_bounds__(RMS_NORM_THREADS)
    rms_norm_bf16(const Spans spans, const __nv_bfloat16* __restrict__ x, int x_ld, const __nv_bfloat16* __restrict__ w,
                  __nv_bfloat16* __restrict__ y, int y_ld, int d, float eps) { pdl_entry();
    rms_norm<false>(spans.spans[blockIdx.y], x, x_ld, w, y, y_ld, d, eps);
}

// As rms_norm_bf16, with f32 input rows (the f32 hidden rows); the output stays bf16.
extern "C" __global__ void __launch_bounds__(RMS_NORM_THREADS)
    rms_norm_f32(const Spans spans, const float* __restrict__ x, int x_ld, const __nv_bfloat16* __restrict__ w,
                 __nv_bfloat16* __restrict__ y, int y_ld, int d, float eps) { pdl_entry();
    rms_norm<false>(spans.spans[blockIdx.y], x, x_ld, w, y, y_ld, d, eps);
}

// The same norms for launches of few rows (FEW above): the same bits.
extern "C" __global__ void __launch_bounds__(RMS_NORM_THREADS)
    rms_norm_bf16_few(const Spans spans, const __nv_bfloat16* __restrict__ x, int x_ld,
                      const __nv_bfloat16* __restrict__ w, __nv_bfloat16* __restrict__ y, int y_ld, int d, float eps) {
    pdl_entry();
    rms_norm<true>(spans.spans[blockIdx.y], x, x_ld, w, y, y_ld, d, eps);
}

extern "C" __global__ void __launch_bounds__(RMS_NORM_THREADS)
    rms_norm_f32_few(const Spans spans, const float* __restrict__ x, int x_ld, const __nv_bfloat16* __restrict__ w,
                     __nv_bfloat16* __restrict__ y, int y_ld, int d, float eps) { pdl_entry();
    rms_norm<true>(spans.spans[blockIdx.y], x, x_ld, w, y, y_ld, d, eps);
}

// Launches of many rows of d = 128 · k <= WARP_MAX_D columns: a warp per row, the block per row's bits.
extern "C" __global__ void __launch_bounds__(RMS_NORM_THREADS)
    rms_norm_bf16_warp(const Spans spans, const __nv_bfloat16* __restrict__ x, int x_ld,
                       const __nv_bfloat16* __restrict__ w, __nv_bfloat16* __restrict__ y, int y_ld, int d, float eps) {
    pdl_entry();
    rms_norm_warp<WARP_MAX_D>(spans.spans[blockIdx.y], x, x_ld, w, y, y_ld, d, eps);
}

extern "C" __global__ void __launch_bounds__(RMS_NORM_THREADS)
    rms_norm_f32_warp(const Spans spans, const float* __restrict__ x, int x_ld, const __nv_bfloat16* __restrict__ w,
                      __nv_bfloat16* __restrict__ y, int y_ld, int d, float eps) {
    pdl_entry();
    rms_norm_warp<WARP_MAX_D>(spans.spans[blockIdx.y], x, x_ld, w, y, y_ld, d, eps);
}

// Launches of many rows of WARP_MAX_D < d = 128 · k <= WARP_WIDE_MAX_D columns: the same, 16 values a lane per 512.
extern "C" __global__ void __launch_bounds__(RMS_NORM_THREADS)
    rms_norm_bf16_warp_wide(const Spans spans, const __nv_bfloat16* __restrict__ x, int x_ld,
                            const __nv_bfloat16* __restrict__ w, __nv_bfloat16* __restrict__ y, int y_ld, int d,
                            float eps) {
    pdl_entry();
    rms_norm_warp<WARP_WIDE_MAX_D>(spans.spans[blockIdx.y], x, x_ld, w, y, y_ld, d, eps);
}

extern "C" __global__ void __launch_bounds__(RMS_NORM_THREADS)
    rms_norm_f32_warp_wide(const Spans spans, const float* __restrict__ x, int x_ld,
                           const __nv_bfloat16* __restrict__ w, __nv_bfloat16* __restrict__ y, int y_ld, int d,
                           float eps) {
    pdl_entry();
    rms_norm_warp<WARP_WIDE_MAX_D>(spans.spans[blockIdx.y], x, x_ld, w, y, y_ld, d, eps);
}
