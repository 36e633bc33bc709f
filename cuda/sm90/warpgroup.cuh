/*
Warpgroup-level helpers of the v2 GEMM: register reallocation (setmaxnreg) between the producer and the consumer
warpgroups, and named barriers that synchronise one warpgroup without stopping the others. Why a header of its own:
both are "one warpgroup at a time" rules that the kernel relies on and that are easy to break silently.

setmaxnreg: the kernel is compiled with __launch_bounds__(384, 1), so every thread starts with 65536 / 384 = 168
registers (rounded to 8). The producer warpgroup gives registers back (dec) and the two consumer warpgroups take
them (inc); 128 * PRODUCER + 256 * CONSUMER must not exceed 64K registers: 128*40 + 256*232 = 64512. All threads
of a warpgroup must execute the same setmaxnreg (.sync.aligned), before any divergence inside the warpgroup.
Named barriers: id 0 is __syncthreads; ids 1 and 2 are the two consumer warpgroups' own barriers (128 threads each).
*/
#pragma once

#include <stdint.h>

namespace sm90 {

template <uint32_t REGS>
__device__ __forceinline__ void setmaxnreg_dec() {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(REGS));
}

template <uint32_t REGS>
__device__ __forceinline__ void setmaxnreg_inc() {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(REGS));
}

// All `threads` threads (whole warps) that use barrier `id` wait for each other; also orders their shared accesses.
__device__ __forceinline__ void named_barrier_sync(uint32_t id, uint32_t threads) {
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

}  // namespace sm90
