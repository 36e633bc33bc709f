/*
Thread-block-cluster helpers for the optional 2-CTA variant of the v2 GEMM (TMA multicast of the shared B tile).
Why a header of its own: remote (distributed shared memory) barrier arrivals and the cluster-wide barriers that keep
a CTA alive while its peer may still touch its shared memory are the rules of that variant.

  - Both CTAs of a cluster initialise their mbarriers, fence.mbarrier_init, then the whole cluster meets
    (cluster_sync) before any TMA multicast or remote arrive can target a peer's barriers.
  - A consumer warp releases a stage on its own empty barrier and on its peer's (mapa + arrive .shared::cluster),
    because the peer's producer multicasts into this CTA's copy of the stage.
  - Before exiting, every thread of both CTAs meets at the cluster barrier: no CTA leaves while its peer may still
    arrive on its barriers or multicast into its shared memory.
*/
#pragma once

#include <stdint.h>

namespace sm90 {

__device__ __forceinline__ uint32_t cluster_ctarank() {
    uint32_t r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
    return r;
}

// All threads of all CTAs of the cluster (arrive with release, wait with acquire semantics).
__device__ __forceinline__ void cluster_sync() {
    asm volatile("barrier.cluster.arrive.release.aligned;\n" ::: "memory");
    asm volatile("barrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}

// Arrives on the mbarrier at the same shared offset in CTA `rank` of the cluster. Default semantics (release at CTA
// scope), as CUTLASS's ClusterBarrier does: the arrival carries no data; what it orders is this warp's wgmma reads
// of the stage, which wgmma.wait_group has already completed before the arrive is issued, against the peer
// producer's later TMA write into this CTA's copy of the stage. (A .release.cluster arrive would cost a
// MEMBAR.ALL.GPU per warp per k-block; an .acquire.cluster wait an L1 invalidation per k-block.)
__device__ __forceinline__ void mbar_arrive_remote(uint32_t bar, uint32_t rank) {
    asm volatile(
        "{\n"
        ".reg .b32 remote;\n"
        "mapa.shared::cluster.u32 remote, %0, %1;\n"
        "mbarrier.arrive.shared::cluster.b64 _, [remote];\n"
        "}\n" ::"r"(bar),
        "r"(rank)
        : "memory");
}

// `count` arrivals at once on a local barrier (a consumer warp standing in for its absent peer's warp).
__device__ __forceinline__ void mbar_arrive_count(uint32_t bar, uint32_t count) {
    asm volatile("mbarrier.arrive.release.cta.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}

}  // namespace sm90
