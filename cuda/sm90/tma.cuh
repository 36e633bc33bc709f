/*
TMA (cp.async.bulk.tensor) wrappers for the v2 GEMM: 2-D tiled loads from a tensor map (built on the host with
cuTensorMapEncodeTiled) into shared memory, completing on an mbarrier. Why a header of its own: the tensor map is
the contract between the host launcher and the kernel, so its shape is described here once.

The kernel takes two maps by value (`const __grid_constant__`, so their address is a generic address of the
parameter space, which is what the TMA instructions and prefetch.tensormap want):
  A: bf16, rank 2, dims {k, rows_total}, row stride lda*2 bytes, box {64, 128}, SWIZZLE_128B;
  B: bf16, rank 2, dims {k, L*n},        row stride ldb*2 bytes, box {64, BN},  SWIZZLE_128B;
coordinates are {k offset in elements, row}. Elements outside the dims are zero-filled (OOB_FILL_NONE), and the
mbarrier transaction count is always the full box (zeros included). A box may therefore run past a problem's rows
(into the next problem's rows or past the tensor) or past k: the extra rows give output rows/columns the epilogue
never stores, and the extra k columns are zeros in both operands, so they add exact zeros.
The destination must be 1024-byte aligned for the 128B swizzle pattern to start at phase 0 (see wgmma.cuh).
*/
#pragma once

#include <stdint.h>

namespace sm90 {

// A CUtensorMap, opaque: 128 bytes, 64-byte aligned (the driver's definition). Kept here so that the kernel file
// needs no cuda.h; host code copies a CUtensorMap into it byte for byte.
struct alignas(64) TmaMap {
    unsigned long long opaque[16];
};
static_assert(sizeof(TmaMap) == 128, "CUtensorMap is 128 bytes");

// Fetches the map into the constant cache before the first copy uses it.
__device__ __forceinline__ void tma_prefetch_map(const TmaMap* map) {
    asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}

// Copies the box at {c0 (inner, elements), c1 (row)} into shared address `dst`; completes `bytes` on mbarrier `bar`.
// Non-cluster launch: the CTA's own shared::cta addresses are valid shared::cluster addresses.
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const TmaMap* map, uint32_t bar, int c0, int c1) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];\n" ::
            "r"(dst),
        "l"(reinterpret_cast<uint64_t>(map)), "r"(bar), "r"(c0), "r"(c1)
        : "memory");
}

// Copies the 3-D box at {c0 (inner, elements), c1, c2} into shared address `dst`; completes its bytes on `bar`
// (attention's q heads; the narrow GEMM widths' view {64, rows, k / 64} of a [rows, k] matrix, whose box
// {64, rows, KS} is a stage's KS k-block slots in one copy).
__device__ __forceinline__ void tma_load_3d(uint32_t dst, const TmaMap* map, uint32_t bar, int c0, int c1, int c2) {
    asm volatile(
        "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5}], "
        "[%2];\n" ::"r"(dst),
        "l"(reinterpret_cast<uint64_t>(map)), "r"(bar), "r"(c0), "r"(c1), "r"(c2)
        : "memory");
}

// As tma_load_2d, and the same box also lands at the same shared offset of every CTA of the cluster in `mask`, each
// completing `bytes` on the barrier at the same offset in its own shared memory (2-CTA variant, B tiles).
__device__ __forceinline__ void tma_load_2d_multicast(uint32_t dst, const TmaMap* map, uint32_t bar, int c0, int c1,
                                                      uint16_t mask) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster"
        " [%0], [%1, {%3, %4}], [%2], %5;\n" ::"r"(dst),
        "l"(reinterpret_cast<uint64_t>(map)), "r"(bar), "r"(c0), "r"(c1), "h"(mask)
        : "memory");
}

}  // namespace sm90
