/*
Bulk (non-tensor) async copies from shared to global memory, used by the v2 GEMM's epilogue to store output rows
without a tensor map (every problem has its own C pointer and ldc, so a C tensor map per problem would not fit the
kernel parameters); and one load, global to shared on an mbarrier (the fused read's z vector). Why a header of its
own: the proxy fence and the wait/commit rules that make them safe.

Rules:
  - The staged bytes are written with ordinary st.shared (generic proxy); the bulk copy reads them through the
    async proxy. Every writing thread executes fence.proxy.async.shared::cta after its writes, then the warpgroup
    meets at a named barrier, then the copies are issued: the writes are then visible to the copies.
  - A thread's copies form bulk groups (commit_group). Before the staging buffer is written again, the threads that
    issued copies from it wait with wait_group.read 0 (their copies have finished *reading* shared memory; the
    global writes may still be in flight), and the warpgroup meets at a named barrier before anyone writes.
  - Before the CTA exits, the issuing threads wait_group 0 (all of their copies complete), so no copy reads shared
    memory of a finished CTA.
  - Addresses 16-byte aligned, size a multiple of 16 bytes.
*/
#pragma once

#include <stdint.h>

namespace sm90 {

// Makes this thread's earlier generic-proxy shared-memory writes visible to the async proxy.
__device__ __forceinline__ void fence_proxy_async_shared() {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// Copies `bytes` from global address `src` to shared address `dst`; completes `bytes` on mbarrier `bar` (whose
// expected transaction count must include them). Non-cluster launch: the CTA's shared::cta addresses are valid
// shared::cluster addresses.
__device__ __forceinline__ void bulk_load(uint32_t dst, const void* src, uint32_t bytes, uint32_t bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(dst),
                 "l"(src), "r"(bytes), "r"(bar)
                 : "memory");
}

// Copies `bytes` from shared address `src` to global address `dst`.
__device__ __forceinline__ void bulk_store(void* dst, uint32_t src, uint32_t bytes) {
    asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;\n" ::"l"(dst), "r"(src), "r"(bytes)
                 : "memory");
}

__device__ __forceinline__ void bulk_commit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }

// All of this thread's committed copies have finished reading their shared-memory source.
__device__ __forceinline__ void bulk_wait_read_all() {
    asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
}

// All of this thread's committed copies are complete.
__device__ __forceinline__ void bulk_wait_all() { asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory"); }

}  // namespace sm90
