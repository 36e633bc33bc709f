/*
Grouped bf16 GEMM, version 2, for sm_90a (H100/H200): TMA loads, wgmma, warp specialisation, persistent tiles.
For every problem p of a launch: C_p[m_p, n] (+)= A_p[m_p, k] . B_p[n, k]^T ("NT": A row-major, B an nn.Linear
weight [out, in]), bf16 inputs, f32 accumulation. These are the QKV / O / gate-up / down projections of the cells
of one diagonal step (one problem per cell).

Operands (see sm90/tma.cuh for the tensor maps the host builds):
  A: ONE tensor map over the activation scratch buffer [rows_total, k] (row stride lda); problem p's rows are the
     contiguous rows a_row_p .. a_row_p + m_p - 1.
  B: ONE tensor map over the stacked weights [L*n, k]; problem p uses rows b_row_p .. b_row_p + n - 1
     (b_row_p = layer_p * n).
  C: per problem, a device address of its element (0, 0) and a row stride ldc (elements); row-major.
  n and k are the same for every problem of a launch. Requirements (the launcher routes anything else to the v1
  kernel, gemm_bf16.cu): k % 8 == 0 and lda % 8 == 0 (16-byte TMA strides; the k edge is zero-filled by TMA, so k
  need not be a multiple of 64), n % 8 == 0, every C address 16-byte aligned and ldc a multiple of 8 (bf16 out) or
  4 (f32 out), 1 <= count <= 64, m_p >= 0, tensor-map row indices < 2^31. SwiGLU: n % 128 == 0 and BN in {128, 256}.

Entry points (extern "C", one per epilogue and tile width BN; name = gemm_<arch>_<layout>_<A>_<B>_<C>_bn<BN>):
  gemm_sm90_nt_bf16_bf16_bf16_bn{128,192,256}   C bf16, rounded to nearest even once from the f32 accumulator.
  gemm_sm90_nt_bf16_bf16_f32_bn{128,192,256}    C f32; params.accumulate != 0: C = C + A.B^T (one f32 add, read
                                                once, written once: the fused residual add into the f32 hidden rows).
  gemm_sm90_nt_bf16_bf16_swiglu_bn{128,256}     fused SwiGLU, output bf16 [m, n/2] (n = 2*I, B rows). B is the
        gate/up weight interleaved in blocks of 64 rows: for output columns j0 .. j0+63 (j0 = 64*b), B rows
        128*b .. 128*b+63 are gate rows j0 .. j0+63 and B rows 128*b+64 .. 128*b+127 are up rows j0 .. j0+63, i.e.
            B_interleaved[128*b + r]      = W_gate[64*b + r]   (r in 0..63)
            B_interleaved[128*b + 64 + r] = W_up  [64*b + r]
        for b in 0 .. I/64 - 1 (per layer; layers stacked as usual, b_row = layer * 2I). Output column
        j = 64*b + r is silu(g) * u with g, u the f32 accumulators of B rows 128b + r and 128b + 64 + r,
        silu(x) = x / (1 + expf(-x)) in f32 (as swiglu.cu), rounded to bf16 once. ldc is in output elements.
All take (const __grid_constant__ TmaMap a_map, const __grid_constant__ TmaMap b_map,
          const __grid_constant__ GemmSm90Params params).
Launch: grid = number of SMs (any grid >= 1 is correct), block 384, dynamic shared memory sm90::smem_bytes(BN)
(set cudaFuncAttributeMaxDynamicSharedMemorySize to it), no cluster. Tile width, chosen by the host from (n, k)
only: SwiGLU BN = 256 if n >= 1024 else 128; otherwise BN = 256 if n >= 2560 else 192 (provisional, to be refitted
on measurements; docs/log/gemm_sm90.md). The B map's box is {64, BN}.
Not exported: gemm_sm90<BN, E, true, 2>, a 2-CTA cluster variant (__cluster_dims__(2, 1, 1), B box {64, BN/2},
even grid) that multicasts the shared B tile; the development harness instantiates, checks and times it.

Structure (per CTA; 384 threads = 3 warpgroups; persistent: grid = number of SMs, see sm90/scheduler.cuh):
  warpgroup 2, producer (setmaxnreg.dec 40): one thread walks the tile list and, per k-block of 64, waits for an
    empty stage and issues two TMA copies (A 128x64, B BNx64, both 128B-swizzled) completing on the stage's full
    barrier (sm90/mbarrier.cuh). It runs up to STAGES k-blocks ahead, across tile boundaries, so the next tile's
    operands stream in while the consumers run the epilogue.
  warpgroups 0 and 1, consumers (setmaxnreg.inc 232): warpgroup w owns rows 64w .. 64w+63 of the 128-row tile and
    all BN columns: per k-block, 4 x wgmma m64nBNk16 (descriptors into the stage), commit, wait until at most the
    newest batch is in flight, then release the previous stage. Epilogue, in passes of 256 output bytes per row:
    accumulators -> this warpgroup's 17 KB shared staging buffer (64 rows, 272-byte pitch: conflict-free) ->
    one asynchronous bulk copy per valid row (cp.async.bulk shared -> global, sm90/bulk.cuh), so the warpgroup
    goes on to the next tile's MMAs while the rows drain; when accumulating (f32 C is read) the pass instead does
    coalesced 16-byte loads of C, the add, and 16-byte stores. Rows >= m_p and columns >= n (n/2 for SwiGLU) are
    never stored. A warpgroup whose 64 rows all lie past m_p skips its MMAs (it still waits and releases every
    stage).
Determinism: no split-K, no atomics; each output element is the sum over k-blocks 0, 1, ... in order, each k-block
4 chained wgmma in order; a tile's bits depend only on its A rows, B rows and k. So a problem gives the same bytes
alone or inside any grouped launch, with any grid size.
Work: 2 * sum(m_p) * n * k FLOP; bytes at least 2*sum(m_p)*k + 2*n*k*(distinct layers) + out*sum(m_p)*n_out
(x2 when accumulating). Tile choice (BN by (n, k) only) and measured speed: docs/log/gemm_sm90.md.
*/
#include <cuda_bf16.h>
#include <stdint.h>

#include "sm90/bulk.cuh"
#include "sm90/cluster.cuh"
#include "sm90/mbarrier.cuh"
#include "sm90/scheduler.cuh"
#include "sm90/tma.cuh"
#include "sm90/warpgroup.cuh"
#include "sm90/wgmma.cuh"

#define GEMM_SM90_MAX_PROBLEMS 64

// One problem of a v2 grouped GEMM launch (24 bytes, 8-byte aligned).
typedef struct {
    unsigned long long c;  // device address of C_p[0][0] (16-byte aligned)
    int a_row;             // row of the A tensor map holding A_p[0]
    int b_row;             // row of the B tensor map holding B_p[0] (layer_p * n)
    int m;                 // rows of the problem, >= 0 (0: no work)
    int ldc;               // row stride of C_p in elements of the output type
} GemmSm90Problem;

// The launch (1552 bytes; with the two tensor maps the parameters are 1808 bytes, under the 4 KB limit).
typedef struct {
    GemmSm90Problem problems[GEMM_SM90_MAX_PROBLEMS];
    int count;       // problems used, 1 .. 64
    int n;           // columns of every product (B rows per problem; for SwiGLU 2*I, the output has n/2)
    int k;           // the summed dimension (k % 8 == 0)
    int accumulate;  // f32 output only: nonzero -> C += A.B^T
} GemmSm90Params;

static_assert(sizeof(GemmSm90Problem) == 24, "GemmSm90Problem layout is mirrored by the Rust launcher");
static_assert(sizeof(GemmSm90Params) == 24 * GEMM_SM90_MAX_PROBLEMS + 16, "GemmSm90Params layout is mirrored");

namespace sm90 {

constexpr int BM = 128;      // rows per tile: two consumer warpgroups of 64
constexpr int BK = 64;       // k per stage: 128 bytes of bf16, one 128B swizzle row
constexpr int THREADS = 384; // 2 consumer warpgroups + 1 producer warpgroup
constexpr int PRODUCER_REGS = 40;
constexpr int CONSUMER_REGS = 232;
// Epilogue staging, per consumer warpgroup: 64 rows of 256 bytes, each followed by 16 bytes of padding. Rows stay
// contiguous (one bulk copy per row) and the 272-byte pitch = 17 chunks of 16 bytes puts rows r .. r+7 of one chunk
// column on 8 different bank groups: the fragment writes and the row reads are conflict-free.
constexpr int STAGE_PITCH = 272;
constexpr int STAGING_BYTES = 64 * STAGE_PITCH;  // 17408

enum class Epi { Bf16, F32, SwiGlu };

// Shared memory plan for tile width BN (host and device): stages of A (16 KB) and B (BN x 128 B) tiles, the two
// staging buffers and the 2*STAGES mbarriers. The dynamic shared memory base is 1024-byte aligned (it is the start
// of the block's window; the kernel traps if not), which the 128B swizzle needs.
__host__ __device__ constexpr int stages_for(int bn) { return bn <= 128 ? 6 : 4; }
__host__ __device__ constexpr int a_tile_bytes() { return BM * BK * 2; }
__host__ __device__ constexpr int b_tile_bytes(int bn) { return bn * BK * 2; }
__host__ __device__ constexpr int smem_bytes(int bn) {
    return stages_for(bn) * (a_tile_bytes() + b_tile_bytes(bn)) + 2 * STAGING_BYTES + 2 * stages_for(bn) * 8;
}
static_assert(smem_bytes(128) <= 232448 && smem_bytes(192) <= 232448 && smem_bytes(256) <= 232448,
              "fits the 227 KB of dynamic shared memory per block");
static_assert(PRODUCER_REGS * 128 + CONSUMER_REGS * 256 <= 65536, "register file");

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

// The 16-byte chunk q of staged row r. A warp's fragment write covers rows r0 .. r0+7 of one or two chunk
// columns: bank group (17 r + q) mod 8 differs across the 8 rows, so 128 bytes per wavefront; a quarter-warp's
// 16-byte reads of 8 consecutive chunks of one row are conflict-free too.
__device__ __forceinline__ uint32_t staged(uint32_t buf, int r, int q) {
    return buf + (uint32_t)(r * STAGE_PITCH + q * 16);
}

// One pass of the epilogue of a consumer warpgroup through its staging buffer (256-byte rows): accumulator
// columns ACC0 .. ACC0 + WIDTH - 1 of its 64 rows (row0 .. row0 + 63 of the problem, `rows` of them stored).
// Compile-time ACC0 and WIDTH keep every accumulator index a constant (the array stays in registers).
// Stores: asynchronous bulk copies, one per valid row, issued by threads 0..63 of the warpgroup (ASYNC and not
// accumulating); or, when accumulating (C is read) or !ASYNC, 16-byte coalesced loads/stores by all 128 threads.
template <int BN, Epi E, int ACC0, int WIDTH, bool ASYNC>
__device__ __forceinline__ void epilogue_pass(const float (&acc)[BN / 2], uint32_t buf, int wtid, uint32_t bar_id,
                                              char* c_base, long long ldc_bytes, int row0, int rows, int col0,
                                              int n_out, bool accumulate) {
    constexpr int OUT_BYTES = E == Epi::F32 ? 4 : 2;
    constexpr int PIECE = 16 / OUT_BYTES;  // output elements per 16-byte piece
    // Output bytes per row staged by this pass, and 16-byte pieces per row (8 or 16).
    constexpr int ROW_BYTES = E == Epi::F32 ? WIDTH * 4 : (E == Epi::Bf16 ? WIDTH * 2 : WIDTH);
    constexpr int PPR = ROW_BYTES / 16;
    constexpr int ITERS = 64 * PPR / 128;
    static_assert(ROW_BYTES <= 256 && (PPR == 8 || PPR == 16), "a pass fills whole 128- or 256-byte rows");
    const int lane = wtid & 31;
    const int r_lo = (wtid >> 5) * 16 + (lane >> 2);  // this thread's fragment rows: r_lo and r_lo + 8
    const int out_col0 = E == Epi::SwiGlu ? (col0 + ACC0) / 2 : col0 + ACC0;
    const bool async = ASYNC && !(E == Epi::F32 && accumulate);

    // The buffer is free: the bulk copies issued from it (previous pass or tile) have read it, and every thread
    // has finished its own reads of it.
    if (wtid < 64) bulk_wait_read_all();
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

    if (async) {
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
    // Coalesced copy out: consecutive threads take consecutive 16-byte pieces of a row (a warp covers whole rows).
    if (E == Epi::F32 && accumulate) {
        // All loads of C first, then the adds and stores, so that the loads overlap one another.
        float4 old[ITERS];
#pragma unroll
        for (int it = 0; it < ITERS; ++it) {
            const int i = wtid + it * 128;
            const int r = i / PPR, q = i % PPR;
            const int col = out_col0 + q * PIECE;
            old[it] = make_float4(0.f, 0.f, 0.f, 0.f);
            if (r < rows && col < n_out) {
                old[it] = *reinterpret_cast<const float4*>(c_base + (long long)(row0 + r) * ldc_bytes +
                                                           (long long)col * OUT_BYTES);
            }
        }
#pragma unroll
        for (int it = 0; it < ITERS; ++it) {
            const int i = wtid + it * 128;
            const int r = i / PPR, q = i % PPR;
            const int col = out_col0 + q * PIECE;
            if (r < rows && col < n_out) {
                const uint4 v = ld_shared_v4(staged(buf, r, q));
                float4 s;  // C + A.B^T: one f32 add per element
                s.x = old[it].x + __uint_as_float(v.x);
                s.y = old[it].y + __uint_as_float(v.y);
                s.z = old[it].z + __uint_as_float(v.z);
                s.w = old[it].w + __uint_as_float(v.w);
                *reinterpret_cast<float4*>(c_base + (long long)(row0 + r) * ldc_bytes + (long long)col * OUT_BYTES) =
                    s;
            }
        }
    } else {
#pragma unroll
        for (int it = 0; it < ITERS; ++it) {
            const int i = wtid + it * 128;
            const int r = i / PPR, q = i % PPR;
            const int col = out_col0 + q * PIECE;
            if (r < rows && col < n_out) {
                const uint4 v = ld_shared_v4(staged(buf, r, q));
                *reinterpret_cast<uint4*>(c_base + (long long)(row0 + r) * ldc_bytes + (long long)col * OUT_BYTES) =
                    v;
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
template <int BN, Epi E, bool ASYNC, int ACC0 = 0>
__device__ __forceinline__ void epilogue(const float (&acc)[BN / 2], uint32_t buf, int wtid, uint32_t bar_id,
                                         char* c_base, long long ldc_bytes, int row0, int rows, int col0, int n_out,
                                         bool accumulate) {
    if constexpr (ACC0 < BN) {
        constexpr int WIDTH = BN - ACC0 < pass_width<E>() ? BN - ACC0 : pass_width<E>();
        epilogue_pass<BN, E, ACC0, WIDTH, ASYNC>(acc, buf, wtid, bar_id, c_base, ldc_bytes, row0, rows, col0, n_out,
                                                 accumulate);
        epilogue<BN, E, ASYNC, ACC0 + WIDTH>(acc, buf, wtid, bar_id, c_base, ldc_bytes, row0, rows, col0, n_out,
                                             accumulate);
    }
}

// ASYNC: bulk-copy stores (the default); false: the synchronous 16-byte stores for every output (kept so that the
// development harness can time both).
// CL: 1, or 2 for the 2-CTA cluster variant (the kernel must then carry __cluster_dims__(2, 1, 1) and the B map a
// box of {64, BN/2}): the two CTAs compute consecutive tiles of the list and, when those share a B tile, each loads
// one half of it multicast to both (sm90/cluster.cuh). Same tiles, same bytes as CL = 1.
template <int BN, Epi E, bool ASYNC = true, int CL = 1>
__device__ __forceinline__ void gemm_sm90(const TmaMap& a_map, const TmaMap& b_map, const GemmSm90Params& P) {
    static_assert(BN == 128 || BN == 192 || BN == 256, "tile widths with a wgmma wrapper");
    static_assert(E != Epi::SwiGlu || BN % 128 == 0, "SwiGLU tiles hold whole 64-gate + 64-up blocks");
    static_assert(CL == 1 || CL == 2, "clusters of 1 or 2 CTAs");
    constexpr int STAGES = stages_for(BN);
    constexpr uint32_t A_BYTES = a_tile_bytes();
    constexpr uint32_t B_BYTES = b_tile_bytes(BN);
    constexpr uint32_t B_HALF = B_BYTES / 2;  // CL = 2: B is loaded as two boxes of BN/2 rows
    static_assert(A_BYTES % 1024 == 0 && B_BYTES % 1024 == 0 && B_HALF % 1024 == 0,
                  "every tile (and half B tile) 1024-byte aligned (128B swizzle)");

    extern __shared__ __align__(1024) unsigned char smem_raw[];
    const uint32_t base = smem_u32(smem_raw);
    if (base & 1023u) __trap();  // the 128B swizzle needs 1024-byte aligned tiles
    const uint32_t a_smem = base;                            // STAGES x A tile
    const uint32_t b_smem = a_smem + STAGES * A_BYTES;       // STAGES x B tile
    const uint32_t staging = b_smem + STAGES * B_BYTES;      // 2 x STAGING_BYTES
    const uint32_t full_bar = staging + 2 * STAGING_BYTES;   // STAGES x 8 bytes
    const uint32_t empty_bar = full_bar + STAGES * 8;        // STAGES x 8 bytes

    // Warp-uniform for the compiler too (a shuffle of lane 0's value), so that the branches on it, and on what
    // derives from it, are not divergent paths around the wgmma.
    const int wg = __shfl_sync(0xffffffffu, (int)threadIdx.x / 128, 0);
    const int tiles_n = (P.n + BN - 1) / BN;
    const int k_blocks = (P.k + BK - 1) / BK;
    const uint32_t rank = CL == 2 ? cluster_ctarank() : 0;
    const uint32_t peer = rank ^ 1;

    if (threadIdx.x == 256) {
        tma_prefetch_map(&a_map);
        tma_prefetch_map(&b_map);
#pragma unroll
        for (int s = 0; s < STAGES; ++s) {
            mbar_init(full_bar + 8 * s, 1);
            mbar_init(empty_bar + 8 * s, 8 * CL);  // 8 consumer warps (of each CTA of the cluster)
        }
        mbar_fence_init();
    }
    if constexpr (CL == 2) {
        cluster_sync();  // the peer's barriers are initialised before any multicast or remote arrive
    } else {
        __syncthreads();
    }

    // The tile sequence of this CTA. CL = 1: global tiles blockIdx.x + i * gridDim.x. CL = 2: pairs (see
    // PairWalk); `mc` = the pair shares its B tile (multicast), `peer_busy` = the peer CTA has a tile in this pair
    // (it then takes part in every stage of it: it releases our stages and we release its).
    TileWalk<BM, GemmSm90Params> walk(P, tiles_n, blockIdx.x, gridDim.x);
    PairWalk<BM, GemmSm90Params> pairs(P, tiles_n, blockIdx.x / 2, gridDim.x / 2);
    auto next_tile = [&](Tile& t, bool& mc, bool& peer_busy) -> bool {
        if constexpr (CL == 1) {
            mc = false;
            peer_busy = false;
            return walk.advance(t);
        } else {
            Tile t0, t1;
            bool has1 = false;
            if (!pairs.advance(t0, t1, has1)) return false;
            if (rank == 1 && !has1) return false;  // the list ended inside this pair
            t = rank == 0 ? t0 : t1;
            peer_busy = has1;
            mc = has1 && t0.p == t1.p && t0.n_tile == t1.n_tile;
            return true;
        }
    };

    if (wg == 2) {
        // ---------------- producer ----------------
        setmaxnreg_dec<PRODUCER_REGS>();
        if (threadIdx.x == 256) {
            Tile t;
            bool mc, peer_busy;
            int s = 0;
            uint32_t phase = 0;
            while (next_tile(t, mc, peer_busy)) {
                const int a_row = P.problems[t.p].a_row + t.m_tile * BM;
                const int b_row = P.problems[t.p].b_row + t.n_tile * BN;
                for (int kb = 0; kb < k_blocks; ++kb) {
                    const uint32_t full = full_bar + 8 * s;
                    mbar_wait(empty_bar + 8 * s, phase ^ 1);
                    // The whole A and B tile land in this stage either way (with multicast, half of B comes from
                    // the peer's copy).
                    mbar_arrive_expect_tx(full, A_BYTES + B_BYTES);
                    tma_load_2d(a_smem + s * A_BYTES, &a_map, full, kb * BK, a_row);
                    if constexpr (CL == 2) {
                        if (mc) {
                            tma_load_2d_multicast(b_smem + s * B_BYTES + rank * B_HALF, &b_map, full, kb * BK,
                                                  b_row + (int)rank * (BN / 2), (uint16_t)0x3);
                        } else {
                            tma_load_2d(b_smem + s * B_BYTES, &b_map, full, kb * BK, b_row);
                            tma_load_2d(b_smem + s * B_BYTES + B_HALF, &b_map, full, kb * BK, b_row + BN / 2);
                        }
                    } else {
                        tma_load_2d(b_smem + s * B_BYTES, &b_map, full, kb * BK, b_row);
                    }
                    if (++s == STAGES) {
                        s = 0;
                        phase ^= 1;
                    }
                }
            }
        }
    } else {
        // ---------------- consumers ----------------
        setmaxnreg_inc<CONSUMER_REGS>();
        const int wtid = threadIdx.x % 128;
        const bool lane0 = (threadIdx.x & 31) == 0;
        const uint64_t a_desc0 = wgmma_desc_k128(a_smem + wg * 64 * 128);  // this warpgroup's 64 rows
        const uint64_t b_desc0 = wgmma_desc_k128(b_smem);
        const uint32_t buf = staging + wg * STAGING_BYTES;
        const bool accumulate = P.accumulate != 0;
        // Stage release: our own empty barrier, and with a peer in this pair also the peer's (its producer may
        // multicast into our copy of the stage, and ours into its); with no peer, we stand in for its warps.
        auto release = [&](int stage, bool peer_busy) {
            if (!lane0) return;
            const uint32_t bar = empty_bar + 8 * stage;
            if constexpr (CL == 2) {
                if (peer_busy) {
                    mbar_arrive(bar);
                    mbar_arrive_remote(bar, peer);
                } else {
                    mbar_arrive_count(bar, 2);
                }
            } else {
                mbar_arrive(bar);
            }
        };

        float acc[BN / 2];
#pragma unroll
        for (int i = 0; i < BN / 2; ++i) acc[i] = 0.0f;

        Tile t;
        bool mc, peer_busy;
        int s = 0;
        uint32_t phase = 0;
        while (next_tile(t, mc, peer_busy)) {
            const GemmSm90Problem& pr = P.problems[t.p];
            const int row0 = t.m_tile * BM + wg * 64;  // first row of this warpgroup within the problem
            const int rows = pr.m - row0;              // rows of this warpgroup to store (may be <= 0)
            // Warp-uniform for the compiler (see wg above): the MMA path below is then not a divergent path.
            const bool active = __shfl_sync(0xffffffffu, (int)(rows > 0), 0) != 0;
            if (active) {
                for (int kb = 0; kb < k_blocks; ++kb) {
                    mbar_wait(full_bar + 8 * s, phase);
                    fence_operand(acc);
                    wgmma_fence();
#pragma unroll
                    for (int kk = 0; kk < BK / 16; ++kk) {
                        // +32 bytes per k16 step inside the 128-byte swizzled row (see wgmma.cuh).
                        const uint64_t da = a_desc0 + ((s * A_BYTES + kk * 32) >> 4);
                        const uint64_t db = b_desc0 + ((s * B_BYTES + kk * 32) >> 4);
                        wgmma_m64k16<BN>(acc, da, db, (kb | kk) != 0);
                    }
                    wgmma_commit();
                    fence_operand(acc);
                    // At most the batch just issued is in flight: the batch of k-block kb - 1 has completed, so
                    // its stage may be refilled.
                    wgmma_wait<1>();
                    fence_operand(acc);
                    if (kb > 0) release(s == 0 ? STAGES - 1 : s - 1, peer_busy);
                    if (++s == STAGES) {
                        s = 0;
                        phase ^= 1;
                    }
                }
                wgmma_wait<0>();
                fence_operand(acc);
                release(s == 0 ? STAGES - 1 : s - 1, peer_busy);
                constexpr int OUT_BYTES = E == Epi::F32 ? 4 : 2;
                epilogue<BN, E, ASYNC>(acc, buf, wtid, 1 + wg, reinterpret_cast<char*>(pr.c),
                                       (long long)pr.ldc * OUT_BYTES, row0, rows, t.n_tile * BN,
                                       E == Epi::SwiGlu ? P.n / 2 : P.n, accumulate);
            } else {
                // No row of this warpgroup is stored: skip the MMAs, but keep the pipeline in step.
                for (int kb = 0; kb < k_blocks; ++kb) {
                    mbar_wait(full_bar + 8 * s, phase);
                    release(s, peer_busy);
                    if (++s == STAGES) {
                        s = 0;
                        phase ^= 1;
                    }
                }
            }
        }
        // The staging buffers must outlive the bulk copies reading them.
        if (wtid < 64) bulk_wait_all();
    }
    if constexpr (CL == 2) {
        // No CTA leaves while its peer may still arrive on its barriers or multicast into its shared memory.
        __syncwarp();
        cluster_sync();
    }
}

}  // namespace sm90

// ----------------------------------------------------------------------------
// CUDA kernels

#define GEMM_SM90_ENTRY(NAME, BN, EPI)                                                                            \
    extern "C" __global__ void __launch_bounds__(sm90::THREADS, 1)                                                \
        NAME(const __grid_constant__ sm90::TmaMap a_map, const __grid_constant__ sm90::TmaMap b_map,              \
             const __grid_constant__ GemmSm90Params params) {                                                     \
        sm90::gemm_sm90<BN, EPI>(a_map, b_map, params);                                                           \
    }

GEMM_SM90_ENTRY(gemm_sm90_nt_bf16_bf16_bf16_bn128, 128, sm90::Epi::Bf16)
GEMM_SM90_ENTRY(gemm_sm90_nt_bf16_bf16_bf16_bn192, 192, sm90::Epi::Bf16)
GEMM_SM90_ENTRY(gemm_sm90_nt_bf16_bf16_bf16_bn256, 256, sm90::Epi::Bf16)
GEMM_SM90_ENTRY(gemm_sm90_nt_bf16_bf16_f32_bn128, 128, sm90::Epi::F32)
GEMM_SM90_ENTRY(gemm_sm90_nt_bf16_bf16_f32_bn192, 192, sm90::Epi::F32)
GEMM_SM90_ENTRY(gemm_sm90_nt_bf16_bf16_f32_bn256, 256, sm90::Epi::F32)
GEMM_SM90_ENTRY(gemm_sm90_nt_bf16_bf16_swiglu_bn128, 128, sm90::Epi::SwiGlu)
GEMM_SM90_ENTRY(gemm_sm90_nt_bf16_bf16_swiglu_bn256, 256, sm90::Epi::SwiGlu)
