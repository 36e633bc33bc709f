/*
PTX wrappers that the sm_90a attention kernel (cuda/attention_sm90.cu) needs beyond the shared cuda/sm90/ headers
(which it includes and does not modify). Why a header of its own: these are the register-A / transposed-B wgmma
forms, the MN-major descriptor and the 3-D TMA load, each with the layout rule it relies on written next to it.

1. wgmma with A from registers and B MN-major ("RS", imm-trans-b = 1), used for O += P.V:
     wgmma.mma_async.sync.aligned.m64nNk16.f32.bf16.bf16 d, {a0..a3}, b-desc, scale-d, 1, 1, 1;
   A fragment (64 x 16, bf16, per warpgroup; warp w owns rows 16w .. 16w+15; g = lane / 4, t = lane % 4):
     a[0] = (row g,     cols 2t, 2t+1)      a[1] = (row g + 8, cols 2t, 2t+1)
     a[2] = (row g,     cols 2t+8, 2t+9)    a[3] = (row g + 8, cols 2t+8, 2t+9)        (low half = lower column)
   The f32 accumulator fragment of m64nNk16 (sm90/wgmma.cuh: element i at row 16w + g + 8*((i%4)/2), column
   8*(i/4) + 2t + (i%2)) restricted to columns 16c .. 16c+15 is, in that order, elements 8c .. 8c+7, so the A
   fragment of k-chunk c of a score tile S is { pack(S[8c], S[8c+1]), pack(S[8c+2], S[8c+3]), pack(S[8c+4], S[8c+5]),
   pack(S[8c+6], S[8c+7]) }: P never leaves the registers.
2. MN-major 128B-swizzled B operand (wgmma_desc_mn128): a V tile as TMA writes it, [keys][64 columns of hd] with
   128-byte rows and 16-byte chunk c of row r at ((c ^ (r & 7)) * 16), is the canonical MN-major SW128 layout
   ((64 elements along N contiguous, 8 K-rows of 128 B) atoms): SBO = 1024 (the next 8 keys), LBO = the byte distance
   between 64-column chunks along N (the second half tile when hd = 128; unused when N = 64), swizzle mode 1 (128B),
   base offset 0 (the tile is 1024-aligned and a k16 step advances the start by 2 atoms = 2048 bytes).
3. cp.async.bulk.tensor.3d: the packed-GQA Q box {64 columns, R heads, P positions} lands as R*P dense 128-byte rows
   (row = position * R + head), 128B-swizzled by row index like any 2-D box.
*/
#pragma once

#include <stdint.h>

#include "../sm90/tma.cuh"

namespace attn90 {

// Descriptor of an MN-major, 128B-swizzled operand at shared address `smem_addr` (1024-aligned, or aligned + a
// multiple of 1024 along K); `lbo` = bytes between 64-element chunks along N.
__device__ __forceinline__ uint64_t wgmma_desc_mn128(uint32_t smem_addr, uint32_t lbo) {
    uint64_t desc = (uint64_t)((smem_addr & 0x3FFFFu) >> 4);
    desc |= (uint64_t)((lbo & 0x3FFFFu) >> 4) << 16;  // LBO: next 64-element chunk along N
    desc |= (uint64_t)(1024u >> 4) << 32;             // SBO: next group of 8 K-rows
    desc |= (uint64_t)1 << 62;                        // 128B swizzle
    return desc;
}

// m64n64k16, A (P) from registers, B (V) MN-major in shared memory: 32 f32 accumulators per thread.
__device__ __forceinline__ void wgmma_m64n64k16_rs_tb(float (&d)[32], const uint32_t (&a)[4], uint64_t desc_b,
                                                   int scale_d) {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
        " %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
        "{%32, %33, %34, %35}, %36, p, 1, 1, 1;\n"
        "}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d));
}

// m64n128k16, A (P) from registers, B (V) MN-major in shared memory: 64 f32 accumulators per thread.
__device__ __forceinline__ void wgmma_m64n128k16_rs_tb(float (&d)[64], const uint32_t (&a)[4], uint64_t desc_b,
                                                   int scale_d) {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
        " %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
        " %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
        " %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
        "{%64, %65, %66, %67}, %68, p, 1, 1, 1;\n"
        "}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d));
}

// Keeps the compiler from moving reads/writes of these registers across an asynchronous wgmma window (the uint32
// counterpart of sm90::fence_operand, for the P fragment).
template <int R>
__device__ __forceinline__ void fence_regs(uint32_t (&r)[R]) {
#pragma unroll
    for (int i = 0; i < R; ++i) asm volatile("" : "+r"(r[i])::"memory");
}

// 2^x with the MUFU unit (ex2.approx.ftz.f32): one instruction, the same bits wherever it runs.
__device__ __forceinline__ float ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

// Arrives on named barrier `id` (counted in threads, whole warps) without waiting: the other side of a bar.sync
// with the same id and count (the pingpong turns of the consumer warpgroups; sm90/warpgroup.cuh has the sync).
__device__ __forceinline__ void named_barrier_arrive(uint32_t id, uint32_t threads) {
    asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// Nanoseconds of the global timer (the same clock on every SM; profiling builds of the harness only).
__device__ __forceinline__ unsigned long long globaltimer_ns() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(t));
    return t;
}

__device__ __forceinline__ void st_shared_v4_zero(uint32_t addr) {
    asm volatile("st.shared.v4.b32 [%0], {%1, %1, %1, %1};\n" ::"r"(addr), "r"(0) : "memory");
}

__device__ __forceinline__ void st_shared_u32(uint32_t addr, uint32_t v) {
    asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(addr), "r"(v) : "memory");
}

__device__ __forceinline__ uint4 ld_shared_v4(uint32_t addr) {
    uint4 v;
    asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "r"(addr)
                 : "memory");
    return v;
}

}  // namespace attn90
