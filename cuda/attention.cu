/*
Causal grouped-query attention over the rows of each cell (span) of one step, flash-style: the rows × rows score matrix
never reaches global memory. q, k and v are read from the fused QKV buffer (row = position inside the span; q heads at
column 0, k heads at H·hd, v heads at H·hd + KV·hd); query head h reads KV head h / (H / KV); row i attends to rows
0..=i of its own span; the output (H·hd columns, bf16) goes to rows out_row.. . A span with pos > 0 is the new rows of an
open segment whose earlier rows are already in the buffer (a KV cache): its queries are rows pos .. pos + rows (from
in_row, the segment's row 0) and attend to rows 0 ..= their own; row pos + i goes to out_row + i. A query's bits are
the same as when it was computed inside a whole span (pos = 0): the same key tiles in the same order, and any extra
tile is wholly masked for it (alpha = 1, p = 0). A dynamic span's pos is read on the device (span_pos, params.h), so
a captured decode step replays at any position. One block per (tile of 64 queries, head,
span): the block stages its Q tile in shared memory, then walks the K/V tiles of 32 keys up to its last query, keeping
an online softmax in f32 (running max m, running sum l, accumulator o rescaled by 2^(m_old − m_new)); scores are taken
in base 2 (scale · log2 e folded in), which is the same softmax. Four threads own one query row: each computes the
scores of 8 of the tile's keys (full dot products, no reduction), the row's max and sum are combined across the four
with a fixed xor butterfly, and each thread accumulates hd/4 of the output columns. All orders are fixed by the tile
loop, never by the grid, so a cell's bits do not depend on which cells share the launch. SIMT f32 math (no tensor
cores yet): simple and correct first.
FLOPs: ≈ 2 · 2 · H · hd · rows² / 2 per span (QKᵀ and PV, causal half); bytes ≈ rows · (H + 2·KV) · hd · 2 read once
per query tile that needs them (from L2) + rows · H · hd · 2 written.
*/
#include <cuda_bf16.h>

#include "common/common.cuh"
#include "common/params.h"
#include "common/pdl.cuh"

#define ATT_BQ 64        // queries per block
#define ATT_BK 32        // keys per shared-memory tile
#define ATT_THREADS 256  // 4 threads per query row

// ----------------------------------------------------------------------------
// Device helpers

// Copies `rows_valid` of `n_rows` rows of one head (HD bf16 columns, as HD/2 bf16 pairs) from global rows `src`
// (stride ld elements) into shared rows of stride LDS pairs; rows past `rows_valid` are zero-filled, so masked keys
// multiply zeros (a p of 0 times stale or unset memory could be 0 · NaN).
template <int HD, int LDS>
__device__ __forceinline__ void load_tile(__nv_bfloat162* dst, const __nv_bfloat16* src, int ld, int n_rows,
                                          int rows_valid) {
    constexpr int H2 = HD / 2;
    for (int w = threadIdx.x; w < n_rows * H2; w += ATT_THREADS) {
        const int r = w / H2;
        const int c = w - r * H2;
        __nv_bfloat162 v = __floats2bfloat162_rn(0.0f, 0.0f);
        if (r < rows_valid) v = reinterpret_cast<const __nv_bfloat162*>(src + (size_t)r * ld)[c];
        dst[r * LDS + c] = v;
    }
}

template <int HD>
__device__ __forceinline__ void attention_causal(const RowSpan span, const __nv_bfloat16* __restrict__ qkv, int qkv_ld,
                                                 __nv_bfloat16* __restrict__ out, int out_ld, int heads, int kv_heads,
                                                 float scale) {
    constexpr int H2 = HD / 2;        // bf16 pairs per head row
    constexpr int LDS = H2 + 4;       // shared row stride in pairs: 4 words of padding put 8 rows in distinct banks
    constexpr int SLD = ATT_BK + 4;   // probability row stride in floats, for the same reason
    constexpr int KPT = ATT_BK / 4;   // keys per thread per tile
    constexpr int OPAIRS = H2 / 4;    // output pairs per thread
    static_assert(HD % 8 == 0 && ATT_THREADS == 4 * ATT_BQ, "four threads per query row, hd/8 pairs each");

    __shared__ __nv_bfloat162 sQ[ATT_BQ * LDS];
    __shared__ __nv_bfloat162 sK[ATT_BK * LDS];
    __shared__ __nv_bfloat162 sV[ATT_BK * LDS];
    __shared__ float sP[ATT_BQ * SLD];

    const int pos = span.pos;
    const int rows = pos + span.rows;   // the segment's rows so far: keys 0 .. rows
    const int q0 = pos + blockIdx.x * ATT_BQ;  // the tile's first query position
    if (q0 >= rows) return;  // block-uniform, before any barrier

    const int h = blockIdx.y;
    const int kvh = h / (heads / kv_heads);
    const int qr = threadIdx.x >> 2;  // query row inside the tile
    const int sub = threadIdx.x & 3;  // which quarter of the keys / output columns
    const int qi = q0 + qr;           // query position inside the span
    const float scale_log2 = scale * 1.4426950408889634f;

    const __nv_bfloat16* base = qkv + (size_t)span.in_row * qkv_ld;
    const __nv_bfloat16* kbase = base + (size_t)(heads + kvh) * HD;
    const __nv_bfloat16* vbase = base + (size_t)(heads + kv_heads + kvh) * HD;
    load_tile<HD, LDS>(sQ, base + (size_t)q0 * qkv_ld + (size_t)h * HD, qkv_ld, ATT_BQ, rows - q0);

    float m = -INFINITY;  // running max of the base-2 scores
    float l = 0.0f;       // running sum of 2^(s - m)
    float o[2 * OPAIRS];
#pragma unroll
    for (int i = 0; i < 2 * OPAIRS; ++i) o[i] = 0.0f;

    const int q_end = min(q0 + ATT_BQ, rows);  // the tile's last query + 1: no key at or past it is needed
    const int n_tiles = CEIL_DIV(q_end, ATT_BK);
    for (int kt = 0; kt < n_tiles; ++kt) {
        const int k0 = kt * ATT_BK;
        __syncthreads();  // the previous tile's sK, sV, sP are read by everyone (and sQ is written, at kt = 0)
        load_tile<HD, LDS>(sK, kbase + (size_t)k0 * qkv_ld, qkv_ld, ATT_BK, rows - k0);
        load_tile<HD, LDS>(sV, vbase + (size_t)k0 * qkv_ld, qkv_ld, ATT_BK, rows - k0);
        __syncthreads();

        // Scores of keys k0 + sub + 4·i.
        float s[KPT];
#pragma unroll
        for (int i = 0; i < KPT; ++i) s[i] = 0.0f;
#pragma unroll 2  // 4 and full unrolling made ptxas spill a few bytes at hd = 32
        for (int c = 0; c < H2; ++c) {
            const float2 qv = __bfloat1622float2(sQ[qr * LDS + c]);
#pragma unroll
            for (int i = 0; i < KPT; ++i) {
                const float2 kv = __bfloat1622float2(sK[(sub + 4 * i) * LDS + c]);
                s[i] = fmaf(qv.x, kv.x, s[i]);
                s[i] = fmaf(qv.y, kv.y, s[i]);
            }
        }
        float tile_max = -INFINITY;
#pragma unroll
        for (int i = 0; i < KPT; ++i) {
            const int key = k0 + sub + 4 * i;
            s[i] = (key <= qi && key < rows) ? s[i] * scale_log2 : -INFINITY;
            tile_max = fmaxf(tile_max, s[i]);
        }
        tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
        tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
        // Key 0 is visible to every query, so m is finite from the first tile on; a later tile whose keys are all
        // masked for this row leaves m as it was (alpha = 1, every p = 0).
        const float m_new = fmaxf(m, tile_max);
        const float alpha = exp2f(m - m_new);  // 0 on the first tile (m = -inf)
        float psum = 0.0f;
#pragma unroll
        for (int i = 0; i < KPT; ++i) {
            const float p = exp2f(s[i] - m_new);
            sP[qr * SLD + sub + 4 * i] = p;
            psum += p;
        }
        // xor butterfly: the four threads of the row end with the same bits.
        psum += __shfl_xor_sync(0xffffffffu, psum, 1);
        psum += __shfl_xor_sync(0xffffffffu, psum, 2);
        l = l * alpha + psum;
        m = m_new;
        __syncwarp();  // the row's four threads (one warp) see each other's p

#pragma unroll
        for (int i = 0; i < 2 * OPAIRS; ++i) o[i] *= alpha;
        for (int j = 0; j < ATT_BK; ++j) {
            const float p = sP[qr * SLD + j];
#pragma unroll
            for (int i = 0; i < OPAIRS; ++i) {
                const float2 vv = __bfloat1622float2(sV[j * LDS + sub + 4 * i]);
                o[2 * i] = fmaf(p, vv.x, o[2 * i]);
                o[2 * i + 1] = fmaf(p, vv.y, o[2 * i + 1]);
            }
        }
    }

    if (qi < rows) {
        const float inv = 1.0f / l;  // l >= 1: the max term contributes 2^0
        __nv_bfloat162* orow =
            reinterpret_cast<__nv_bfloat162*>(out + (size_t)(span.out_row + qi - pos) * out_ld + (size_t)h * HD);
#pragma unroll
        for (int i = 0; i < OPAIRS; ++i) orow[sub + 4 * i] = __floats2bfloat162_rn(o[2 * i] * inv, o[2 * i + 1] * inv);
    }
}

// ----------------------------------------------------------------------------
// CUDA kernels

// Grid (query tiles of the longest span, H, spans). qkv_ld and out_ld are even (pairs are read and written as
// 4-byte words; the launcher checks).
#define ATTENTION_ENTRY(HD)                                                                                            \
    extern "C" __global__ void __launch_bounds__(ATT_THREADS)                                                          \
        attention_causal_bf16_hd##HD(const Spans spans, const __nv_bfloat16* __restrict__ qkv, int qkv_ld,            \
                                     __nv_bfloat16* __restrict__ out, int out_ld, int heads, int kv_heads,             \
                                     float scale) {                                                            \
        pdl_entry();                                                                                                   \
        RowSpan span = spans.spans[blockIdx.z];                                                                        \
        span.pos = span_pos(spans, span); /* a dynamic span's position, read on the device */                          \
        attention_causal<HD>(span, qkv, qkv_ld, out, out_ld, heads, kv_heads, scale);                                  \
    }

ATTENTION_ENTRY(32)
ATTENTION_ENTRY(64)
ATTENTION_ENTRY(128)
