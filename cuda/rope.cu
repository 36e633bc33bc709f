/*
Rotary position embedding on the fused QKV rows of the cells of one step, in HF LLaMA's rotate_half layout: for each
q and k head of a row and i < hd/2, (x1, x2) = (x[i], x[i + hd/2]) -> (x1·cos − x2·sin, x2·cos + x1·sin) with cos/sin
read from f32 tables [positions, hd/2] (built on the host, identical for every cell) at position = pos + the row's
index inside its span (positions restart at 0 every segment; pos > 0 for new rows of an open segment). Row r of a span
is read from in_row + r and written to out_row + pos + r (out_row: the output's row of segment position 0): in place
for whole segments (pos = 0, in_row = out_row); an open segment's new rows go from the step's scratch rows into its KV
cache, v copied beside the rotated q and k. pos is the span's, or for a dynamic span its state's entry of the
positions buffer, read here (span_pos, params.h): a captured decode step replays at any position. The q heads
[0, H·hd) and k heads [H·hd, (H+KV)·hd) are contiguous, so a row is H + KV rotated heads, then KV v heads. One block
per row (blockIdx.y the span, blockIdx.x the row); each (head, i) pair is read and written by exactly one thread, so
in-place is race-free (the launcher refuses other overlaps of read and written rows).
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
extern "C" __global__ void __launch_bounds__(ROPE_THREADS)
    rope_bf16(const Spans spans, __nv_bfloat16* qkv, int ld, const float* __restrict__ cos_table,
              const float* __restrict__ sin_table, int rot_heads, int half, int v_cols) {
    pdl_entry();
    const RowSpan span = spans.spans[blockIdx.y];
    const int r = blockIdx.x;
    if (r >= span.rows) return;

    const int pos = span_pos(spans, span);
    const __nv_bfloat16* src = qkv + (size_t)(span.in_row + r) * ld;
    __nv_bfloat16* dst = qkv + (size_t)(span.out_row + pos + r) * ld;  // == src in place
    const float* c = cos_table + (size_t)(pos + r) * half;
    const float* s = sin_table + (size_t)(pos + r) * half;
    const int pairs = rot_heads * half;
    // two pairs per thread per round, both loaded before either is stored (src may be dst: the compiler could not
    // move the second pair's loads above the first pair's stores itself)
    for (int p0 = threadIdx.x; p0 < pairs; p0 += 2 * ROPE_THREADS) {
        float x[2][2], cs[2][2];
        int col[2];
#pragma unroll
        for (int j = 0; j < 2; ++j) {
            const int p = min(p0 + j * ROPE_THREADS, pairs - 1);  // a clamped second pair repeats the last one
            const int head = p / half;
            const int i = p - head * half;
            col[j] = head * 2 * half + i;
            x[j][0] = __bfloat162float(src[col[j]]);
            x[j][1] = __bfloat162float(src[col[j] + half]);
            cs[j][0] = c[i];
            cs[j][1] = s[i];
        }
#pragma unroll
        for (int j = 0; j < 2; ++j) {
            if (j == 1 && p0 + ROPE_THREADS >= pairs) break;
            dst[col[j]] = __float2bfloat16(x[j][0] * cs[j][0] - x[j][1] * cs[j][1]);
            dst[col[j] + half] = __float2bfloat16(x[j][1] * cs[j][0] + x[j][0] * cs[j][1]);
        }
    }
    if (dst != src) {
        const int v0 = rot_heads * 2 * half;
        for (int col = v0 + (int)threadIdx.x; col < v0 + v_cols; col += ROPE_THREADS) dst[col] = src[col];
    }
}
