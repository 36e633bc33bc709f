/*
v12: RoPE in the epilogue of a prefill's q/k/v product (gemm_sm90.cu's `_rope` entries). Why: after the product a
step's RoPE launch read and wrote every q and k element once more (the 1B step: 16 cells × 1,152 rows × 2,560 columns,
~190 MB, 0.06–0.09 ms of a 4.5 ms step); rotating the accumulators before the epilogue stores them removes that pass.

Only whole segments, rotated in place (position = the row's index in the problem, as rope.cu's in-place spans), and
only head-aligned tiles (BN a multiple of the head dimension HD, so a tile holds whole heads and each rotation pair
(x[i], x[i + HD/2]) of a row sits in one thread's fragment: columns 8j + 2(lane % 4) + e and 8(j + HD/16) + ...).

Numerics: a rotated element is rope.cu's — the accumulator rounded to bf16 (the bf16 epilogue's rounding), back to
f32, rope_rotate with the table entries of its row's position, and the epilogue then rounds the result to bf16 once
(__floats2bfloat162_rn, as rope.cu stores it). Columns at or past rot_cols (the v heads) are left to the epilogue as
they are. So the bytes are those of the unrotated launch followed by rope_bf16 in place.
*/
#pragma once

#include <cuda_bf16.h>
#include <stdint.h>

#include "common/rotate.cuh"

// The RoPE of a `_rope` launch (32 bytes).
typedef struct {
    const float* cos;                // [positions, HD / 2] f32: rope.cu's tables
    const float* sin;
    int rot_cols;                    // (H + KV) · HD: columns below rotate (q and k heads), the v heads after do not
    int pad;
    unsigned long long rotate_mask;  // bit p: problem p's rows rotate (whole segments); others are stored as they are
} GemmSm90Rope;

static_assert(sizeof(GemmSm90Rope) == 32, "GemmSm90Rope layout is mirrored by the Rust launcher");

namespace sm90 {

// Rotates, in place, the q and k pairs of this thread's fragment rows (r_lo and r_lo + 8 of the warpgroup's 64 rows:
// rows row0 + r of the problem, `rows` of them stored) of a tile whose first column col0 is a multiple of HD.
template <int BN, int HD>
__device__ __forceinline__ void rope_rows(float (&acc)[BN / 2], const GemmSm90Rope& rp, int row0, int rows, int col0,
                                          int wtid) {
    static_assert(HD % 16 == 0 && BN % HD == 0, "head-aligned tiles of whole fragment groups");
    constexpr int HALF = HD / 2;
    constexpr int GH = HALF / 8;  // fragment groups of 8 columns in half a head: the partner is GH groups on
    const int lane = wtid & 31;
    const int r_lo = (wtid >> 5) * 16 + (lane >> 2);
#pragma unroll
    for (int h8 = 0; h8 < 2; ++h8) {
        const int r = r_lo + 8 * h8;  // acc[4j + 2 h8 + e]
        if (r >= rows) continue;      // never stored (and its position may be past the tables)
        const float* cs = rp.cos + (size_t)(row0 + r) * HALF + 2 * (lane & 3);
        const float* sn = rp.sin + (size_t)(row0 + r) * HALF + 2 * (lane & 3);
        float2 ci[GH], si[GH];  // the same frequencies for every head of the tile
#pragma unroll
        for (int g = 0; g < GH; ++g) {
            ci[g] = *reinterpret_cast<const float2*>(cs + 8 * g);
            si[g] = *reinterpret_cast<const float2*>(sn + 8 * g);
        }
#pragma unroll
        for (int head = 0; head < BN / HD; ++head) {
            if (col0 + head * HD >= rp.rot_cols) break;  // the v heads (after every q and k head)
#pragma unroll
            for (int g = 0; g < GH; ++g) {
                const int x = 4 * (head * (HD / 8) + g) + 2 * h8;  // column c, c + 1; their partners at y
                const int y = x + 4 * GH;
                const float x1a = __bfloat162float(__float2bfloat16_rn(acc[x]));
                const float x1b = __bfloat162float(__float2bfloat16_rn(acc[x + 1]));
                const float x2a = __bfloat162float(__float2bfloat16_rn(acc[y]));
                const float x2b = __bfloat162float(__float2bfloat16_rn(acc[y + 1]));
                rope_rotate(x1a, x2a, ci[g].x, si[g].x, acc[x], acc[y]);
                rope_rotate(x1b, x2b, ci[g].y, si[g].y, acc[x + 1], acc[y + 1]);
            }
        }
    }
}

}  // namespace sm90
