/*
The memory state A as the fused read's tensor cores take it, made once per state change instead of in every read
(docs/log/armt_read_fused_sm90.md §12). armt_read_fused_sm90's tf32 + bf16 split reads A[state] ([D k][d n] f32) as
its K-major B operand: per k-block of 32, a [n][32 k] tile of tf32 hi = tf32(x) and one of bf16 pairs
{bf16(hi), bf16(x - hi)}, 128-byte rows. Without this kernel its converter warps make both tiles from the raw block
for every read (every decode token, every column and row tile of a prefill) although A changes only in the write.
Here they are made once, into
    out[(state·d + n) · 2D + 64·kb + j] = hi of A[state][32·kb + j][n]            (j < 32)
    out[(state·d + n) · 2D + 64·kb + 32 + j] = the bf16 pair of the same value    (j < 32)
(u32; sm90::split_b, the converters' own function, so the bits are theirs), and a 2D TMA box {32, width} with the 128B
swizzle lands each tile in shared memory exactly as convert_stage writes it.
One block per (32 columns, one k-block, span): a 32 × 32 block of A through shared memory (coalesced reads along n,
writes along k). spans.spans[i].state is the state; the other span fields are not used. No arithmetic across
elements, so the bits never depend on the launch. Bytes: 12 · D · d per state (A read, 2× written).
*/
#include <stdint.h>

#include "common/common.cuh"
#include "common/params.h"
#include "common/pdl.cuh"
#include "sm90/tf32_split.cuh"

#define STATE_SPLIT_ROWS 8  // block (32, 8): each thread moves 4 values

extern "C" __global__ void __launch_bounds__(32 * STATE_SPLIT_ROWS)
    armt_state_split_tf32bf16(const Spans spans, const float* __restrict__ a, uint32_t* __restrict__ out, int d_key,
                              int d) { pdl_entry();
    __shared__ float tile[32][33];  // [k][n], padded: the transposed reads hit 32 banks
    const size_t state = (size_t)spans.spans[blockIdx.z].state;
    const int n0 = blockIdx.x * 32, kb = blockIdx.y;
    const int tx = threadIdx.x, ty = threadIdx.y;
    const float* src = a + (state * d_key + (size_t)kb * 32) * d;
#pragma unroll
    for (int r = ty; r < 32; r += STATE_SPLIT_ROWS) {
        const int n = n0 + tx;
        tile[r][tx] = n < d ? src[(size_t)r * d + n] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int r = ty; r < 32; r += STATE_SPLIT_ROWS) {
        const int n = n0 + r;
        if (n >= d) continue;
        uint32_t hi, lo;
        sm90::split_b<true>(tile[tx][r], hi, lo);
        uint32_t* row = out + (state * d + n) * (size_t)(2 * d_key) + 64 * kb;
        row[tx] = hi;
        row[32 + tx] = lo;
    }
}
