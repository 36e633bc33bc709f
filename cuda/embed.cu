/*
A segment's input rows for the cells of one step: for each span, rows out_row .. out_row + T_s of the hidden buffer
get the embedding rows of its T_s token ids (ids[in_row ..]), then rows out_row + T_s .. out_row + T_s + M get the M
memory-token rows (the same for every segment). Here a span's `rows` is T_s, its text rows only. A pure copy: the
output is bit-for-bit the table's rows (the tables are bf16; `embed_segment_f32` writes f32 hidden rows, and bf16 → f32
is exact). The host validates ids before upload; an id >= vocab still never reads out of bounds: its row is filled
with a NaN (bf16 0x7FFF, in f32 its exact widening 0x7FFF0000; patterns distinct from the tests' poison 0x7FC0 and
0x7FC0DEAD) so it is caught.
One block per output row (blockIdx.y the span, blockIdx.x the row), blocks past a span's T_s + M rows return at once.
Entry points `embed_segment_<H>`, H the hidden rows' type (bf16, f32): one template. `embed_segment_f32_mirrored`
also writes every row as bf16 into `mirror` (the f32 rows' layout): the table's own bf16 values, which is what
to_bf16 would make of the exact f32 copies; the engine's bf16 copy of the hidden rows (see gemm_sm90.cu v7).
Bytes: (T_s + M) · d · (2 + sizeof(H)) per span (bf16 rows read, H rows written) + T_s · 4 (ids).
*/
#include <cuda_bf16.h>

#include "common/common.cuh"
#include "common/params.h"
#include "common/pdl.cuh"

#define EMBED_THREADS 128

namespace {

// A bf16 table value into a hidden row of type H (exact for both).
__device__ __forceinline__ void store_hidden(__nv_bfloat16* dst, __nv_bfloat16 v) { *dst = v; }
__device__ __forceinline__ void store_hidden(float* dst, __nv_bfloat16 v) { *dst = __bfloat162float(v); }
// The bad-id NaN, written by its bits: converting the bf16 NaN need not keep its payload (on an H100 the f32 rows
// did not read back as the widened 0x7FFF0000 the host expects).
__device__ __forceinline__ void store_bad_id(__nv_bfloat16* dst) { *dst = __ushort_as_bfloat16((unsigned short)0x7FFF); }
__device__ __forceinline__ void store_bad_id(float* dst) { *dst = __uint_as_float(0x7FFF0000u); }

template <typename H, bool MIRROR = false>
__device__ __forceinline__ void embed_segment(const RowSpan span, const unsigned int* __restrict__ ids,
                                              const __nv_bfloat16* __restrict__ embed,
                                              const __nv_bfloat16* __restrict__ memory, H* __restrict__ hidden,
                                              int mem_rows, int d, int vocab,
                                              __nv_bfloat16* __restrict__ mirror = nullptr) {
    const int r = blockIdx.x;
    if (r >= span.rows + mem_rows) return;

    H* out = hidden + (size_t)(span.out_row + r) * d;
    __nv_bfloat16* out_bf16 = MIRROR ? mirror + (size_t)(span.out_row + r) * d : nullptr;
    const __nv_bfloat16* src;
    if (r < span.rows) {
        const unsigned int id = ids[span.in_row + r];
        if (id >= (unsigned int)vocab) {
            for (int c = threadIdx.x; c < d; c += EMBED_THREADS) {
                store_bad_id(out + c);
                if constexpr (MIRROR) store_bad_id(out_bf16 + c);
            }
            return;
        }
        src = embed + (size_t)id * d;
    } else {
        src = memory + (size_t)(r - span.rows) * d;
    }
    if constexpr (MIRROR) {
        for (int c = threadIdx.x; c < d; c += EMBED_THREADS) {
            const __nv_bfloat16 v = src[c];
            store_hidden(out + c, v);
            out_bf16[c] = v;
        }
    } else {
        for (int c = threadIdx.x; c < d; c += EMBED_THREADS) store_hidden(out + c, src[c]);
    }
}

}  // namespace

// ----------------------------------------------------------------------------
// CUDA kernels

// `mem_rows` = M, `d` = hidden size (also the row stride of embed, memory and hidden), `vocab` = rows of embed.
extern "C" __global__ void __launch_bounds__(EMBED_THREADS)
    embed_segment_bf16(const Spans spans, const unsigned int* __restrict__ ids, const __nv_bfloat16* __restrict__ embed,
                       const __nv_bfloat16* __restrict__ memory, __nv_bfloat16* __restrict__ hidden, int mem_rows,
                       int d, int vocab) { pdl_entry();
    embed_segment(spans.spans[blockIdx.y], ids, embed, memory, hidden, mem_rows, d, vocab);
}

// As embed_segment_bf16, with f32 hidden rows.
extern "C" __global__ void __launch_bounds__(EMBED_THREADS)
    embed_segment_f32(const Spans spans, const unsigned int* __restrict__ ids, const __nv_bfloat16* __restrict__ embed,
                      const __nv_bfloat16* __restrict__ memory, float* __restrict__ hidden, int mem_rows, int d,
                      int vocab) { pdl_entry();
    embed_segment(spans.spans[blockIdx.y], ids, embed, memory, hidden, mem_rows, d, vocab);
}

// As embed_segment_f32, and every row also in bf16 into `mirror` (the hidden rows' layout).
extern "C" __global__ void __launch_bounds__(EMBED_THREADS)
    embed_segment_f32_mirrored(const Spans spans, const unsigned int* __restrict__ ids,
                               const __nv_bfloat16* __restrict__ embed, const __nv_bfloat16* __restrict__ memory,
                               float* __restrict__ hidden, __nv_bfloat16* __restrict__ mirror, int mem_rows, int d,
                               int vocab) { pdl_entry();
    embed_segment<float, true>(spans.spans[blockIdx.y], ids, embed, memory, hidden, mem_rows, d, vocab, mirror);
}
