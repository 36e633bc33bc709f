/*
v11: a decode step's RoPE in the q/k/v product (gemm_sm90.cu's `_normed_rope` entries). Why: on a decoded layer the
RoPE launch between the q/k/v product and attention was a launch of its own (~3.5 µs alone, ~1.8 µs on the PDL
pipeline) for a few KB of work; here the product's epilogue rotates its accumulators and writes them where RoPE
would have moved them (the KV cache row at the device-held position), with the RoPE kernel's arithmetic.

The tile's B rows are gathered so that a thread holds both halves of its rotation pairs. A rope tile of width BN
takes BN/2 rows of a head's first half and the same BN/2 rows of its second half (`rope_tile_row`: head h, first-half
offset j0 = BN/2 · (tile index within the head)). The launcher's B map is the 4-D view {64, rows, 2, k/64} (strides:
the row, half a head of rows, 128 bytes a k-block) and a stage is one box {64, BN/2, 2, KS}: in shared memory it is
exactly the B slots of a BN-row tile whose rows 0..BN/2-1 are rows j0.. of the head and rows BN/2.. are rows
half + j0.. (the same bytes in the same 128B-swizzled layout as the 3-D box over those rows). So tile column c < BN/2
and c + BN/2 are the pair (x[i], x[i + half]) with i = j0 + c, and a wgmma fragment holds them in one thread:
acc[4j + e] and acc[4(j + BN/16) + e].

Numerics: the products are the unnormed entries' (each output element is the same k chain whatever B row sits in
which tile column: check/gemm_sm90.rs's widths and swap probes); the epilogue rounds each to bf16 once (the bf16
epilogue's __floats2bfloat162_rn), and a rotated column is then rope.cu's: bf16 -> f32, rope_rotate with the same
table entries at position pos + r, __floats2bfloat162_rn. v heads (columns >= rot_cols) are stored as rounded. So the
bytes are those of the normed launch into the scratch rows followed by rope_bf16_few moving them into the cache.
*/
#pragma once

#include <cuda_bf16.h>
#include <stdint.h>

#include "common/rotate.cuh"

// The RoPE of a `_normed_rope` launch (568 bytes): problem p's rows r < m go to row pos + r of its C (the launcher
// points C at the segment's row 0 in the KV cache), rotated at position pos + r.
typedef struct {
    const float* cos;      // [positions, head_dim / 2] f32: rope.cu's tables
    const float* sin;
    const int* positions;  // per memory state: the rows its KV cache holds (problems with state >= 0), or null
    int head_dim;          // even; a multiple of the tile width
    int rot_cols;          // (H + KV) · head_dim: columns below rotate (q and k heads), the v heads after them do not
    int pos[64];           // problem p's position (state[p] < 0), else the bound its device position may not pass
    int state[64];         // problem p's entry of `positions`, or -1
    // An L2 prefetch by the launch's otherwise idle consumer warpgroup 1 (rope.cu's L2Prefetch, which the RoPE
    // launch carried before v11): `pf_rows` rows from pf_base, stride pf_stride bytes, the first pf_bytes of each.
    unsigned long long pf_base;
    long long pf_stride;
    int pf_rows;
    int pf_bytes;
} GemmSm90Rope;

static_assert(sizeof(GemmSm90Rope) == 568, "GemmSm90Rope layout is mirrored by the Rust launcher");

namespace sm90 {

// The first B row (inside the problem's n rows) of rope tile `n_tile` of width `bn`: head h's first-half rows
// j0 .. j0 + bn/2 - 1; the 4-D box adds the same rows of the second half.
__device__ __forceinline__ int rope_tile_row(int n_tile, int bn, int head_dim) {
    const int tiles_a_head = head_dim / bn;
    const int head = n_tile / tiles_a_head;
    return head * head_dim + (n_tile - head * tiles_a_head) * (bn / 2);
}

// A thread's part of a rope tile's epilogue: its row's position and the table entries of its columns, loaded when
// the tile starts (v11.1; before the mainloop waits for its first stage, so that these dependent loads -- the
// position, then the tables at it -- overlap the product instead of lengthening the launch's tail), and the store.
// Only fragment rows r < rows (at most 8: warp 0) take part.
template <int BN>
struct RopeTile {
    static constexpr int PARTNER = BN / 16;  // fragment groups between tile column c and c + BN/2
    float2 ci[PARTNER], si[PARTNER];
    int pos, col, half;
    bool rot, live;

    __device__ __forceinline__ void load(const GemmSm90Rope& rp, int wtid, int rows, int p, int n_tile) {
        const int lane = wtid & 31;
        const int r = (wtid >> 5) * 16 + (lane >> 2);  // this thread's fragment row (acc[4j], acc[4j + 1])
        live = r < rows;
        if (!live) return;
        pos = rp.pos[p];
        if (rp.state[p] >= 0) {
            const int q = rp.positions[rp.state[p]];
            if (q < 0 || q > pos) __trap();  // past the bound the launcher checked the rows and tables against
            pos = q;
        }
        pos += r;
        half = rp.head_dim / 2;
        col = rope_tile_row(n_tile, BN, rp.head_dim);  // output column of tile column 0 (BN/2: col + half)
        rot = col < rp.rot_cols;
        if (!rot) return;
        const float* cs = rp.cos + (size_t)pos * half + (col % rp.head_dim);
        const float* sn = rp.sin + (size_t)pos * half + (col % rp.head_dim);
#pragma unroll
        for (int j = 0; j < PARTNER; ++j) {
            const int c = 8 * j + 2 * (lane & 3);
            ci[j] = *reinterpret_cast<const float2*>(cs + c);
            si[j] = *reinterpret_cast<const float2*>(sn + c);
        }
    }

    // The row rounded, rotated where it is q or k, stored at row pos (+ r, above) of C (byte stride ldc_bytes).
    __device__ __forceinline__ void store(const float (&acc)[BN / 2], int wtid, char* c_base,
                                          long long ldc_bytes) const {
        if (!live) return;
        const int lane = wtid & 31;
        char* const row = c_base + (long long)pos * ldc_bytes;
#pragma unroll
        for (int j = 0; j < PARTNER; ++j) {
            const int c = 8 * j + 2 * (lane & 3);  // tile columns c, c + 1 and their partners c + BN/2, c + BN/2 + 1
            __nv_bfloat162 a = __floats2bfloat162_rn(acc[4 * j], acc[4 * j + 1]);
            __nv_bfloat162 b = __floats2bfloat162_rn(acc[4 * (j + PARTNER)], acc[4 * (j + PARTNER) + 1]);
            if (rot) {
                const float2 x1 = __bfloat1622float2(a), x2 = __bfloat1622float2(b);
                float y1x, y2x, y1y, y2y;
                rope_rotate(x1.x, x2.x, ci[j].x, si[j].x, y1x, y2x);
                rope_rotate(x1.y, x2.y, ci[j].y, si[j].y, y1y, y2y);
                a = __floats2bfloat162_rn(y1x, y1y);
                b = __floats2bfloat162_rn(y2x, y2y);
            }
            *reinterpret_cast<__nv_bfloat162*>(row + 2 * (long long)(col + c)) = a;
            *reinterpret_cast<__nv_bfloat162*>(row + 2 * (long long)(col + half + c)) = b;
        }
    }
};

// The L2 prefetch of a `_normed_rope` launch, by consumer warpgroup 1 (`tid` 0..127), which has no rows to compute:
// one cp.async.bulk.prefetch.L2 a row (no data returned, nothing waited for; results do not change).
__device__ __forceinline__ void rope_l2_prefetch(const GemmSm90Rope& rp, int tid) {
    for (int r = blockIdx.x * 128 + tid; r < rp.pf_rows; r += gridDim.x * 128) {
        const unsigned long long a = rp.pf_base + (unsigned long long)r * (unsigned long long)rp.pf_stride;
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(a), "r"(rp.pf_bytes) : "memory");
    }
}

}  // namespace sm90
