/*
Grouped f32 matrix products for the associative memory, whose state A (D × d) and normaliser stay f32: for each
problem p of a GroupedGemm, C_p[m, n] (+)= op(A_p) · B_p with B_p row-major [k, n] and op(A) either A row-major
[m, k] (`gemm_nn_f32_f32_f32`: the reads φ(q)·A and φ(k)·A) or Aᵀ with A stored row-major [k, m]
(`gemm_tn_f32_f32_f32`: the memory update A += Kᵀ·U, K [M, D], U [M, d]). A classic SIMT tiled kernel, the simple first rung: a 64×64 output tile per
256-thread block, 4×4 outputs per thread (rows ty + 16·i, columns tx + 16·j, so shared-memory reads are broadcasts
or consecutive words), 16-deep K tiles staged through shared memory with zero-filled edges, so any m, n, k and any
row strides work. Each output is one f32 sum over k in increasing order (fmaf), added to C at the end when
accumulating; blockIdx.y picks the problem and blockIdx.x the tile, so a problem's bits never depend on the others.
Work: 2·m·n·k FLOP per problem; bytes moved at least 4·(m·k + k·n + m·n) (+ 4·m·n to read C when accumulating).
*/
#include "common/common.cuh"
#include "common/params.h"
#include "common/pdl.cuh"

namespace {

constexpr int BM = 64;
constexpr int BN = 64;
constexpr int BK = 16;
constexpr int TX = 16;  // threads across the tile's columns
constexpr int TY = 16;  // threads across the tile's rows
constexpr int THREADS = TX * TY;
constexpr int RM = BM / TY;  // outputs per thread, rows
constexpr int RN = BN / TX;  // outputs per thread, columns

static_assert(BM * BK % THREADS == 0 && BK * BN % THREADS == 0, "every thread copies the same number of elements");

template <bool A_TRANSPOSED>
__device__ __forceinline__ void gemm_f32(const GroupedGemm& params) {
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

    const float* a = reinterpret_cast<const float*>(prob.a);
    const float* b = reinterpret_cast<const float*>(prob.b);
    float* c = reinterpret_cast<float*>(prob.c);
    const long long lda = prob.lda, ldb = prob.ldb, ldc = prob.ldc;

    // K-major tiles: as[kk][mm] = op(A)[m0 + mm][k0 + kk], bs[kk][nn] = B[k0 + kk][n0 + nn]. The +1 on as spreads the
    // transposing stores of the nn variant over the banks.
    __shared__ float as[BK][BM + 1];
    __shared__ float bs[BK][BN];

    const int tx = threadIdx.x % TX;
    const int ty = threadIdx.x / TX;

    float acc[RM][RN];
#pragma unroll
    for (int i = 0; i < RM; ++i)
#pragma unroll
        for (int j = 0; j < RN; ++j) acc[i][j] = 0.0f;

    for (int k0 = 0; k0 < k; k0 += BK) {
#pragma unroll
        for (int it = 0; it < BM * BK / THREADS; ++it) {
            const int idx = threadIdx.x + it * THREADS;
            int mm, kk;
            if (A_TRANSPOSED) {
                // A stored [k, m]: consecutive threads read consecutive m of one stored row.
                kk = idx / BM;
                mm = idx % BM;
            } else {
                // A stored [m, k]: consecutive threads read consecutive k of one stored row.
                mm = idx / BK;
                kk = idx % BK;
            }
            const int gm = m0 + mm;
            const int gk = k0 + kk;
            float v = 0.0f;
            if (gm < m && gk < k) v = A_TRANSPOSED ? a[(long long)gk * lda + gm] : a[(long long)gm * lda + gk];
            as[kk][mm] = v;
        }
#pragma unroll
        for (int it = 0; it < BK * BN / THREADS; ++it) {
            const int idx = threadIdx.x + it * THREADS;
            const int kk = idx / BN;
            const int nn = idx % BN;
            const int gk = k0 + kk;
            const int gn = n0 + nn;
            bs[kk][nn] = gk < k && gn < n ? b[(long long)gk * ldb + gn] : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            float av[RM], bv[RN];
#pragma unroll
            for (int i = 0; i < RM; ++i) av[i] = as[kk][ty + TY * i];
#pragma unroll
            for (int j = 0; j < RN; ++j) bv[j] = bs[kk][tx + TX * j];
#pragma unroll
            for (int i = 0; i < RM; ++i)
#pragma unroll
                for (int j = 0; j < RN; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
        }
        // The next stage overwrites the tiles: all threads must be done reading them.
        __syncthreads();
    }

    const bool accumulate = params.accumulate != 0;
#pragma unroll
    for (int i = 0; i < RM; ++i) {
        const int gm = m0 + ty + TY * i;
#pragma unroll
        for (int j = 0; j < RN; ++j) {
            const int gn = n0 + tx + TX * j;
            if (gm < m && gn < n) {
                float* dst = c + (long long)gm * ldc + gn;
                *dst = accumulate ? *dst + acc[i][j] : acc[i][j];
            }
        }
    }
}

}  // namespace

// ----------------------------------------------------------------------------
// CUDA kernels

// __grid_constant__: the problem table is indexed by blockIdx.y, which would otherwise copy the whole 3 KB
// parameter struct to local memory.
extern "C" __global__ void __launch_bounds__(THREADS)
    gemm_nn_f32_f32_f32(const __grid_constant__ GroupedGemm params) { pdl_entry();
    gemm_f32<false>(params);
}

extern "C" __global__ void __launch_bounds__(THREADS)
    gemm_tn_f32_f32_f32(const __grid_constant__ GroupedGemm params) { pdl_entry();
    gemm_f32<true>(params);
}
