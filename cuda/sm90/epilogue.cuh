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
#include "convert.cuh"
#include "warpgroup.cuh"

namespace sm90 {

// Epilogue staging, per consumer warpgroup: 64 rows of 256 bytes, each followed by 16 bytes of padding. The 272-byte
// pitch = 17 chunks of 16 bytes puts rows r .. r+7 of one chunk column on 8 different bank groups: the fragment
// writes and the row reads are conflict-free.
constexpr int STAGE_PITCH = 272;
constexpr int STAGING_BYTES = 64 * STAGE_PITCH;  // 17408

enum class Epi { Bf16 = 0, F32 = 1, SwiGlu = 2 };  // = GEMM_SM90_EPI_* of gemm_sm90.cu
// How the epilogue writes C:
//   Stg  (v3) = the consumer warpgroups stage their accumulators pass by pass and store them with coalesced 16-byte
//          st.global; when accumulating they also load C (prefetched into L2 during the mainloop) themselves.
//   Bulk (v2) = as Stg, but one cp.async.bulk shared -> global per row (harness only; f32 accumulate uses Stg).
//   Off  (v4) = "offloaded": the consumers write the finished tile (f32: acc, or C + acc in place; bf16; SwiGLU)
//          into a whole-tile output buffer in shared memory and go straight on to the next tile's MMAs; the three
//          idle warps of the producer warpgroup (the "storer", warps 9-11) copy the buffer to global memory during
//          that next mainloop and, when accumulating, first load the tile's C into the buffer with cp.async while
//          the tile's own mainloop runs. See "The offloaded epilogue" below.
enum class Store { Stg, Bulk, Off };
// silu in the SwiGLU epilogue: Exact = x / (1 + expf(-x)) with IEEE division (swiglu.cu's formula, v2/v3);
// Fast = x * rcp.approx(1 + ex2.approx(-x * log2(e))) (two MUFU operations; relative error ~1e-6, far below the
// bf16 rounding of the output; v4's exported SwiGLU).
enum class Silu { Exact, Fast };

__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }

// silu(x) from two MUFU operations. ex2.approx.ftz of -x*log2(e): +inf for x < -88.7 (rcp then gives 0: the
// limit), 0 for large x (flushed denormals: 1 + 0). |relative error| ~1e-6.
__device__ __forceinline__ float silu_fast(float x) {
    float e, r;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(e) : "f"(x * -1.4426950408889634f));
    asm("rcp.approx.ftz.f32 %0, %1;\n" : "=f"(r) : "f"(1.0f + e));
    return x * r;
}

template <Silu SL>
__device__ __forceinline__ float silu_of(float x) {
    if constexpr (SL == Silu::Fast) return silu_fast(x);
    else return silu(x);
}

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
// The bf16 mirror of f32 output (v7): an f32 element at byte address a also goes, rounded to bf16 (RNE, as to_bf16.cu),
// to a/2 + mirror_k (mirror_k = mirror base − C base / 2, mod 2^64: the mirror has C's layout at 2 bytes an element);
// mirror_k = 0: none. Four f32 of a 16-byte piece → 8 bytes.
__device__ __forceinline__ void store_mirror(const void* c_piece, unsigned long long mirror_k, uint4 v) {
    const unsigned long long m = (reinterpret_cast<unsigned long long>(c_piece) >> 1) + mirror_k;
    const uint32_t lo = pack_bf16x2(__uint_as_float(v.x), __uint_as_float(v.y));
    const uint32_t hi = pack_bf16x2(__uint_as_float(v.z), __uint_as_float(v.w));
    asm volatile("st.global.v2.b32 [%0], {%1, %2};\n" ::"l"(m), "r"(lo), "r"(hi) : "memory");
}

__device__ __forceinline__ void st_shared_v4(uint32_t addr, uint4 v) {
    asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w)
                 : "memory");
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
// SL: SwiGLU's silu (v6: the narrow SwiGLU entry uses the exported SwiGLU entries' fast one; default the exact one).
// SPLIT (f32 accumulate only; the memory update's epilogue): the new values C + product, after they are stored, also
// go out in the read's pre-split form (armt_state_split.cu's layout and sm90::split_b<true>'s bits): element (row r,
// column n) of C as tf32 hi at base[n·ld2 + 64·(r / 32) + r % 32] and its bf16 pair 32 entries on. `base` is the
// state's first split row, r counts from the state's row 0 (row0 below is the warpgroup's first), and every row
// count is a multiple of 32 (the launcher checks), so a thread's four rows are stored as one 16-byte vector.
struct SplitOut {
    uint32_t* base;
    int ld2;
};
// PREP (f32, not accumulating; the memory write's kφ·A): the values stored are not the products ka but the write's
// rows u = β·(V − ka/δ) (armt_write_prep_f32's arithmetic), with the row's δ and β at stats[2g], stats[2g + 1] and V
// at kvb[g·kvb_ld + v_col + column], g = row + the warpgroup's row (the kφ row of the product's A operand).
struct PrepIn {
    const float* kvb;
    const float* stats;
    int kvb_ld;
    int v_col;
    int row;
};

template <int BN, Epi E, int ACC0, int WIDTH, Store S, Silu SL = Silu::Exact, bool SPLIT = false, bool PREP = false>
__device__ __forceinline__ void epilogue_pass(const float (&acc)[BN / 2], uint32_t buf, int wtid, uint32_t bar_id,
                                              char* c_base, long long ldc_bytes, int row0, int rows, int col0,
                                              int n_out, bool accumulate, unsigned long long mirror_k = 0,
                                              SplitOut so = {}, PrepIn pin = {}) {
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
    float2 db[PREP ? ITERS : 1];  // PREP: the row's δ and β
    if (E == Epi::F32) {
#pragma unroll
        for (int it = 0; it < ITERS; ++it) {
            old[it] = make_float4(0.f, 0.f, 0.f, 0.f);
            const int i = wtid + it * 128;
            const int r = i / PPR, q = i % PPR;
            const int col = out_col0 + q * PIECE;
            if constexpr (PREP) {
                // V and the row's δ, β go out first, as C's loads do when accumulating
                db[it] = make_float2(1.f, 0.f);
                if (i < PIECES && r < rows && col < n_out) {
                    const long long g = pin.row + r;
                    old[it] = *reinterpret_cast<const float4*>(pin.kvb + g * pin.kvb_ld + pin.v_col + col);
                    db[it] = *reinterpret_cast<const float2*>(pin.stats + 2 * g);
                }
            } else if (acc_c && i < PIECES && r < rows && col < n_out) {
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
                st_shared_b32(staged(buf, r_lo, q) + off,
                              pack_bf16x2(silu_of<SL>(acc[4 * jg + 0]) * acc[4 * ju + 0],
                                          silu_of<SL>(acc[4 * jg + 1]) * acc[4 * ju + 1]));
                st_shared_b32(staged(buf, r_lo + 8, q) + off,
                              pack_bf16x2(silu_of<SL>(acc[4 * jg + 2]) * acc[4 * ju + 2],
                                          silu_of<SL>(acc[4 * jg + 3]) * acc[4 * ju + 3]));
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
            if constexpr (PREP && E == Epi::F32) {
                // u = β·(V − ka/δ), as armt_write_prep_f32 computes it
                const float delta = db[it].x, beta = db[it].y;
                v.x = __float_as_uint(__fmul_rn(beta, __fsub_rn(old[it].x, __fdiv_rn(__uint_as_float(v.x), delta))));
                v.y = __float_as_uint(__fmul_rn(beta, __fsub_rn(old[it].y, __fdiv_rn(__uint_as_float(v.y), delta))));
                v.z = __float_as_uint(__fmul_rn(beta, __fsub_rn(old[it].z, __fdiv_rn(__uint_as_float(v.z), delta))));
                v.w = __float_as_uint(__fmul_rn(beta, __fsub_rn(old[it].w, __fdiv_rn(__uint_as_float(v.w), delta))));
            }
            if (E == Epi::F32 && acc_c) {
                // C + A.B^T: one f32 add per element.
                v.x = __float_as_uint(old[it].x + __uint_as_float(v.x));
                v.y = __float_as_uint(old[it].y + __uint_as_float(v.y));
                v.z = __float_as_uint(old[it].z + __uint_as_float(v.z));
                v.w = __float_as_uint(old[it].w + __uint_as_float(v.w));
            }
            if (E == Epi::F32 && acc_c && (mirror_k != 0 || SPLIT)) {
                // the sum goes back to the staging buffer for the mirror's or the split's pass below
                st_shared_v4(staged(buf, r, q), v);
            }
            *reinterpret_cast<uint4*>(c_base + (long long)(row0 + r) * ldc_bytes + (long long)col * OUT_BYTES) = v;
        }
    }
    if constexpr (SPLIT && E == Epi::F32) {
        // The split pass: (column, 32 rows) pairs, 16 threads each — threads 0..7 the hi values of rows 4j .. 4j + 3,
        // 8..15 their bf16 pairs — so a half-warp writes one 256-byte run of the column's split row. The staged values
        // come from every thread's write-back above: meet first.
        named_barrier_sync(bar_id, 128);
        constexpr int PAIRS = WIDTH * 2;  // the warpgroup's 64 rows are two blocks of 32
#pragma unroll 4
        for (int it = 0; it < PAIRS / 8; ++it) {
            const int pair = it * 8 + (wtid >> 4), j = wtid & 15;
            const int c = pair % WIDTH, blk = pair / WIDTH;
            const int r = blk * 32 + 4 * (j & 7);  // of the warpgroup's rows
            const int n = out_col0 + c;
            if (r < rows && n < n_out) {
                uint32_t h[4], l[4];
#pragma unroll
                for (int i = 0; i < 4; ++i) split_b<true>(lds_f32(buf + (uint32_t)((r + i) * STAGE_PITCH + c * 4)), h[i], l[i]);
                const int p = row0 + r;  // C's row (a multiple of 4)
                uint32_t* dst = so.base + (size_t)n * so.ld2 + 64 * (p / 32) + (p % 32) + (j >= 8 ? 32 : 0);
                *reinterpret_cast<uint4*>(dst) = j >= 8 ? make_uint4(l[0], l[1], l[2], l[3]) : make_uint4(h[0], h[1], h[2], h[3]);
            }
        }
    }
    if (E == Epi::F32 && mirror_k != 0) {
        // The bf16 mirror in a pass of its own, so the copy above keeps its registers (`old` is dead here): the same
        // pieces, each thread reading back only its own (no barrier needed), which hold the stored values.
#pragma unroll
        for (int it = 0; it < ITERS; ++it) {
            const int i = wtid + it * 128;
            const int r = i / PPR, q = i % PPR;
            const int col = out_col0 + q * PIECE;
            if (i < PIECES && r < rows && col < n_out) {
                store_mirror(c_base + (long long)(row0 + r) * ldc_bytes + (long long)col * OUT_BYTES, mirror_k,
                             ld_shared_v4(staged(buf, r, q)));
            }
        }
    }
}

// Accumulator columns per pass: what fills 256-byte staging rows (64 f32, 128 bf16, 256 -> 128 SwiGLU outputs).
template <Epi E>
__host__ __device__ constexpr int pass_width() {
    return E == Epi::F32 ? 64 : (E == Epi::Bf16 ? 128 : 256);
}

// The epilogue of one consumer warpgroup: the passes ACC0 = 0, PASS, 2*PASS, ... (the last one may be narrower).
template <int BN, Epi E, Store S, int ACC0 = 0, Silu SL = Silu::Exact, bool SPLIT = false, bool PREP = false>
__device__ __forceinline__ void epilogue(const float (&acc)[BN / 2], uint32_t buf, int wtid, uint32_t bar_id,
                                         char* c_base, long long ldc_bytes, int row0, int rows, int col0, int n_out,
                                         bool accumulate, unsigned long long mirror_k = 0, SplitOut so = {},
                                         PrepIn pin = {}) {
    if constexpr (ACC0 < BN) {
        constexpr int WIDTH = BN - ACC0 < pass_width<E>() ? BN - ACC0 : pass_width<E>();
        epilogue_pass<BN, E, ACC0, WIDTH, S, SL, SPLIT, PREP>(acc, buf, wtid, bar_id, c_base, ldc_bytes, row0, rows,
                                                              col0, n_out, accumulate, mirror_k, so, pin);
        epilogue<BN, E, S, ACC0 + WIDTH, SL, SPLIT, PREP>(acc, buf, wtid, bar_id, c_base, ldc_bytes, row0, rows, col0,
                                                          n_out, accumulate, mirror_k, so, pin);
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

// ------------------------------------------------------------------------------------------------------------
// The offloaded epilogue (Store::Off, v4)
//
// Why: in v3 the two consumer warpgroups run the whole epilogue themselves while the tensor cores idle: staging,
// barriers, coalesced stores, and for f32 accumulate the loads of C, whose L2/HBM latency (and, when every CTA
// reaches its epilogue at once, the L2 bandwidth of 132 SMs reading and writing 78 KB each) was exposed once per
// tile. Off moves all global-memory traffic of the epilogue off the consumers' path:
//   - OUT: one shared buffer holding the whole 128-row output tile (layout below).
//   - storer (warps 9-11 of the producer warpgroup, 96 threads, 40 registers): walks the same tile list; per tile:
//       [accumulating: cp.async (16 B, .cg) of the tile's C rows into OUT; cp.async.wait_all; storer barrier]
//       arrive out_free  ->  wait out_full  ->  coalesced 16-byte ld.shared + st.global of the valid rows/columns
//       ->  storer barrier (every read of OUT done before the next tile's cp.async or out_free).
//     So C streams in while the tile's own mainloop runs, and the stores drain during the next tile's mainloop.
//   - consumers, per tile after the mainloop: wait out_free (OUT is theirs; with accumulate C has landed) ->
//     write the finished values in the accumulator fragment layout (f32: acc, or C + acc read-modify-write in
//     place; bf16: RNE pack; SwiGLU: silu(g) * u, packed) -> warpgroup barrier -> one thread per warpgroup arrives
//     on out_full. A warpgroup with no rows in the tile writes nothing but still waits and arrives.
//   Barriers: out_free (count 1: storer thread 0 after a storer barrier), out_full (count 2: one per consumer
//   warpgroup after its named barrier). Both complete once per tile; parity = tile ordinal & 1 on both sides.
//   No phase can be confused with one two tiles away: the storer's arrival for tile j+1 needs out_full of tile j,
//   which needs both warpgroups' arrivals for tile j, each made after waiting out_free of tile j; symmetrically for
//   out_full. The waits of an empty warpgroup keep this true even when k_blocks <= STAGES (it could otherwise run
//   through a whole tile ahead of its partner).
//   Memory ordering: generic proxy only (st.shared/ld.shared/cp.async); each handover is writes -> bar.sync (the
//   writers and the arriving thread) -> mbarrier.arrive (release) -> mbarrier.try_wait (acquire) -> reads. cp.async
//   writes are complete for the issuing thread after cp.async.wait_all, before the storer barrier.
//   Numerics: identical to Stg for bf16 and f32 (C + acc is the same single f32 add); SwiGLU per `Silu`.
//
// OUT layout: 128 rows of pitch P = 128 * ceil(row bytes / 128) (row bytes = BN*4 f32, BN*2 bf16, BN SwiGLU),
// 16-byte chunk q of row r at r*P + ((q ^ swz(r)) * 16), swz(r) = 2*(r % 4) + (r / 4) % 2 (a permutation of
// 0..7; P/16 is a multiple of 8, so a swizzled chunk stays in its row). Bank groups (16 B) = (q ^ swz(r)) % 8:
//   - f32 fragment (v2 accesses): a half-warp covers rows r0..r0+3 (r0 % 4 == 0), chunks {2a, 2a+1} each:
//     swz/2 = r % 4 differs, so the 4 chunk pairs land on 4 different bank-group pairs: conflict-free;
//   - bf16/SwiGLU fragment (b32 accesses): a warp covers rows r0..r0+7, one chunk each: swz(r) differs for all 8;
//   - storer and cp.async (16 B by consecutive threads along a row): 8 consecutive chunks of an aligned group stay
//     a permutation of that group (at widths whose row is not a multiple of 128 bytes, 144 and 152, a quarter-warp
//     can straddle two rows: at most 2-way, on the storer's side only).
// Sizes: f32 BN 128: 64 KB, 144/152/160: 80 KB; bf16 128: 32 KB, 144/152/160/192: 48 KB; SwiGLU 128: 16 KB,
// 256: 32 KB.

template <int BN, Epi E>
__host__ __device__ constexpr int out_row_bytes() {
    return E == Epi::F32 ? BN * 4 : (E == Epi::Bf16 ? BN * 2 : BN);
}
__host__ __device__ constexpr int out_pitch_for(int row_bytes) { return 128 * ((row_bytes + 127) / 128); }
__host__ __device__ constexpr int out_bytes_for(int bn, Epi e) {
    return 128 * out_pitch_for(e == Epi::F32 ? bn * 4 : (e == Epi::Bf16 ? bn * 2 : bn));
}

__device__ __forceinline__ uint32_t out_swz(int r) { return (uint32_t)(((r & 3) << 1) | ((r >> 2) & 1)); }
// Shared address of 16-byte chunk q of tile row r in OUT (pitch P).
template <int P>
__device__ __forceinline__ uint32_t out_chunk(uint32_t out, int r, int q) {
    static_assert(P % 128 == 0, "whole groups of 8 chunks per row");
    return out + (uint32_t)(r * P) + (((uint32_t)q ^ out_swz(r)) << 4);
}

__device__ __forceinline__ float2 ld_shared_v2f32(uint32_t addr) {
    float2 v;
    asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];\n" : "=f"(v.x), "=f"(v.y) : "r"(addr) : "memory");
    return v;
}
__device__ __forceinline__ void cp_async_16(uint32_t smem, const void* gmem) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }
__device__ __forceinline__ void st_global_v4(void* p, uint4 v) {
    asm volatile("st.global.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"l"(p), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w)
                 : "memory");
}

// Consumer side: the finished values of this warpgroup's 64 rows (tile rows 64*wg ..) into OUT, in the
// accumulator fragment layout (sm90/wgmma.cuh). accumulate (f32 only): OUT holds C (loaded by the storer); each
// element becomes C + acc.
template <int BN, Epi E, Silu SL>
__device__ __forceinline__ void epilogue_to_out(const float (&acc)[BN / 2], uint32_t out, int wg, int wtid,
                                                bool accumulate) {
    constexpr int P = out_pitch_for(out_row_bytes<BN, E>());
    const int lane = wtid & 31;
    const int r_lo = wg * 64 + (wtid >> 5) * 16 + (lane >> 2);  // this thread's tile rows: r_lo and r_lo + 8
    if constexpr (E == Epi::F32) {
        const uint32_t off = (lane & 1) * 8;
        if (accumulate) {
#pragma unroll
            for (int j = 0; j < BN / 8; ++j) {
                const int q = 2 * j + ((lane & 3) >> 1);  // 8-column group j: bytes 32 j .. 32 j + 31 of the row
                const uint32_t a0 = out_chunk<P>(out, r_lo, q) + off, a1 = out_chunk<P>(out, r_lo + 8, q) + off;
                const float2 c0 = ld_shared_v2f32(a0), c1 = ld_shared_v2f32(a1);
                st_shared_v2f32(a0, c0.x + acc[4 * j + 0], c0.y + acc[4 * j + 1]);
                st_shared_v2f32(a1, c1.x + acc[4 * j + 2], c1.y + acc[4 * j + 3]);
            }
        } else {
#pragma unroll
            for (int j = 0; j < BN / 8; ++j) {
                const int q = 2 * j + ((lane & 3) >> 1);
                st_shared_v2f32(out_chunk<P>(out, r_lo, q) + off, acc[4 * j + 0], acc[4 * j + 1]);
                st_shared_v2f32(out_chunk<P>(out, r_lo + 8, q) + off, acc[4 * j + 2], acc[4 * j + 3]);
            }
        }
    } else if constexpr (E == Epi::Bf16) {
        const uint32_t off = (lane & 3) * 4;
#pragma unroll
        for (int j = 0; j < BN / 8; ++j) {  // chunk j = output columns 8 j .. 8 j + 7
            st_shared_b32(out_chunk<P>(out, r_lo, j) + off, pack_bf16x2(acc[4 * j + 0], acc[4 * j + 1]));
            st_shared_b32(out_chunk<P>(out, r_lo + 8, j) + off, pack_bf16x2(acc[4 * j + 2], acc[4 * j + 3]));
        }
    } else {
        const uint32_t off = (lane & 3) * 4;
#pragma unroll
        for (int blk = 0; blk < BN / 128; ++blk) {
#pragma unroll
            for (int jj = 0; jj < 8; ++jj) {
                const int jg = blk * 16 + jj;  // gate group (64 gate columns, then 64 up columns, per 128)
                const int ju = jg + 8;         // up group: the same output columns
                const int q = blk * 8 + jj;    // output columns 64 blk + 8 jj ..
                st_shared_b32(out_chunk<P>(out, r_lo, q) + off,
                              pack_bf16x2(silu_of<SL>(acc[4 * jg + 0]) * acc[4 * ju + 0],
                                          silu_of<SL>(acc[4 * jg + 1]) * acc[4 * ju + 1]));
                st_shared_b32(out_chunk<P>(out, r_lo + 8, q) + off,
                              pack_bf16x2(silu_of<SL>(acc[4 * jg + 2]) * acc[4 * ju + 2],
                                          silu_of<SL>(acc[4 * jg + 3]) * acc[4 * ju + 3]));
            }
        }
    }
}

// Storer side, one tile: the valid part of OUT (rows < rows, output columns < cols) to global memory, or (load)
// C's valid part from global memory into OUT with cp.async. stid = 0 .. NTHREADS-1 walks the 16-byte pieces
// stid, stid + NTHREADS, ... of the tile in row-major order (consecutive threads: consecutive pieces of a row).
// c_tile = address of the tile's element (0, 0) in C; ldc_bytes its row stride. Unsigned arithmetic and an
// incremental (row, piece) walk keep it within the storer's 40 registers.
template <int BN, Epi E, int NTHREADS>
__device__ __forceinline__ void storer_copy(uint32_t out, int stid, char* c_tile, long long ldc_bytes, int rows,
                                            int cols, bool load, unsigned long long mirror_k = 0) {
    constexpr int OUT_BYTES = E == Epi::F32 ? 4 : 2;
    constexpr int PIECE = 16 / OUT_BYTES;  // output elements per 16-byte piece
    constexpr uint32_t PPR = out_row_bytes<BN, E>() / 16;
    constexpr int P = out_pitch_for(out_row_bytes<BN, E>());
    constexpr uint32_t DR = NTHREADS / PPR, DQ = NTHREADS % PPR;  // the walk's step in (row, piece)
    const uint32_t valid = (uint32_t)(cols + PIECE - 1) / PIECE;  // cols % PIECE == 0 by the contract
    const uint64_t ldcb = (uint64_t)ldc_bytes;
    uint32_t r = (uint32_t)stid / PPR, q = (uint32_t)stid % PPR;
    if (load) {
#pragma unroll 1
        for (; r < (uint32_t)rows; r += DR) {
            if (q < valid) cp_async_16(out_chunk<P>(out, (int)r, (int)q), c_tile + r * ldcb + q * 16u);
            q += DQ;
            if (q >= PPR) {
                q -= PPR;
                ++r;
            }
        }
    } else {
        // Two pieces per iteration: both shared loads are in flight before the first global store.
#pragma unroll 1
        for (; r < (uint32_t)rows; r += DR) {
            uint32_t r1 = r + DR, q1 = q + DQ;
            if (q1 >= PPR) {
                q1 -= PPR;
                ++r1;
            }
            const bool ok0 = q < valid, ok1 = r1 < (uint32_t)rows && q1 < valid;
            uint4 v0 = make_uint4(0, 0, 0, 0), v1 = make_uint4(0, 0, 0, 0);
            if (ok0) v0 = ld_shared_v4(out_chunk<P>(out, (int)r, (int)q));
            if (ok1) v1 = ld_shared_v4(out_chunk<P>(out, (int)r1, (int)q1));
            if (ok0) st_global_v4(c_tile + r * ldcb + q * 16u, v0);
            if (ok1) st_global_v4(c_tile + r1 * ldcb + q1 * 16u, v1);
            r = r1;
            q = q1 + DQ;
            if (q >= PPR) {
                q -= PPR;
                ++r;
            }
        }
        if (E == Epi::F32 && mirror_k != 0) {
            // The bf16 mirror in a walk of its own (the copy above keeps its registers; OUT is still the tile's).
            r = (uint32_t)stid / PPR;
            q = (uint32_t)stid % PPR;
#pragma unroll 1
            for (; r < (uint32_t)rows; r += DR) {
                if (q < valid) store_mirror(c_tile + r * ldcb + q * 16u, mirror_k, ld_shared_v4(out_chunk<P>(out, (int)r, (int)q)));
                q += DQ;
                if (q >= PPR) {
                    q -= PPR;
                    ++r;
                }
            }
        }
    }
}

}  // namespace sm90
