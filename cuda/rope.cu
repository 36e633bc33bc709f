/*
Rotary position embedding, in place on the fused QKV rows of the cells of one step, in HF LLaMA's rotate_half layout:
for each q and k head of a row and i < hd/2, (x1, x2) = (x[i], x[i + hd/2]) -> (x1·cos − x2·sin, x2·cos + x1·sin) with
cos/sin read from f32 tables [positions, hd/2] (built on the host, identical for every cell) at position = span.pos +
the row's index inside its span (positions restart at 0 every segment; pos > 0 for new rows of an open segment). The q heads [0, H·hd) and k heads [H·hd, (H+KV)·hd) are
contiguous, so a row is H + KV rotated heads; v is not touched. One block per row (blockIdx.y the span, blockIdx.x the
row); each (head, i) pair is read and written by exactly one thread, so in-place is race-free.
Bytes: rows · (H + KV) · hd · 4 (bf16 read and written) + the table rows (rows · hd/2 · 8, cached across heads).
*/
#include <cuda_bf16.h>

#include "common/common.cuh"
#include "common/params.h"
#include "common/pdl.cuh"

#define ROPE_THREADS 128

// ----------------------------------------------------------------------------
// CUDA kernels

// `rot_heads` = H + KV (the heads that rotate), `half` = hd / 2.
extern "C" __global__ void __launch_bounds__(ROPE_THREADS)
    rope_bf16(const Spans spans, __nv_bfloat16* __restrict__ qkv, int ld, const float* __restrict__ cos_table,
              const float* __restrict__ sin_table, int rot_heads, int half) { pdl_entry();
    const RowSpan span = spans.spans[blockIdx.y];
    const int r = blockIdx.x;
    if (r >= span.rows) return;

    __nv_bfloat16* row = qkv + (size_t)(span.in_row + r) * ld;  // in place: in_row == out_row (launcher checks)
    const float* c = cos_table + (size_t)(span.pos + r) * half;
    const float* s = sin_table + (size_t)(span.pos + r) * half;
    const int pairs = rot_heads * half;
#pragma unroll 2
    for (int p = threadIdx.x; p < pairs; p += ROPE_THREADS) {
        const int head = p / half;
        const int i = p - head * half;
        const int col = head * 2 * half + i;
        const float x1 = __bfloat162float(row[col]);
        const float x2 = __bfloat162float(row[col + half]);
        const float ci = c[i], si = s[i];
        row[col] = __float2bfloat16(x1 * ci - x2 * si);
        row[col + half] = __float2bfloat16(x2 * ci + x1 * si);
    }
}
