/*
Rotary position embedding on the fused QKV rows of the cells of one step, in HF LLaMA's rotate_half layout: for each
q and k head of a row and i < hd/2, (x1, x2) = (x[i], x[i + hd/2]) -> (x1·cos − x2·sin, x2·cos + x1·sin) with cos/sin
read from f32 tables [positions, hd/2] (built on the host, identical for every cell) at position = pos + the row's
index inside its span (positions restart at 0 every segment; pos > 0 for new rows of an open segment). Row r of a span
is read from in_row + r and written to out_row + pos + r (out_row: the output's row of segment position 0): in place
for whole segments (pos = 0, in_row = out_row); an open segment's new rows go from the step's scratch rows into its KV
cache, v copied beside the rotated q and k. pos is the span's, or for a dynamic span its state's entry of the
positions buffer, read here (span_pos, params.h): a captured decode step replays at any position. The q heads
[0, H·hd) and k heads [H·hd, (H+KV)·hd) are contiguous, so a row is H + KV rotated heads, then KV v heads. `chunks`
blocks per row (blockIdx.y the span, blockIdx.x = row · chunks + chunk; chunk c takes the pairs and v columns
c·128 + t, stepping by chunks·128 — counted in pair pairs and column pairs where a thread takes two, below): 1 for many
rows, enough for one pair a thread when a launch has few rows (a decode step: one block looped over the 1B row's 1,280
pairs took 8.4 µs, s11 ledger; with two pairs a thread the upper half of those blocks finds no work). Each (head, i) pair is read and written
by exactly one thread, with the same arithmetic whatever `chunks` is, so in-place is race-free (the launcher refuses
other overlaps of read and written rows) and the bits never depend on it.
Bytes: rows · (H + KV) · hd · 4 (bf16 read and written; + KV · hd · 4 when v is copied) + the table rows (rows · hd/2
· 8, cached across heads).
*/
#include <cuda_bf16.h>

#include "common/common.cuh"
#include "common/params.h"
#include "common/pdl.cuh"
#include "common/rotate.cuh"  // rope_rotate: every pair's arithmetic, shared with gemm_sm90.cu's RoPE epilogue

#define ROPE_THREADS 128

// ----------------------------------------------------------------------------
// CUDA kernels

// Pairs p and p + 1 (p even, `half` even: the same head) of the row `src` into `dst` (may be the same row), as
// bfloat162 and float2 loads: half the load instructions of one pair a thread (session 12: the many-row launch ran at
// about half the copy bandwidth, 1B 0.087 ms a step for 189 MB).
__device__ __forceinline__ void rotate2(const __nv_bfloat16* src, __nv_bfloat16* dst, const float* c, const float* s,
                                        int p, int half) {
    const int head = p / half;
    const int i = p - head * half;
    const int col = head * 2 * half + i;
    const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(src + col));
    const float2 b = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(src + col + half));
    const float2 ci = *reinterpret_cast<const float2*>(c + i);
    const float2 si = *reinterpret_cast<const float2*>(s + i);
    float y1x, y2x, y1y, y2y;
    rope_rotate(a.x, b.x, ci.x, si.x, y1x, y2x);
    rope_rotate(a.y, b.y, ci.y, si.y, y1y, y2y);
    *reinterpret_cast<__nv_bfloat162*>(dst + col) = __floats2bfloat162_rn(y1x, y1y);
    *reinterpret_cast<__nv_bfloat162*>(dst + col + half) = __floats2bfloat162_rn(y2x, y2y);
}

// One pair p of the row `src` into `dst` (rows of odd `ld` or heads of odd `half`: the tiny test shapes).
__device__ __forceinline__ void rotate1(const __nv_bfloat16* src, __nv_bfloat16* dst, const float* c, const float* s,
                                        int p, int half) {
    const int head = p / half;
    const int i = p - head * half;
    const int col = head * 2 * half + i;
    float y1, y2;
    rope_rotate(__bfloat162float(src[col]), __bfloat162float(src[col + half]), c[i], s[i], y1, y2);
    dst[col] = __float2bfloat16(y1);
    dst[col + half] = __float2bfloat16(y2);
}

// `rot_heads` = H + KV (the heads that rotate), `half` = hd / 2, `v_cols` = KV · hd (copied when not in place).
// CHUNKED: `chunks` blocks per row (the `_few` entry); else one block a row and `chunks` is 1 (the loop's stride a
// constant). A thread takes two pairs at a time (p = 2·q) where the rows and tables allow 4- and 8-byte accesses
// (`ld` and `half` even, the usual case), else one.
template <bool CHUNKED>
__device__ __forceinline__ void rope(const Spans& spans, __nv_bfloat16* qkv, int ld, const float* __restrict__ cos_table,
                                     const float* __restrict__ sin_table, int rot_heads, int half, int v_cols,
                                     int chunks) {
    const RowSpan span = spans.spans[blockIdx.y];
    const auto [r, first, step] = row_block<ROPE_THREADS, CHUNKED>(chunks);
    if (r >= span.rows) return;

    const int pos = span_pos(spans, span);
    const float* c = cos_table + (size_t)(pos + r) * half;
    const float* s = sin_table + (size_t)(pos + r) * half;
    const int pairs = rot_heads * half;
    const size_t in = (size_t)(span.in_row + r) * ld, out = (size_t)(span.out_row + pos + r) * ld;
    const bool two = ((ld | half) & 1) == 0;  // every row and table row starts 4- / 8-byte aligned
    if (in == out) {
        // in place (whole segments): the one pointer is restrict, so the unrolled loop batches its loads
        __nv_bfloat16* __restrict__ row = qkv + in;
        if (two) {
#pragma unroll 2
            for (int q = first; q < pairs / 2; q += step) rotate2(row, row, c, s, 2 * q, half);
        } else {
#pragma unroll 2
            for (int p = first; p < pairs; p += step) rotate1(row, row, c, s, p, half);
        }
        return;
    }
    // moved (an open segment's new rows into its KV cache: other rows, the launcher checks), v copied beside
    const __nv_bfloat16* __restrict__ src = qkv + in;
    __nv_bfloat16* __restrict__ dst = qkv + out;
    const int v0 = rot_heads * 2 * half;
    if (two) {
#pragma unroll 2
        for (int q = first; q < pairs / 2; q += step) rotate2(src, dst, c, s, 2 * q, half);
        for (int col = v0 + 2 * first; col < v0 + v_cols; col += 2 * step)
            *reinterpret_cast<__nv_bfloat162*>(dst + col) = *reinterpret_cast<const __nv_bfloat162*>(src + col);
        return;
    }
#pragma unroll 2
    for (int p = first; p < pairs; p += step) rotate1(src, dst, c, s, p, half);
    for (int col = v0 + first; col < v0 + v_cols; col += step) dst[col] = src[col];
}

extern "C" __global__ void __launch_bounds__(ROPE_THREADS)
    rope_bf16(const Spans spans, __nv_bfloat16* qkv, int ld, const float* __restrict__ cos_table,
              const float* __restrict__ sin_table, int rot_heads, int half, int v_cols, int chunks) {
    pdl_entry();
    rope<false>(spans, qkv, ld, cos_table, sin_table, rot_heads, half, v_cols, chunks);
}

// rope_bf16 with `chunks` blocks per row (launches of few rows: a decode step); the same bits.
extern "C" __global__ void __launch_bounds__(ROPE_THREADS)
    rope_bf16_few(const Spans spans, __nv_bfloat16* qkv, int ld, const float* __restrict__ cos_table,
                  const float* __restrict__ sin_table, int rot_heads, int half, int v_cols, int chunks) {
    pdl_entry();
    rope<true>(spans, qkv, ld, cos_table, sin_table, rot_heads, half, v_cols, chunks);
}

// An L2 prefetch beside a decode step's RoPE (the `_l2` entry): a decoded layer's gate/up product streams its weights
// from DRAM at ~3.2 TB/s (1B: 67 MB in ~21 µs) while attention and the o projection before it leave DRAM mostly idle.
// The launch's extra row of blocks (blockIdx.y == spans.count, gridDim.x of them) asks the TMA unit to bring the first
// `bytes` of each of `rows` weight rows into L2 (one cp.async.bulk.prefetch a row: no data returned, nothing waited
// for), so that every CTA of the gate/up product finds the start of its rows there. Results do not change: a prefetch
// moves no data into registers or memory that any kernel reads differently.
typedef struct {
    unsigned long long base;  // device address of the first row (16-byte aligned)
    long long stride;         // bytes from one row to the next (a multiple of 16)
    int rows;                 // rows to prefetch
    int bytes;                // bytes of each row, from its start (a multiple of 16, > 0)
} L2Prefetch;

static_assert(sizeof(L2Prefetch) == 24, "L2Prefetch layout is mirrored in rope.rs");

__device__ __forceinline__ void l2_prefetch_rows(const L2Prefetch& pf) {
    for (int r = blockIdx.x * ROPE_THREADS + threadIdx.x; r < pf.rows; r += gridDim.x * ROPE_THREADS) {
        const unsigned long long p = pf.base + (unsigned long long)r * (unsigned long long)pf.stride;
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(p), "r"(pf.bytes) : "memory");
    }
}

// rope_bf16_few with the L2 prefetch: blocks of blockIdx.y < spans.count rotate (the same bits), the row after them
// prefetches.
extern "C" __global__ void __launch_bounds__(ROPE_THREADS)
    rope_bf16_few_l2(const Spans spans, __nv_bfloat16* qkv, int ld, const float* __restrict__ cos_table,
                     const float* __restrict__ sin_table, int rot_heads, int half, int v_cols, int chunks,
                     const L2Prefetch pf) {
    pdl_entry();
    if ((int)blockIdx.y == spans.count) {
        l2_prefetch_rows(pf);
        return;
    }
    rope<true>(spans, qkv, ld, cos_table, sin_table, rot_heads, half, v_cols, chunks);
}
