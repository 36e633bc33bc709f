/*
Parameter structs that kernels take by value (one definition; mirrored field for field in
crates/dbrmt-kernels/src/params.rs, whose layout test checks the same sizes as the static_asserts here).

Two shapes of work cover every launch of an ARMT step:
  - a grouped matrix product: up to DBRMT_MAX_GROUPS independent problems (one per cell of the step, each with
    its own layer's weights, its own rows and row count);
  - a row kernel over spans: up to DBRMT_MAX_GROUPS runs of consecutive rows (one per cell), each with its own
    input row, output row, row count, layer (or state index) and flag.
A cell's result never depends on which other cells share the launch: that is what makes diagonal and sequential
execution bitwise identical. Device addresses are 64-bit integers (CUdeviceptr) so both sides agree on size.
*/
#pragma once

#include <stddef.h>  // offsetof

#define DBRMT_MAX_GROUPS 64

// One problem of a grouped matrix product: C[m, n] = A · B (+ C when accumulating). The meaning of A and B
// (transposed or not, element type) is the kernel's; lda/ldb/ldc are row strides in elements.
typedef struct {
    unsigned long long a, b, c;
    int m, n, k;
    int lda, ldb, ldc;
} GemmProblem;

typedef struct {
    GemmProblem problems[DBRMT_MAX_GROUPS];
    int count;
    int accumulate;  // nonzero: C += A·B (a residual add fused into the product)
    int _pad[2];
} GroupedGemm;

// Rows in_row .. in_row + rows of the input go to rows out_row .. out_row + rows of the output. `layer` picks the
// stacked weight of the cell, `state` its memory state (A, z) — the same as `layer` for one request, different when
// several requests share a step; `flag` is kernel-specific (e.g. "segment 0"). `pos` is the position inside its
// segment of the span's first row: 0 for whole segments; for new rows of an open (generating) segment, the rows
// already in its KV cache (RoPE and attention read it). `pos_dynamic` nonzero: the position is the device's
// `positions[state]` (Spans.positions), read when the kernel runs — at most `pos`, which then is only the bound the
// launcher checked the buffers against — so a captured CUDA graph replays for any position (span_pos below).
typedef struct {
    int in_row, out_row, rows, layer;
    int flag, state, pos;
    int pos_dynamic;
} RowSpan;

typedef struct {
    RowSpan spans[DBRMT_MAX_GROUPS];
    int count;
    int _pad;
    const int* positions;  // per memory state: the rows its KV cache holds (dynamic spans only; else null)
} Spans;

static_assert(sizeof(GemmProblem) == 48, "GemmProblem layout is mirrored in params.rs");
static_assert(sizeof(GroupedGemm) == 48 * DBRMT_MAX_GROUPS + 16, "GroupedGemm layout is mirrored in params.rs");
static_assert(sizeof(RowSpan) == 32, "RowSpan layout is mirrored in params.rs");
static_assert(offsetof(RowSpan, pos) == 24, "RowSpan layout is mirrored in params.rs");
static_assert(sizeof(Spans) == 32 * DBRMT_MAX_GROUPS + 16, "Spans layout is mirrored in params.rs");
static_assert(offsetof(Spans, positions) == 32 * DBRMT_MAX_GROUPS + 8, "Spans layout is mirrored in params.rs");

#ifdef __CUDACC__
// A span's position: its own `pos`, or (dynamic) its state's entry of `positions`, written by the host before the
// launch (or the graph replay) and checked there; a value past the bound the buffers were checked against traps
// rather than touch rows outside them.
__device__ __forceinline__ int span_pos(const Spans& s, const RowSpan& sp) {
    if (!sp.pos_dynamic) return sp.pos;
    const int p = s.positions[sp.state];
    if (p < 0 || p > sp.pos) __trap();
    return p;
}

// An elementwise row kernel's place (rope, to_bf16, add_rows): its block's row of the span, and this thread's first
// column and stride. CHUNKED (the `_few` entries: launches of few rows, launch.rs's row_chunks): `chunks` blocks per
// row, blockIdx.x = row · chunks + chunk, chunk c taking columns c·THREADS + t, stepping by chunks·THREADS; else one
// block a row (the stride a constant, `chunks` unused).
struct RowBlock {
    int r, first, step;
};

template <int THREADS, bool CHUNKED>
__device__ __forceinline__ RowBlock row_block(int chunks) {
    const int r = CHUNKED ? (int)blockIdx.x / chunks : (int)blockIdx.x;
    const int first = CHUNKED ? ((int)blockIdx.x - r * chunks) * THREADS + (int)threadIdx.x : (int)threadIdx.x;
    return RowBlock{r, first, CHUNKED ? chunks * THREADS : THREADS};
}
#endif
