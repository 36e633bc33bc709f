/*
Greedy token ids on the device: for each row of f32 logits, the index of its largest value — the host's `argmax`
(crates/dbrmt-kernels/src/reference/argmax_rows.rs, which the sampler calls) on every input, so a greedy token chosen
here is the token the host chooses from the same logits. The host scans `best = 0; if x[i] > x[best] { best = i }`;
a NaN is never greater and never beaten, so:
  * x[0] NaN: the answer is 0;
  * else the smallest index i with x[i] not NaN and x[i] == the largest non-NaN value (IEEE ==: -0 == +0, so a tie
    of +0 and -0 goes to the first; +inf and -inf are ordinary values; a row of -inf and NaNs gives 0).
Each thread keeps the best (value, index) of its columns under the order "larger value, then smaller index", with NaNs
never taken and (-inf, INT_MAX) as "nothing yet"; this is a total order on the pairs, so the block's reduction (a
shuffle tree in each warp, then the warps in order) gives the same pair whatever the order of its steps. No atomics.
  argmax_rows_f32: out[out_row + r] = argmax(x[in_row + r, 0..n]) for each span's rows (u32 ids), with bit 31 set
  when the row holds a NaN or an infinity (the host checks the logits it copies for that; ids stay below 2^31).
One block per row: blockIdx.y is the span, blockIdx.x the row inside it. Bytes: 4 · n per row (the logits are read
once), 4 per row written.
*/
#include <climits>

#include "common/common.cuh"
#include "common/params.h"
#include "common/pdl.cuh"

// Fixed: the launcher's THREADS (a unit test checks they agree).
#define ARGMAX_THREADS 512

namespace {

// Whether (v, i) comes before (bv, bi): a larger value, or the same value at a smaller index. False for a NaN v.
__device__ __forceinline__ bool better(float v, int i, float bv, int bi) { return v > bv || (v == bv && i < bi); }

}  // namespace

extern "C" __global__ void __launch_bounds__(ARGMAX_THREADS)
    argmax_rows_f32(const Spans spans, const float* __restrict__ x, int x_ld, unsigned int* __restrict__ out, int n) { pdl_entry();
    const RowSpan span = spans.spans[blockIdx.y];
    const int r = blockIdx.x;
    if (r >= span.rows) return;  // block-uniform: no thread of this block reaches the barrier below

    const float* xr = x + (size_t)(span.in_row + r) * x_ld;
    float bv = __int_as_float(0xff800000);  // -inf
    int bi = INT_MAX;
    bool non_finite = false;
    // columns in increasing order per thread: a tie keeps the first
#pragma unroll 4
    for (int c = threadIdx.x; c < n; c += ARGMAX_THREADS) {
        const float v = xr[c];
        non_finite |= !isfinite(v);
        if (better(v, c, bv, bi)) {
            bv = v;
            bi = c;
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_down_sync(0xffffffffu, bv, o);
        const int oi = __shfl_down_sync(0xffffffffu, bi, o);
        if (better(ov, oi, bv, bi)) {
            bv = ov;
            bi = oi;
        }
    }
    __shared__ float warp_v[ARGMAX_THREADS / 32];
    __shared__ int warp_i[ARGMAX_THREADS / 32];
    if ((threadIdx.x & 31) == 0) {
        warp_v[threadIdx.x >> 5] = bv;
        warp_i[threadIdx.x >> 5] = bi;
    }
    // every thread of the block gets here (the early return above is block-uniform)
    non_finite = __syncthreads_or(non_finite);
    if (threadIdx.x == 0) {
        for (int w = 1; w < ARGMAX_THREADS / 32; ++w) {
            if (better(warp_v[w], warp_i[w], bv, bi)) {
                bv = warp_v[w];
                bi = warp_i[w];
            }
        }
        // nothing taken (every value NaN), or a NaN first: the host never moves from index 0
        const bool first_nan = xr[0] != xr[0];
        const unsigned int id = (bi == INT_MAX || first_nan) ? 0u : (unsigned int)bi;
        out[span.out_row + r] = id | (non_finite ? 0x80000000u : 0u);
    }
}
