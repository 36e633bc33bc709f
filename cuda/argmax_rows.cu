/*
Greedy token ids on the device: for each row of f32 logits, the index of its largest value — the host's `argmax`
(crates/dbrmt-kernels/src/reference/argmax_rows.rs, which the sampler calls) on every input, so a greedy token chosen
here is the token the host chooses from the same logits. The host scans `best = 0; if x[i] > x[best] { best = i }`;
a NaN is never greater and never beaten, so:
  * x[0] NaN: the answer is 0;
  * else the smallest index i with x[i] not NaN and x[i] == the largest non-NaN value (IEEE ==: -0 == +0, so a tie
    of +0 and -0 goes to the first; +inf and -inf are ordinary values; a row of -inf and NaNs gives 0).
Every step keeps the best (value, index) under the order "larger value, then smaller index", with NaNs never taken and
(-inf, INT_MAX) as "nothing yet". The indices of the candidates are distinct (or all INT_MAX for "nothing"), so this is
a strict total order and the best of a set is one pair whatever the order of the steps: the id does not depend on the
grid, the chunking, the block size or the shuffle tree. No atomics.

Two launches (the launcher runs both, in order, on one stream):
  argmax_rows_chunks_f32 (pass 1): grid (rows, chunks, spans), ARGMAX_CHUNK_THREADS threads. Block (r, k, s) reduces
    columns [k · chunk_cols, min((k + 1) · chunk_cols, n)) of span s's row r to one candidate (value bits, index with
    bit 31 set when a value of the chunk is NaN or ±inf) at scratch[(out_row + r) · chunks + k] (a uint2; output rows
    of the spans are disjoint, so are their candidates). chunk_cols is a multiple of 4 · ARGMAX_CHUNK_THREADS, so with
    `vec4` (x 16-byte aligned and x_ld a multiple of 4: the launcher checks) every chunk starts 16-byte aligned and
    is read as float4, its last n % 4 columns (last chunk) as floats; without `vec4` (an odd ld) all as floats.
  argmax_rows_f32 (pass 2): grid (rows, spans), one warp. Lane l takes candidates l, l + 32, ... of the row, then a
    shuffle tree; lane 0 writes out[out_row + r] = id | bit 31 (any chunk flagged), with the NaN-first rule (x[0] NaN,
    or nothing taken: 0).
Bytes: 4 · n per row read once, 8 per chunk written and read back, 4 per row written.
*/
#include <climits>

#include "common/common.cuh"
#include "common/params.h"
#include "common/pdl.cuh"

// Fixed: the launcher's CHUNK_THREADS and COLUMN_UNIT / 4 (a unit test checks they agree).
#define ARGMAX_CHUNK_THREADS 256

namespace {

constexpr unsigned int NON_FINITE_BIT = 0x80000000u;

// Whether (v, i) comes before (bv, bi): a larger value, or the same value at a smaller index. False for a NaN v.
__device__ __forceinline__ bool better(float v, int i, float bv, int bi) { return v > bv || (v == bv && i < bi); }

__device__ __forceinline__ void take(float v, int c, float& bv, int& bi, bool& non_finite) {
    non_finite |= !isfinite(v);
    if (better(v, c, bv, bi)) {
        bv = v;
        bi = c;
    }
}

// The best pair of the warp, in lane 0 (a lane past 31 reads its own pair).
__device__ __forceinline__ void warp_best(float& bv, int& bi) {
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_down_sync(0xffffffffu, bv, o);
        const int oi = __shfl_down_sync(0xffffffffu, bi, o);
        if (better(ov, oi, bv, bi)) {
            bv = ov;
            bi = oi;
        }
    }
}

}  // namespace

extern "C" __global__ void __launch_bounds__(ARGMAX_CHUNK_THREADS)
    argmax_rows_chunks_f32(const Spans spans, const float* __restrict__ x, int x_ld, int n, int chunk_cols,
                           int chunks, int vec4, uint2* __restrict__ scratch) { pdl_entry();
    const RowSpan span = spans.spans[blockIdx.z];
    const int r = blockIdx.x;
    if (r >= span.rows) return;  // block-uniform: no thread of this block reaches the barrier below
    const int k = blockIdx.y;

    const float* xr = x + (size_t)(span.in_row + r) * x_ld;
    const int c0 = k * chunk_cols;
    const int c1 = min(c0 + chunk_cols, n);
    float bv = __int_as_float(0xff800000);  // -inf
    int bi = INT_MAX;
    bool non_finite = false;
    int tail = c0;  // the first column read as a float
    if (vec4) {
        const int quads = (c1 - c0) >> 2;
        const float4* q4 = reinterpret_cast<const float4*>(xr + c0);  // 16-byte aligned: see the header
#pragma unroll 4
        for (int q = threadIdx.x; q < quads; q += ARGMAX_CHUNK_THREADS) {
            const float4 v = __ldg(q4 + q);
            const int c = c0 + 4 * q;
            take(v.x, c, bv, bi, non_finite);
            take(v.y, c + 1, bv, bi, non_finite);
            take(v.z, c + 2, bv, bi, non_finite);
            take(v.w, c + 3, bv, bi, non_finite);
        }
        tail = c0 + 4 * quads;
    }
#pragma unroll 4
    for (int c = tail + threadIdx.x; c < c1; c += ARGMAX_CHUNK_THREADS) take(__ldg(xr + c), c, bv, bi, non_finite);

    warp_best(bv, bi);
    __shared__ float warp_v[ARGMAX_CHUNK_THREADS / 32];
    __shared__ int warp_i[ARGMAX_CHUNK_THREADS / 32];
    if ((threadIdx.x & 31) == 0) {
        warp_v[threadIdx.x >> 5] = bv;
        warp_i[threadIdx.x >> 5] = bi;
    }
    // every thread of the block gets here (the early return above is block-uniform)
    non_finite = __syncthreads_or(non_finite);
    if (threadIdx.x == 0) {
        for (int w = 1; w < ARGMAX_CHUNK_THREADS / 32; ++w) {
            if (better(warp_v[w], warp_i[w], bv, bi)) {
                bv = warp_v[w];
                bi = warp_i[w];
            }
        }
        const size_t slot = (size_t)(span.out_row + r) * chunks + k;
        scratch[slot] = make_uint2(__float_as_uint(bv), (unsigned int)bi | (non_finite ? NON_FINITE_BIT : 0u));
    }
}

extern "C" __global__ void __launch_bounds__(32)
    argmax_rows_f32(const Spans spans, const float* __restrict__ x, int x_ld, const uint2* __restrict__ scratch,
                    int chunks, unsigned int* __restrict__ out) { pdl_entry();
    const RowSpan span = spans.spans[blockIdx.y];
    const int r = blockIdx.x;
    if (r >= span.rows) return;  // block-uniform

    const uint2* cand = scratch + (size_t)(span.out_row + r) * chunks;
    float bv = __int_as_float(0xff800000);  // -inf
    int bi = INT_MAX;
    unsigned int flags = 0;
    for (int k = threadIdx.x; k < chunks; k += 32) {
        const uint2 c = cand[k];
        flags |= c.y;
        const float v = __uint_as_float(c.x);
        const int i = (int)(c.y & ~NON_FINITE_BIT);
        if (better(v, i, bv, bi)) {
            bv = v;
            bi = i;
        }
    }
    warp_best(bv, bi);
    flags = __reduce_or_sync(0xffffffffu, flags);
    if (threadIdx.x == 0) {
        const float* xr = x + (size_t)(span.in_row + r) * x_ld;
        // nothing taken (every value NaN), or a NaN first: the host never moves from index 0
        const bool first_nan = xr[0] != xr[0];
        const unsigned int id = (bi == INT_MAX || first_nan) ? 0u : (unsigned int)bi;
        out[span.out_row + r] = id | (flags & NON_FINITE_BIT);
    }
}
