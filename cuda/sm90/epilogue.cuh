/*
The epilogue of the sm_90a GEMMs (gemm_sm90.cu, gemm_tf32x3_sm90.cu): f32 accumulator fragments of a consumer
warpgroup -> its shared staging buffer -> global memory, with the output conversions (bf16, f32, f32 accumulate,
SwiGLU). Why a header of its own: both GEMMs share it, and its staging layout, barriers and store paths are one set
of rules.

Rules:
  - Each consumer warpgroup owns a 17 KB staging buffer (64 rows of up to 256 bytes, 272-byte pitch) and a named
    barrier (id 1 + warpgroup). A pass stages at most 256 output bytes per row; wider tiles take several passes.
  - A pass: [accumulating: issue the loads of C] -> barrier (the buffer is free: every thread finished reading the
    previous pass) -> fragment writes -> barrier -> coalesced 16-byte reads of the staged rows and 16-byte global
    stores (Store::Stg), or one cp.async.bulk per row (Store::Bulk, v2; the buffer is then reused only after
    cp.async.bulk.wait_group.read, see bulk.cuh).
  - Rows >= `rows` and columns >= n_out are never stored; n_out % 8 == 0 (bf16) / % 4 == 0 (f32) keeps every
    16-byte piece wholly inside or outside.
  - Numerics: bf16 = __floats2bfloat162_rn of the f32 accumulator (once); f32 accumulate = C_old + acc (one add);
    SwiGLU = silu(g) * u in f32 (silu(x) = x / (1 + expf(-x)), as swiglu.cu), rounded once.
*/
#pragma once

#include <cuda_bf16.h>
#include <stdint.h>

#include "bulk.cuh"
#include "warpgroup.cuh"

namespace sm90 {

// Epilogue staging, per consumer warpgroup: 64 rows of 256 bytes, each followed by 16 bytes of padding. The 272-byte
// pitch = 17 chunks of 16 bytes puts rows r .. r+7 of one chunk column on 8 different bank groups: the fragment
// writes and the row reads are conflict-free.
constexpr int STAGE_PITCH = 272;
constexpr int STAGING_BYTES = 64 * STAGE_PITCH;  // 17408

enum class Epi { Bf16 = 0, F32 = 1, SwiGlu = 2 };  // = GEMM_SM90_EPI_* of gemm_sm90.cu
// How the epilogue writes C: Stg = coalesced 16-byte st.global from the staging buffer (v3, exported); Bulk = one
// cp.async.bulk shared -> global per row (v2; kept for the harness's comparison; f32 accumulate always uses Stg).
enum class Store { Stg, Bulk };

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
    // __floats2bfloat162_rn: round to nearest even, lo in the low half (the lower address).
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
}

__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }

__device__ __forceinline__ void st_shared_b32(uint32_t addr, uint32_t v) {
    asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(addr), "r"(v) : "memory");
}
__device__ __forceinline__ void st_shared_v2f32(uint32_t addr, float a, float b) {
    asm volatile("st.shared.v2.f32 [%0], {%1, %2};\n" ::"r"(addr), "f"(a), "f"(b) : "memory");
}
__device__ __forceinline__ uint4 ld_shared_v4(uint32_t addr) {
    uint4 v;
    asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "r"(addr)
                 : "memory");
    return v;
}
// Prefetches the 128-byte line holding `p` into L2 (no register result; ignored for addresses it cannot map).
__device__ __forceinline__ void prefetch_l2(const void* p) {
    asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p));
}

// The 16-byte chunk q of staged row r. A warp's fragment write covers rows r0 .. r0+7 of one or two chunk
// columns: bank group (17 r + q) mod 8 differs across the 8 rows, so 128 bytes per wavefront; a quarter-warp's
// 16-byte reads of 8 consecutive chunks of one row are conflict-free too.
__device__ __forceinline__ uint32_t staged(uint32_t buf, int r, int q) {
    return buf + (uint32_t)(r * STAGE_PITCH + q * 16);
}

// One pass of the epilogue of a consumer warpgroup through its staging buffer (rows of at most 256 bytes):
// accumulator columns ACC0 .. ACC0 + WIDTH - 1 of its 64 rows (row0 .. row0 + 63 of the problem, `rows` of them
// stored). Compile-time ACC0 and WIDTH keep every accumulator index a constant (the array stays in registers).
// Stores: Stg (and always when accumulating): 16-byte coalesced loads/stores by all 128 threads, consecutive threads
// on consecutive 16-byte pieces of a row; Bulk: one cp.async.bulk per valid row, issued by threads 0..63.
template <int BN, Epi E, int ACC0, int WIDTH, Store S>
__device__ __forceinline__ void epilogue_pass(const float (&acc)[BN / 2], uint32_t buf, int wtid, uint32_t bar_id,
                                              char* c_base, long long ldc_bytes, int row0, int rows, int col0,
                                              int n_out, bool accumulate) {
    constexpr int OUT_BYTES = E == Epi::F32 ? 4 : 2;
    constexpr int PIECE = 16 / OUT_BYTES;  // output elements per 16-byte piece
    // Output bytes per row staged by this pass, 16-byte pieces per row, pieces of the pass, per-thread iterations.
    constexpr int ROW_BYTES = E == Epi::F32 ? WIDTH * 4 : (E == Epi::Bf16 ? WIDTH * 2 : WIDTH);
    constexpr int PPR = ROW_BYTES / 16;
    constexpr int PIECES = 64 * PPR;
    constexpr int ITERS = (PIECES + 127) / 128;
    static_assert(ROW_BYTES <= 256 && ROW_BYTES % 16 == 0 && WIDTH % 8 == 0, "a pass fills rows of whole 16-byte pieces");
    static_assert(E != Epi::SwiGlu || WIDTH % 128 == 0, "SwiGLU passes hold whole 64-gate + 64-up blocks");
    const int lane = wtid & 31;
    const int r_lo = (wtid >> 5) * 16 + (lane >> 2);  // this thread's fragment rows: r_lo and r_lo + 8
    const int out_col0 = E == Epi::SwiGlu ? (col0 + ACC0) / 2 : col0 + ACC0;
    const bool acc_c = E == Epi::F32 && accumulate;
    const bool bulk = S == Store::Bulk && !acc_c;

    // Accumulating: the loads of C go out first (independent of the staging buffer); their latency overlaps the
    // barrier and the staging writes. The tile's C rows were prefetched into L2 during the mainloop.
    float4 old[ITERS];
    if (E == Epi::F32) {
#pragma unroll
        for (int it = 0; it < ITERS; ++it) {
            old[it] = make_float4(0.f, 0.f, 0.f, 0.f);
            const int i = wtid + it * 128;
            const int r = i / PPR, q = i % PPR;
            const int col = out_col0 + q * PIECE;
            if (acc_c && i < PIECES && r < rows && col < n_out) {
                old[it] = *reinterpret_cast<const float4*>(c_base + (long long)(row0 + r) * ldc_bytes +
                                                           (long long)col * OUT_BYTES);
            }
        }
    }

    // The buffer is free: every thread has finished its reads of it (and, Bulk, the copies issued from it have read
    // it).
    if (S == Store::Bulk && wtid < 64) bulk_wait_read_all();
    named_barrier_sync(bar_id, 128);
    if constexpr (E == Epi::F32) {
#pragma unroll
        for (int jj = 0; jj < WIDTH / 8; ++jj) {
            const int j = ACC0 / 8 + jj;  // 8-column group of the fragment: bytes 32 jj .. 32 jj + 31 of the row
            const int q = 2 * jj + ((lane & 3) >> 1);
            const uint32_t off = (lane & 1) * 8;
            st_shared_v2f32(staged(buf, r_lo, q) + off, acc[4 * j + 0], acc[4 * j + 1]);
            st_shared_v2f32(staged(buf, r_lo + 8, q) + off, acc[4 * j + 2], acc[4 * j + 3]);
        }
    } else if constexpr (E == Epi::Bf16) {
#pragma unroll
        for (int jj = 0; jj < WIDTH / 8; ++jj) {
            const int j = ACC0 / 8 + jj;  // bytes 16 jj .. 16 jj + 15 of the row
            const uint32_t off = (lane & 3) * 4;
            st_shared_b32(staged(buf, r_lo, jj) + off, pack_bf16x2(acc[4 * j + 0], acc[4 * j + 1]));
            st_shared_b32(staged(buf, r_lo + 8, jj) + off, pack_bf16x2(acc[4 * j + 2], acc[4 * j + 3]));
        }
    } else {
        // Each 128 accumulator columns: 64 gate then 64 up columns of the same 64 outputs; the thread holds both.
#pragma unroll
        for (int blk = 0; blk < WIDTH / 128; ++blk) {
#pragma unroll
            for (int jj = 0; jj < 8; ++jj) {
                const int jg = ACC0 / 8 + blk * 16 + jj;  // gate group
                const int ju = jg + 8;                    // up group: the same output columns
                const uint32_t off = (lane & 3) * 4;
                const int q = blk * 8 + jj;
                st_shared_b32(staged(buf, r_lo, q) + off, pack_bf16x2(silu(acc[4 * jg + 0]) * acc[4 * ju + 0],
                                                                      silu(acc[4 * jg + 1]) * acc[4 * ju + 1]));
                st_shared_b32(staged(buf, r_lo + 8, q) + off, pack_bf16x2(silu(acc[4 * jg + 2]) * acc[4 * ju + 2],
                                                                          silu(acc[4 * jg + 3]) * acc[4 * ju + 3]));
            }
        }
    }

    if (bulk) {
        // Ordinary stores feed the async proxy: fence, meet, then one bulk copy per valid row.
        fence_proxy_async_shared();
        named_barrier_sync(bar_id, 128);
        if (wtid < 64) {
            const int bytes = min(ROW_BYTES, (n_out - out_col0) * OUT_BYTES);
            if (wtid < rows && bytes > 0) {
                bulk_store(c_base + (long long)(row0 + wtid) * ldc_bytes + (long long)out_col0 * OUT_BYTES,
                           staged(buf, wtid, 0), (uint32_t)bytes);
            }
            bulk_commit();
        }
        return;
    }

    named_barrier_sync(bar_id, 128);
    // Coalesced copy out: consecutive threads take consecutive 16-byte pieces of a row.
#pragma unroll
    for (int it = 0; it < ITERS; ++it) {
        const int i = wtid + it * 128;
        const int r = i / PPR, q = i % PPR;
        const int col = out_col0 + q * PIECE;
        if (i < PIECES && r < rows && col < n_out) {
            uint4 v = ld_shared_v4(staged(buf, r, q));
            if (E == Epi::F32 && acc_c) {
                // C + A.B^T: one f32 add per element.
                v.x = __float_as_uint(old[it].x + __uint_as_float(v.x));
                v.y = __float_as_uint(old[it].y + __uint_as_float(v.y));
                v.z = __float_as_uint(old[it].z + __uint_as_float(v.z));
                v.w = __float_as_uint(old[it].w + __uint_as_float(v.w));
            }
            *reinterpret_cast<uint4*>(c_base + (long long)(row0 + r) * ldc_bytes + (long long)col * OUT_BYTES) = v;
        }
    }
}

// Accumulator columns per pass: what fills 256-byte staging rows (64 f32, 128 bf16, 256 -> 128 SwiGLU outputs).
template <Epi E>
__host__ __device__ constexpr int pass_width() {
    return E == Epi::F32 ? 64 : (E == Epi::Bf16 ? 128 : 256);
}

// The epilogue of one consumer warpgroup: the passes ACC0 = 0, PASS, 2*PASS, ... (the last one may be narrower).
template <int BN, Epi E, Store S, int ACC0 = 0>
__device__ __forceinline__ void epilogue(const float (&acc)[BN / 2], uint32_t buf, int wtid, uint32_t bar_id,
                                         char* c_base, long long ldc_bytes, int row0, int rows, int col0, int n_out,
                                         bool accumulate) {
    if constexpr (ACC0 < BN) {
        constexpr int WIDTH = BN - ACC0 < pass_width<E>() ? BN - ACC0 : pass_width<E>();
        epilogue_pass<BN, E, ACC0, WIDTH, S>(acc, buf, wtid, bar_id, c_base, ldc_bytes, row0, rows, col0, n_out,
                                             accumulate);
        epilogue<BN, E, S, ACC0 + WIDTH>(acc, buf, wtid, bar_id, c_base, ldc_bytes, row0, rows, col0, n_out,
                                         accumulate);
    }
}

// Prefetches this warpgroup's rows of the tile's C (f32, accumulating) into L2: row row0 + r, bytes
// [col0*4, col0*4 + width*4) with width = min(BN, n - col0); two threads per row, every 128 bytes plus the last byte.
template <int BN>
__device__ __forceinline__ void prefetch_c_rows(const char* c_base, long long ldc_bytes, int row0, int rows, int col0,
                                                int n, int wtid) {
    const int r = wtid >> 1;
    if (r >= rows || r >= 64) return;
    const int bytes = min(BN, n - col0) * 4;
    if (bytes <= 0) return;
    const char* p = c_base + (long long)(row0 + r) * ldc_bytes + (long long)col0 * 4;
#pragma unroll
    for (int b = 0; b < BN * 4; b += 256) {
        const int off = b + (wtid & 1) * 128;
        if (off < bytes) prefetch_l2(p + off);
    }
    if ((wtid & 1) == 0) prefetch_l2(p + bytes - 4);
}

}  // namespace sm90
