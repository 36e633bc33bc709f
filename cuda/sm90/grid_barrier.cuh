/*
A barrier across the CTAs of one launch (v13, the decode MLP launch: gemm_sm90_decode_mlp), on two u32 words in
global memory that the launcher owns and zeroes once: [0] the arrivals of the current generation, [1] the
generation. Self-resetting, so a launch captured in a CUDA graph and replayed needs no memset between replays: the
last CTA to arrive puts the count back to 0 and then publishes generation + 1 (release); the others wait for the
generation to move (acquire). A CTA reads the generation before it arrives: until every CTA has arrived it cannot
change, and the next launch on the stream starts after this one has completed (griddepcontrol.wait of pdl_entry
comes before the first read).

Only correct when every CTA of the grid is resident at once: the launcher asks for a cooperative launch, and the
grid is at most one CTA per SM.

Memory order: the arrival publishes what the arriving CTA wrote (the threads that wrote meet the arriving thread at
a CTA barrier first; its fence is cumulative), and a proxy fence on each side lets the waiting CTA's TMA (the async
proxy) read those generic-proxy writes.
*/
#pragma once
#include <stdint.h>

namespace sm90 {

// The generation of the barrier at `bar`, read before this CTA arrives (acquire: nothing after it, the arrival
// included, moves before it).
__device__ __forceinline__ uint32_t grid_generation(const uint32_t* bar) {
    uint32_t g;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];\n" : "=r"(g) : "l"(bar + 1) : "memory");
    return g;
}

// This CTA's arrival (one thread, after the CTA's writes it publishes have met it at a barrier).
__device__ __forceinline__ void grid_arrive(uint32_t* bar, uint32_t generation, uint32_t ctas) {
    asm volatile("fence.proxy.async.global;\n" ::: "memory");
    __threadfence();
    const uint32_t before = atomicAdd(bar, 1u);
    if (before == ctas - 1) {
        // the last one: what the others published is ordered before what follows (the fence: their arrivals are in
        // the count it read), the count back to 0 for the next generation, then the generation moves (release)
        __threadfence();
        atomicExch(bar, 0u);
        asm volatile("st.release.gpu.global.u32 [%0], %1;\n" ::"l"(bar + 1), "r"(generation + 1) : "memory");
    }
}

// Waits until every CTA has arrived at generation `generation` (one thread; what they published is then visible to
// it, to the generic and the async proxy).
__device__ __forceinline__ void grid_wait(const uint32_t* bar, uint32_t generation) {
    uint32_t g;
    do {
        asm volatile("ld.acquire.gpu.global.u32 %0, [%1];\n" : "=r"(g) : "l"(bar + 1) : "memory");
    } while (g == generation);
    asm volatile("fence.proxy.async.global;\n" ::: "memory");
}

}  // namespace sm90
