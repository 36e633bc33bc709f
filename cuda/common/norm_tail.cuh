/*
The norm tail: the RMSNorm that follows a launch, done by the launch's last CTA to finish (decode steps). A decoded
layer's two norms are one row each (576 to 4,096 values), and as launches of their own each cost a start and a chain
(~3.6-4 µs under ncu, docs/log/decode_graphs.md §5-6). Instead, the launch that writes the f32 rows before the norm
(the o projection's narrow GEMM, the fused read) counts its CTAs out: each CTA's storing threads fence their stores,
meet at a barrier, and one thread adds 1 to a counter in device memory; the CTA that sees gridDim.x − 1 arrivals
before its own fences again and normalises every row of the launch with rms_norm_row_cached (the `_few` entries'
bits: common/rms_norm_row.cuh), reading the rows from L2 (ld.global.cg: this SM's L1 may hold lines of them from
before the other CTAs' stores), then sets the counter back to 0. The next launch that uses the counter starts after
this grid completed (every kernel waits for the one before it: common/pdl.cuh), so it finds 0 — also in a graph
replay, with nothing to reset. Launchers take the tail only for few rows (NORM_TAIL_MAX_ROWS): one CTA normalises them
one after another.
*/
#pragma once

#include <cuda_bf16.h>

#include "params.h"
#include "rms_norm_row.cuh"

// The tail's parameters (by value, after the launch's own; mirrored in crates/dbrmt-kernels/src/norm_tail.rs).
// Problem i of the launch (its m rows) is normalised with weight row layer[i] into rows y_row[i] .. + m of y.
typedef struct {
    unsigned long long counter;  // device address of a u32, 0 between launches
    unsigned long long w;        // bf16 [layers, d]: the norm's stacked weights
    unsigned long long y;        // bf16 output rows, stride y_ld elements
    int y_ld;
    int d;      // columns of a row (<= RMS_ROW_CACHED * 128): the launch's output width
    float eps;  // the norm's epsilon
    int _pad;
    int layer[DBRMT_MAX_GROUPS];
    int y_row[DBRMT_MAX_GROUPS];
} NormTail;

static_assert(sizeof(NormTail) == 40 + 8 * DBRMT_MAX_GROUPS, "NormTail layout is mirrored in norm_tail.rs");

// The rows of a tail's problem (see norm_tail).
struct NormTailRows {
    const float* x;
    long long ld;
    int m;
};

// The shared memory the tail needs (a flag and the row's 5 floats), in bytes.
constexpr int NORM_TAIL_SMEM = 32;

// Whether this CTA is the last of the grid to arrive; when it is, every other CTA's stores made before its arrival
// are visible to it. Called by the `t` = 0..127 threads that stored the CTA's part (every thread must call it), with
// `sync` their barrier and `flag` an int of shared memory.
template <typename Sync>
__device__ __forceinline__ bool last_to_arrive(unsigned* counter, int t, volatile int* flag, const Sync& sync) {
    __threadfence();  // this thread's stores, before the CTA's arrival
    sync();
    if (t == 0) *flag = atomicAdd(counter, 1u) == gridDim.x - 1;
    sync();
    const bool last = *flag != 0;
    if (last) __threadfence();  // the others' stores, before this CTA's reads
    return last;
}

// The tail, after this CTA's last store: rows(p) gives problem p's f32 rows as {address of row 0, row stride, rows}.
// smem: NORM_TAIL_SMEM bytes of shared memory no other thread of the CTA uses any more.
template <typename Rows, typename Sync>
__device__ __forceinline__ void norm_tail(const NormTail& T, int count, const Rows& rows, int t, unsigned char* smem,
                                          const Sync& sync) {
    unsigned* counter = reinterpret_cast<unsigned*>(T.counter);
    float* shared = reinterpret_cast<float*>(smem);
    if (!last_to_arrive(counter, t, reinterpret_cast<volatile int*>(smem + 24), sync)) return;
    const __nv_bfloat16* w = reinterpret_cast<const __nv_bfloat16*>(T.w);
    __nv_bfloat16* y = reinterpret_cast<__nv_bfloat16*>(T.y);
    for (int p = 0; p < count; ++p) {
        const auto [x, ld, m] = rows(p);
        for (int r = 0; r < m; ++r) {
            const float* xr = x + (long long)r * ld;
            rms_norm_row_cached([&](int c) { return __ldcg(xr + c); }, w + (long long)T.layer[p] * T.d,
                                y + (long long)(T.y_row[p] + r) * T.y_ld, T.d, T.eps, t, shared, sync);
        }
    }
    if (t == 0) *counter = 0u;
}
