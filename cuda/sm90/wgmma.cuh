/*
wgmma (Hopper warpgroup MMA) wrappers: the shared-memory matrix descriptor, the fence / commit / wait discipline,
and the m64nNk16 bf16 x bf16 -> f32 products with both operands read from shared memory (the wrappers of every
shape, and the m64nNk8 tf32 / register-A variants of the tf32x3 kernels, are generated into wgmma_ops.cuh).
Why a header of its own: these are the only tensor-core instructions of the v2 GEMM, and every rule that keeps them
correct is written down here once.

Descriptor (PTX ISA "Matrix Descriptor Format", sm_90):
  bits  0-13  start address >> 4 (shared-window address; < 2^18 bytes, so 14 bits suffice)
  bits 16-29  leading-dimension byte offset >> 4 (LBO)
  bits 32-45  stride-dimension byte offset >> 4 (SBO)
  bits 49-51  base offset (phase of the swizzle pattern)
  bits 62-63  swizzle mode: 0 none, 1 = 128B, 2 = 64B, 3 = 32B
Our operand tiles are K-major (both A [rows, k] and B [n, k] keep k contiguous), 64 bf16 = 128 bytes per row, written
by TMA with SWIZZLE_128B into 1024-byte-aligned buffers: row r of the tile sits at byte r*128, its 16-byte chunk c
at ((c ^ (r & 7)) * 16). The "core matrix" of wgmma is 8 rows x 16 bytes; with 128B swizzle K-major:
  - SBO = 1024: the distance from one group of 8 rows to the next (8 rows x 128 B);
  - LBO is not used (one wgmma reads k16 = 32 bytes, inside one 128-byte swizzle row); we store 1 (16 B), as is usual;
  - base offset = 0: every descriptor start is (1024-aligned tile) + 32*kk with 32*kk < 128, so address bits 7-9
    (the row-in-pattern phase) of the start are those of an aligned tile.
  - k16 slice kk (0..3) of the 64-wide row: start address + 32*kk bytes. The hardware forms the address of chunk c
    of row r as start + r*128 + c*16 and then XORs bits 4-6 with bits 7-9, exactly what TMA did when it wrote the
    chunk (2*kk + c) of row r; 2*kk + c <= 7, so adding 32*kk never carries into bit 7.
  - A warpgroup's 64-row slice of the 128-row A tile starts 64*128 = 8192 bytes in: still 1024-aligned.

Fence / commit / wait (PTX ISA "Asynchronous Warpgroup Level Matrix Multiply-Accumulate"):
  - wgmma.fence before the first wgmma of a batch: required whenever the accumulator registers were touched by
    ordinary instructions since the last wgmma (the epilogue reads them; the first wgmma of a tile overwrites them
    with scale-d = 0). Chained wgmma on the same accumulators need no fence between them (same shape: ordered).
  - commit_group closes the batch of one k-block (4 wgmma); wait_group N returns when at most N batches are still
    in flight. The consumer releases a pipeline stage only after the wait that covers the batch reading it.
  - fence_operand: an empty asm that "modifies" each accumulator, so the compiler cannot move reads/writes of the
    accumulators across the async window (between a wgmma and the wait that completes it).
*/
#pragma once

#include <stdint.h>

#include "wgmma_ops.cuh"

namespace sm90 {

// K-major, 128B-swizzled operand tile starting at shared address `smem_addr` (1024-aligned, or aligned + 32*kk).
__device__ __forceinline__ uint64_t wgmma_desc_k128(uint32_t smem_addr) {
    uint64_t desc = (uint64_t)((smem_addr & 0x3FFFFu) >> 4);
    desc |= (uint64_t)(16u >> 4) << 16;    // LBO (unused for swizzled K-major)
    desc |= (uint64_t)(1024u >> 4) << 32;  // SBO: 8 rows x 128 B
    desc |= (uint64_t)1 << 62;             // 128B swizzle
    return desc;
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }

__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }

template <int N>
__device__ __forceinline__ void wgmma_wait() {
    static_assert(N >= 0 && N <= 7, "wgmma.wait_group takes 0..7");
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}

template <int R>
__device__ __forceinline__ void fence_operand(float (&d)[R]) {
#pragma unroll
    for (int i = 0; i < R; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

// The instruction wrappers (one per shape, generated) live in wgmma_ops.cuh. D[64 x N] (+)= A[64 x 16] . B[N x 16]^T
// with A and B K-major in shared memory (descriptors above), D in registers in the accumulator fragment layout:
// thread t of the warpgroup (warp w = t / 32, lane l = t % 32) holds, for i in 0 .. N/2-1, the element at
//     row = 16*w + l/4 + 8*((i % 4) / 2),   col = 8*(i / 4) + 2*(l % 4) + (i % 2).
// scale_d = 0: D = A.B (the first k16 step of a tile; no need to zero the registers); otherwise D += A.B.
template <int N>
__device__ __forceinline__ void wgmma_m64k16(float (&d)[N / 2], uint64_t desc_a, uint64_t desc_b, int scale_d) {
    wgmma_m64k16_bf16<N>(d, desc_a, desc_b, scale_d);
}

}  // namespace sm90
