/*
mbarrier wrappers for the producer/consumer pipeline of the v2 GEMM (shared-memory barriers with a phase bit and a
transaction count). Why a header of its own: the full/empty protocol and its phase arithmetic are the part of a
warp-specialised kernel that deadlocks or races when wrong, so the rules live next to the instructions.

Protocol (S stages, stage s = it % S, round r = it / S, parity = r & 1, `it` counting k-blocks over the whole
persistent loop, identical in the producer and the consumers because both walk the same tile list):
  full[s]  count 1: the producer's arrive.expect_tx(bytes of A + B tile) plus the TMA unit's complete_tx of exactly
           those bytes (TMA counts the whole box, zero-filled parts included) complete one phase = "stage s holds
           k-block it". Consumers wait full[s] with parity r & 1.
  empty[s] count = consumer warps (8): each consumer warp's lane 0 arrives once it has *completed* (wgmma.wait_group)
           the MMAs reading stage s, or at once if its warpgroup has no valid rows in the tile. The producer waits
           empty[s] with parity (r & 1) ^ 1 before refilling the stage in round r.
Phase reasoning: a fresh barrier is in phase 0; try_wait.parity(P) succeeds once the phase with parity P has
completed, and a fresh barrier counts as having completed the phase "before 0" (parity 1). So in round 0 the
producer's wait on parity 1 passes at once (all stages start empty), and in round r >= 1 it needs the consumers'
release of round r - 1. The producer can therefore be at most S k-blocks ahead of the slowest consumer warp, and a
parity can never be confused with one two rounds away: the empty barrier of stage s cannot complete round r before
full[s] completed round r (consumers only release what they waited for), and full[s] cannot complete round r + 1
before the producer passed empty[s] of round r.
Memory ordering: TMA writes and wgmma reads of a stage are both async-proxy accesses; full's complete_tx makes the
TMA bytes visible to threads that observe the phase, and wgmma.wait_group before the empty arrive orders the reads
before the producer's next TMA into the stage (the pattern CUTLASS's pipelines use). Barrier initialisation is made
visible to the async proxy with fence.mbarrier_init before the __syncthreads that publishes it.
*/
#pragma once

#include <stdint.h>

namespace sm90 {

__device__ __forceinline__ uint32_t smem_u32(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}

// Makes the initialisation of the barriers visible to the async proxy (TMA complete_tx) and to the cluster.
__device__ __forceinline__ void mbar_fence_init() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }

// The producer's arrival: one arrive plus the number of bytes the TMA copies of this phase will deliver.
__device__ __forceinline__ void mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.release.cta.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes)
                 : "memory");
}

// A consumer's arrival (release semantics: its earlier accesses happen before the phase completes).
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
    asm volatile("mbarrier.arrive.release.cta.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}

// Spins until the phase of parity `parity` has completed (try_wait suspends in hardware for a while per attempt).
// The label is local to the { } scope, so the asm can be inlined many times.
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
    asm volatile(
        "{\n"
        ".reg .pred done;\n"
        "WAIT:\n"
        "mbarrier.try_wait.parity.acquire.cta.shared::cta.b64 done, [%0], %1;\n"
        "@!done bra WAIT;\n"
        "}\n" ::"r"(bar),
        "r"(parity)
        : "memory");
}

}  // namespace sm90
