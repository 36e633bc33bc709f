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
c·128 + t, stepping by chunks·128): 1 for many rows, enough for one pair a thread when a launch has few rows (a decode
step: one block looped over the 1B row's 1,280 pairs took 8.4 µs, s11 ledger). Each (head, i) pair is read and written
by exactly one thread, with the same arithmetic whatever `chunks` is, so in-place is race-free (the launcher refuses
other overlaps of read and written rows) and the bits never depend on it.
Bytes: rows · (H + KV) · hd · 4 (bf16 read and written; + KV · hd · 4 when v is copied) + the table rows (rows · hd/2
· 8, cached across heads).
*/
#include <cuda_bf16.h>

#include "common/common.cuh"
#include "common/params.h"
#include "common/pdl.cuh"

#define ROPE_THREADS 128

// ----------------------------------------------------------------------------
// CUDA kernels

// `rot_heads` = H + KV (the heads that rotate), `half` = hd / 2, `v_cols` = KV · hd (copied when not in place).
// CHUNKED: `chunks` blocks per row (the `_few` entry); else one block a row and `chunks` is 1 (the loop's stride a
// constant: the many-row entry's code is the one before session 11's chunks).
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
    if (in == out) {
        // in place (whole segments): the one pointer is restrict, so the unrolled loop batches its loads
        __nv_bfloat16* __restrict__ row = qkv + in;
#pragma unroll 2
        for (int p = first; p < pairs; p += step) {
            const int head = p / half;
            const int i = p - head * half;
            const int col = head * 2 * half + i;
            const float x1 = __bfloat162float(row[col]);
            const float x2 = __bfloat162float(row[col + half]);
            const float ci = c[i], si = s[i];
            row[col] = __float2bfloat16(x1 * ci - x2 * si);
            row[col + half] = __float2bfloat16(x2 * ci + x1 * si);
        }
        return;
    }
    // moved (an open segment's new rows into its KV cache: other rows, the launcher checks), v copied beside
    const __nv_bfloat16* __restrict__ src = qkv + in;
    __nv_bfloat16* __restrict__ dst = qkv + out;
#pragma unroll 2
    for (int p = first; p < pairs; p += step) {
        const int head = p / half;
        const int i = p - head * half;
        const int col = head * 2 * half + i;
        const float x1 = __bfloat162float(src[col]);
        const float x2 = __bfloat162float(src[col + half]);
        const float ci = c[i], si = s[i];
        dst[col] = __float2bfloat16(x1 * ci - x2 * si);
        dst[col + half] = __float2bfloat16(x2 * ci + x1 * si);
    }
    const int v0 = rot_heads * 2 * half;
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
