/*
The f32 operand of a 3xTF32 (or tf32 + bf16) wgmma product, converted in shared memory by converter warps: shared by
gemm_tf32x3_sm90.cu (its B operand) and armt_read_fused_sm90.cu (the memory state A, its B operand).

A stage arrives by TMA as raw f32 [32 k][W n] (128-byte rows of k, one row per k... as each kernel's B box lays it
out: k-major, W columns per k row). convert_stage() writes the two tiles wgmma reads as its K-major B operand:
[W n][32 k] of 32-bit values, one 128-byte row per n, 16-byte chunk c (k = 4c .. 4c+3) at (c ^ (n % 8)) * 16 (the
128B swizzle). Item i = (chunk c = i / W, column n = i % W): a warp takes 32 consecutive n of one chunk, so its loads
read 32 consecutive words of a k row and its 16-byte stores spread over all banks.
  hi = tf32(x) (round to nearest, ties away: cvt.rna);
  lo = tf32(x - hi)                         (BF16_LO = false: 3xTF32, hi*hi + hi*lo + lo*hi)
     = the bf16 pair {bf16(hi), bf16(x - hi)} (BF16_LO = true: tf32 + one bf16 correction product).
The caller fences (generic -> async proxy) and publishes the stage.
*/
#pragma once

#include <stdint.h>

#include "sm90/convert.cuh"

namespace sm90 {

__device__ __forceinline__ void sts_v4(uint32_t addr, uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
    asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "r"(a), "r"(b), "r"(c), "r"(d) : "memory");
}

// One stage (32 k) of raw f32 [32 k][W n] at `raw` into the hi and lo tiles, by NTHREADS converter threads (this
// one is `ctid`).
template <int W, int NTHREADS, bool BF16_LO>
__device__ __forceinline__ void convert_stage(uint32_t raw, uint32_t hi, uint32_t lo, int ctid) {
#pragma unroll 2
    for (int i = ctid; i < W * 8; i += NTHREADS) {
        const int n = i % W, c = i / W;
        uint32_t h[4], l[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            split_b<BF16_LO>(lds_f32(raw + (uint32_t)(((4 * c + j) * W + n) * 4)), h[j], l[j]);
        }
        const uint32_t off = (uint32_t)(n * 128 + ((c ^ (n & 7)) << 4));
        sts_v4(hi + off, h[0], h[1], h[2], h[3]);
        sts_v4(lo + off, l[0], l[1], l[2], l[3]);
    }
}

}  // namespace sm90
