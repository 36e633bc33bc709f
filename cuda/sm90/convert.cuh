/*
The conversions whose bits several kernels must share: the bf16 pair of the epilogues and of the split's bf16 correction
(pack_bf16x2), tf32 rounding (to_tf32), and the split of an f32 B-operand value into the tensor cores' hi and lo parts
(split_b) — made by the GEMM epilogues (the update's pre-split output), the converter warps (tf32_split.cuh) and
armt_state_split.cu, which must agree bit for bit. Plus the shared-memory f32 load they read their values with.
*/
#pragma once

#include <cuda_bf16.h>
#include <stdint.h>

namespace sm90 {

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
    // __floats2bfloat162_rn: round to nearest even, lo in the low half (the lower address).
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
}

__device__ __forceinline__ uint32_t to_tf32(float x) {
    uint32_t r;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
    return r;
}

__device__ __forceinline__ float lds_f32(uint32_t addr) {
    float v;
    asm volatile("ld.shared.f32 %0, [%1];\n" : "=f"(v) : "r"(addr) : "memory");
    return v;
}

// One value of the B operand: hi = tf32(x), and lo = tf32(x - hi) or the bf16 pair {bf16(hi), bf16(x - hi)}. Shared
// by convert_stage and armt_state_split.cu (the read's pre-split state), which must agree bit for bit.
template <bool BF16_LO>
__device__ __forceinline__ void split_b(float x, uint32_t& hi, uint32_t& lo) {
    hi = to_tf32(x);
    const float xl = x - __uint_as_float(hi);
    if constexpr (BF16_LO) {
        lo = pack_bf16x2(__uint_as_float(hi), xl);
    } else {
        lo = to_tf32(xl);
    }
}

}  // namespace sm90
