/*
Grouped bf16 matrix products on tensor cores: for each problem p of a GroupedGemm, C_p[m, n] (+)= A_p[m, k] · B_p[n, k]ᵀ,
A and B bf16 row-major (B is an nn.Linear weight stored [out, in]), f32 accumulation, C bf16 (rounded once, after the
optional residual add in f32) or f32. These are the QKV / O / gate-up / down projections of every cell of a diagonal
step (one problem per cell, each with its own layer's weights and row count), the ARMT projections, and the LM head.
`gemm_nt_f32_bf16_f32` takes A in f32 (the f32 hidden rows) and rounds it to bf16 (to nearest, ties to even) as it
stages it into shared memory: its tiles, and so its bits, are exactly those of `gemm_nt_bf16_bf16_f32` on A rounded to
bf16 beforehand.
The simple first rung of the ladder: a 64×64 output tile per 128-thread block (4 warps of 32×32, WMMA 16×16×16 bf16
fragments), 32-wide K tiles staged through shared memory with zero-filled edges (any m, n, k, any row stride; 16-byte
loads only where the rows are 16-byte aligned), the result written back through shared memory with bounds checks.
A problem's bits depend only on that problem: blockIdx.y picks the problem, blockIdx.x the tile within it (blocks
past its tiles exit), each output element is summed in a fixed order, no split-K, no atomics.
Work: 2·m·n·k FLOP per problem; bytes moved at least (2 or 4)·m·k + 2·n·k + (2 or 4)·m·n (×2 for C when
accumulating).
*/
#include <cuda_bf16.h>
#include <mma.h>

#include "common/common.cuh"
#include "common/params.h"
#include "common/pdl.cuh"

namespace {

constexpr int BM = 64;        // output rows per block
constexpr int BN = 64;        // output columns per block
constexpr int BK = 32;        // K per shared-memory stage
constexpr int THREADS = 128;  // 4 warps, 2×2, each 32×32 of the tile
constexpr int WM = 32;
constexpr int WN = 32;
// Row stride of the A and B tiles in shared memory, in bf16: 80 bytes keeps every 8-element chunk 16-byte aligned
// (WMMA wants ldm a multiple of 8 and 32-byte aligned fragment pointers: 16 rows × 80 bytes and 16 columns × 2 bytes
// both are) and shifts consecutive rows across banks.
constexpr int LDS = BK + 8;
// Row stride of the f32 output staging tile: a multiple of 4 (WMMA store) that is not a multiple of 32.
constexpr int LDC_S = BN + 4;

constexpr int AB_BYTES = (BM + BN) * LDS * 2;
constexpr int C_BYTES = BM * LDC_S * 4;
// The operand tiles and the output staging tile are never live at once, so they share the same bytes.
constexpr int SMEM_BYTES = AB_BYTES > C_BYTES ? AB_BYTES : C_BYTES;

static_assert(THREADS == (BM / WM) * (BN / WN) * 32, "one warp per 32×32 sub-tile");
static_assert(BK % 16 == 0 && BK % 8 == 0, "K tile is whole WMMA steps and whole 8-element chunks");
static_assert(BM == BN, "load_tile serves A and B with one row count");

// Copies rows r0 .. r0+64 and columns k0 .. k0+BK of a row-major bf16 matrix (`rows` × `k`, row stride `ld`) into a
// shared tile [64][LDS], writing zeros outside the matrix so the edge tiles need no special case in the MMA loop.
// `vec_ok`: the base address is 16-byte aligned and ld is a multiple of 8, so any 8-element chunk starting at a
// multiple of 8 is one aligned 16-byte load.
__device__ __forceinline__ void load_tile(__nv_bfloat16* tile, const __nv_bfloat16* src, int rows, int k,
                                          long long ld, int r0, int k0, bool vec_ok) {
    constexpr int CHUNKS_PER_ROW = BK / 8;
    constexpr int CHUNKS = BM * CHUNKS_PER_ROW;
    static_assert(CHUNKS % THREADS == 0, "every thread copies the same number of chunks");
#pragma unroll
    for (int it = 0; it < CHUNKS / THREADS; ++it) {
        const int ch = threadIdx.x + it * THREADS;
        const int r = ch / CHUNKS_PER_ROW;
        const int c = (ch % CHUNKS_PER_ROW) * 8;
        const int gr = r0 + r;
        const int gc = k0 + c;
        uint4 v = make_uint4(0u, 0u, 0u, 0u);
        if (gr < rows && gc < k) {
            const __nv_bfloat16* p = src + (long long)gr * ld + gc;
            if (vec_ok && gc + 8 <= k) {
                v = *reinterpret_cast<const uint4*>(p);
            } else {
                unsigned int e[8];
#pragma unroll
                for (int j = 0; j < 8; ++j) {
                    e[j] = gc + j < k ? (unsigned int)__bfloat16_as_ushort(p[j]) : 0u;
                }
                // Little-endian: the element at the lower address is the low half of the word.
                v = make_uint4(e[0] | e[1] << 16, e[2] | e[3] << 16, e[4] | e[5] << 16, e[6] | e[7] << 16);
            }
        }
        *reinterpret_cast<uint4*>(tile + r * LDS + c) = v;
    }
}

// As load_tile, from a row-major f32 matrix: every element is rounded to bf16 (to nearest, ties to even) on the way,
// so the tile holds exactly what load_tile copies from the matrix rounded to bf16 beforehand (zeros stay zeros).
// `vec_ok`: the base address is 16-byte aligned and ld is a multiple of 4, so any 8-element chunk starting at a
// multiple of 8 is two aligned 16-byte loads.
__device__ __forceinline__ void load_tile(__nv_bfloat16* tile, const float* src, int rows, int k, long long ld, int r0,
                                          int k0, bool vec_ok) {
    constexpr int CHUNKS_PER_ROW = BK / 8;
    constexpr int CHUNKS = BM * CHUNKS_PER_ROW;
    static_assert(CHUNKS % THREADS == 0, "every thread copies the same number of chunks");
#pragma unroll
    for (int it = 0; it < CHUNKS / THREADS; ++it) {
        const int ch = threadIdx.x + it * THREADS;
        const int r = ch / CHUNKS_PER_ROW;
        const int c = (ch % CHUNKS_PER_ROW) * 8;
        const int gr = r0 + r;
        const int gc = k0 + c;
        uint4 v = make_uint4(0u, 0u, 0u, 0u);
        if (gr < rows && gc < k) {
            const float* p = src + (long long)gr * ld + gc;
            float f[8];
            if (vec_ok && gc + 8 <= k) {
                const float4 lo = *reinterpret_cast<const float4*>(p);
                const float4 hi = *reinterpret_cast<const float4*>(p + 4);
                f[0] = lo.x, f[1] = lo.y, f[2] = lo.z, f[3] = lo.w;
                f[4] = hi.x, f[5] = hi.y, f[6] = hi.z, f[7] = hi.w;
            } else {
#pragma unroll
                for (int j = 0; j < 8; ++j) f[j] = gc + j < k ? p[j] : 0.0f;
            }
            unsigned int e[8];
#pragma unroll
            for (int j = 0; j < 8; ++j) e[j] = (unsigned int)__bfloat16_as_ushort(__float2bfloat16_rn(f[j]));
            // Little-endian: the element at the lower address is the low half of the word.
            v = make_uint4(e[0] | e[1] << 16, e[2] | e[3] << 16, e[4] | e[5] << 16, e[6] | e[7] << 16);
        }
        *reinterpret_cast<uint4*>(tile + r * LDS + c) = v;
    }
}

__device__ __forceinline__ void store_out(float* dst, float v, bool accumulate) {
    *dst = accumulate ? *dst + v : v;
}

// The residual add happens in f32 and the sum is rounded to bf16 once.
__device__ __forceinline__ void store_out(__nv_bfloat16* dst, float v, bool accumulate) {
    *dst = __float2bfloat16_rn(accumulate ? __bfloat162float(*dst) + v : v);
}

// A is `AT` (bf16, or f32 rounded to bf16 by load_tile), B bf16, C `OutT`.
template <typename AT, typename OutT>
__device__ __forceinline__ void gemm_nt(const GroupedGemm& params) {
    using namespace nvcuda;

    // Every exit below is taken by the whole block (it depends on blockIdx only), before any __syncthreads.
    const int p = blockIdx.y;
    if (p >= params.count) return;
    const GemmProblem& prob = params.problems[p];
    const int m = prob.m, n = prob.n, k = prob.k;
    if (m <= 0 || n <= 0) return;
    const int tiles_n = n / BN + (n % BN != 0);
    const int tiles_m = m / BM + (m % BM != 0);
    if ((long long)blockIdx.x >= (long long)tiles_m * tiles_n) return;
    const int m0 = (int)(blockIdx.x / tiles_n) * BM;
    const int n0 = (int)(blockIdx.x % tiles_n) * BN;

    const AT* a = reinterpret_cast<const AT*>(prob.a);
    const __nv_bfloat16* b = reinterpret_cast<const __nv_bfloat16*>(prob.b);
    OutT* c = reinterpret_cast<OutT*>(prob.c);
    const long long lda = prob.lda, ldb = prob.ldb, ldc = prob.ldc;
    // A row's 8-element chunks are 16-byte aligned (one load for bf16, two for f32).
    const bool a_vec = (prob.a % 16 == 0) && (lda % (16 / (long long)sizeof(AT)) == 0);
    const bool b_vec = (prob.b % 16 == 0) && (ldb % 8 == 0);

    __shared__ __align__(128) unsigned char smem[SMEM_BYTES];
    __nv_bfloat16* as = reinterpret_cast<__nv_bfloat16*>(smem);
    __nv_bfloat16* bs = as + BM * LDS;
    float* cs = reinterpret_cast<float*>(smem);

    const int warp = threadIdx.x / 32;
    const int wm = (warp / (BN / WN)) * WM;  // warp's first row within the tile
    const int wn = (warp % (BN / WN)) * WN;  // warp's first column within the tile

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[WM / 16][WN / 16];
#pragma unroll
    for (int i = 0; i < WM / 16; ++i)
#pragma unroll
        for (int j = 0; j < WN / 16; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

    for (int k0 = 0; k0 < k; k0 += BK) {
        load_tile(as, a, m, k, lda, m0, k0, a_vec);
        load_tile(bs, b, n, k, ldb, n0, k0, b_vec);
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < BK; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> af[WM / 16];
            // The B tile holds rows of B = columns of Bᵀ, i.e. Bᵀ's K×N block in column-major order.
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> bf[WN / 16];
#pragma unroll
            for (int i = 0; i < WM / 16; ++i) wmma::load_matrix_sync(af[i], as + (wm + i * 16) * LDS + kk, LDS);
#pragma unroll
            for (int j = 0; j < WN / 16; ++j) wmma::load_matrix_sync(bf[j], bs + (wn + j * 16) * LDS + kk, LDS);
#pragma unroll
            for (int i = 0; i < WM / 16; ++i)
#pragma unroll
                for (int j = 0; j < WN / 16; ++j) wmma::mma_sync(acc[i][j], af[i], bf[j], acc[i][j]);
        }
        // The next stage overwrites the tiles (and the epilogue reuses the bytes): all warps must be done reading.
        __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < WM / 16; ++i)
#pragma unroll
        for (int j = 0; j < WN / 16; ++j)
            wmma::store_matrix_sync(cs + (wm + i * 16) * LDC_S + wn + j * 16, acc[i][j], LDC_S, wmma::mem_row_major);
    __syncthreads();

    // Consecutive threads take consecutive columns, so each warp writes (and, accumulating, reads) whole row runs.
    const bool accumulate = params.accumulate != 0;
    for (int idx = threadIdx.x; idx < BM * BN; idx += THREADS) {
        const int r = idx / BN;
        const int col = idx % BN;
        const int gr = m0 + r;
        const int gc = n0 + col;
        if (gr < m && gc < n) store_out(c + (long long)gr * ldc + gc, cs[r * LDC_S + col], accumulate);
    }
}

}  // namespace

// ----------------------------------------------------------------------------
// CUDA kernels

// __grid_constant__: the problem table is indexed by blockIdx.y, which would otherwise copy the whole 3 KB
// parameter struct to local memory.
extern "C" __global__ void __launch_bounds__(THREADS)
    gemm_nt_bf16_bf16_bf16(const __grid_constant__ GroupedGemm params) { pdl_entry();
    gemm_nt<__nv_bfloat16, __nv_bfloat16>(params);
}

extern "C" __global__ void __launch_bounds__(THREADS)
    gemm_nt_bf16_bf16_f32(const __grid_constant__ GroupedGemm params) { pdl_entry();
    gemm_nt<__nv_bfloat16, float>(params);
}

// A f32 (rounded to bf16 in shared memory), B bf16, C f32: the projections that read the f32 hidden rows.
extern "C" __global__ void __launch_bounds__(THREADS)
    gemm_nt_f32_bf16_f32(const __grid_constant__ GroupedGemm params) { pdl_entry();
    gemm_nt<float, float>(params);
}
