/*
The element-wise pieces of ARMT's delta-rule memory write (armt-spec §1.5), over the cells of one step (one span of M
memory rows per cell; span.layer picks the cell's β bias, span.state its memory state (A, z), span.flag = segment 0).
The products around them (P·[W_k|W_v|w_β]ᵀ, K·A_old, A += Kᵀ·U) are grouped GEMMs; DPFP turns the raw K columns into
kφ. In order:
  armt_write_prep_f32 — per memory row t: β = σ(logit_t + b_β[layer]); segment 0: u_t = β·V_t, γ_t = 1; otherwise
    δ_t = kφ_t · z + ε, u_t = β·(V_t − (kφ_t·A_old)_t / δ_t) and γ_t = clip(1 − δ_t / (‖kφ_t‖² + ε), 0, 1) (or 1
    without the correction). One block per row (blockIdx.y the span, blockIdx.x the row); the two dot products over
    the D features are reduced in a fixed order (strided per-thread sums, a xor butterfly per warp, warps in order).
  armt_z_update_f32 — z[state] += Σ_t γ_t · kφ_t, accumulated onto z in the order t = 0, 1, … (one rounded product
    and one rounded add per term, exactly as reference::armt_write::z_update). A block takes Z_FEATURES features of one
    span: its Z_THREADS threads load the products γ_t · kφ_t of up to Z_ROWS rows at once into shared memory, then one
    warp adds them onto its lanes' z in t order. (Until session 12 one thread per feature walked the rows itself: its
    loads, a few in flight, took ~16 µs at every model size, the latency of 128 rows.) Runs after the prep, which reads
    the old z.
Neither has atomics or any order that depends on the grid, so a cell's bits never depend on its neighbours.
Bytes: prep rows · (4·(d + 1) + 4·D + 4·d + 4·d) (V and logit, kφ, KA read; u written); z update
rows · 4·(D + 1) + 8·D per cell. FLOPs: prep rows · (4·D + 3·d), z update 2 · rows · D per cell.
*/
#include "common/armt.cuh"
#include "common/common.cuh"
#include "common/params.h"
#include "common/pdl.cuh"

// Fixed, not a launch parameter: the reduction order (which features each thread sums) depends on it.
#define WRITE_THREADS 256
#define WRITE_WARPS (WRITE_THREADS / 32)
// The z update's block: Z_THREADS loaders, Z_FEATURES features (one warp's lanes add them), Z_ROWS rows staged a round.
#define Z_THREADS 256
#define Z_FEATURES 32
#define Z_ROWS 128

// ----------------------------------------------------------------------------
// The row reductions shared by armt_write_prep_f32 and armt_write_features_f32, which must agree bit for bit.

// β = σ(logit + bias) as reference::armt_write::sigmoid: 1 / (1 + exp(−x)) in f32.
__device__ __forceinline__ float write_beta(float logit, float bias) { return 1.0f / (1.0f + expf(-(logit + bias))); }

// Each thread's partial kφ·z and ‖kφ‖², xor-reduced within its warp (every lane ends with the same bits: fp addition
// is commutative) and left per warp in kz_warps / kk_warps; the caller sums those in warp order after the barrier.
__device__ __forceinline__ void write_warp_sums(float kz, float kk, float* kz_warps, float* kk_warps) {
    for (int o = 16; o > 0; o >>= 1) {
        kz += __shfl_xor_sync(0xffffffffu, kz, o);
        kk += __shfl_xor_sync(0xffffffffu, kk, o);
    }
    if ((threadIdx.x & 31) == 0) {
        kz_warps[threadIdx.x >> 5] = kz;
        kk_warps[threadIdx.x >> 5] = kk;
    }
    __syncthreads();
}

// γ = clip(1 − δ / (‖kφ‖² + ε), 0, 1), or 1 without the correction.
__device__ __forceinline__ float write_gamma(float delta, float kk_sum, int correction) {
    return correction ? fminf(fmaxf(1.0f - __fdiv_rn(delta, kk_sum + ARMT_EPS), 0.0f), 1.0f) : 1.0f;
}

// ----------------------------------------------------------------------------
// CUDA kernels

// kvb: the fused write product, row stride kvb_ld; V at columns v_col .. v_col + d, the β logit (no bias) at v_col + d.
// kphi [*, d_key], ka = kφ·A_old [*, d] (not read for segment-0 spans): rows in_row ..; u [*, d] and gamma [*]: rows
// out_row ..; z [states, d_key]; b_beta [layers].
extern "C" __global__ void __launch_bounds__(WRITE_THREADS)
    armt_write_prep_f32(const Spans spans, const float* __restrict__ kvb, int kvb_ld, int v_col,
                        const float* __restrict__ kphi, const float* __restrict__ ka, const float* __restrict__ z,
                        const float* __restrict__ b_beta, float* __restrict__ u, float* __restrict__ gamma, int d,
                        int d_key, int correction) { pdl_entry();
    if ((int)blockIdx.y >= spans.count) return;
    const RowSpan span = spans.spans[blockIdx.y];
    const int t = blockIdx.x;
    if (t >= span.rows) return;  // block-uniform: no thread of this block reaches the barrier below

    const float* v = kvb + (size_t)(span.in_row + t) * kvb_ld + v_col;
    const float beta = write_beta(v[d], b_beta[span.layer]);
    float* ut = u + (size_t)(span.out_row + t) * d;

    if (span.flag) {  // segment 0: V̄ = 0, γ = 1; z and ka are not read (span-uniform branch)
        for (int c = threadIdx.x; c < d; c += WRITE_THREADS) ut[c] = __fmul_rn(beta, v[c]);
        if (threadIdx.x == 0) gamma[span.out_row + t] = 1.0f;
        return;
    }

    const float* k = kphi + (size_t)(span.in_row + t) * d_key;
    const float* zs = z + (size_t)span.state * d_key;
    float kz = 0.0f, kk = 0.0f;
    for (int c = threadIdx.x; c < d_key; c += WRITE_THREADS) {
        const float kc = k[c];
        kz = fmaf(kc, zs[c], kz);
        kk = fmaf(kc, kc, kk);
    }
    __shared__ float kz_warps[WRITE_WARPS];
    __shared__ float kk_warps[WRITE_WARPS];
    write_warp_sums(kz, kk, kz_warps, kk_warps);
    float kz_sum = 0.0f, kk_sum = 0.0f;
    for (int w = 0; w < WRITE_WARPS; ++w) {  // same order in every thread
        kz_sum += kz_warps[w];
        kk_sum += kk_warps[w];
    }
    const float delta = kz_sum + ARMT_EPS;

    const float* kat = ka + (size_t)(span.in_row + t) * d;
    for (int c = threadIdx.x; c < d; c += WRITE_THREADS) {
        ut[c] = __fmul_rn(beta, __fsub_rn(v[c], __fdiv_rn(kat[c], delta)));
    }
    if (threadIdx.x == 0) gamma[span.out_row + t] = write_gamma(delta, kk_sum, correction);
}

// kphi [*, d_key] rows in_row ..; gamma [*] rows out_row .. (the spans of armt_write_prep_f32 as they are); z [states,
// d_key], z[span.state] updated in place. blockIdx.y is the span, blockIdx.x · Z_FEATURES + lane the feature.
extern "C" __global__ void __launch_bounds__(Z_THREADS)
    armt_z_update_f32(const Spans spans, const float* __restrict__ kphi, const float* __restrict__ gamma,
                      float* __restrict__ z, int d_key) { pdl_entry();
    if ((int)blockIdx.y >= spans.count) return;
    const RowSpan span = spans.spans[blockIdx.y];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int j = blockIdx.x * Z_FEATURES + lane;
    const bool feature = j < d_key;  // not a return: every thread reaches the barriers

    // products[t][lane]: a warp's stores and the adding warp's loads are each one row of 32 banks
    __shared__ float products[Z_ROWS][Z_FEATURES];
    float* zj = z + (size_t)span.state * d_key + j;
    float acc = (warp == 0 && feature) ? *zj : 0.0f;
    for (int base = 0; base < span.rows; base += Z_ROWS) {
        const int n = min(Z_ROWS, span.rows - base);
        if (feature) {
#pragma unroll 4
            for (int t = warp; t < n; t += Z_THREADS / 32) {
                const int row = base + t;
                // Explicitly unfused: the same two roundings per term as the reference's `z += g * k`.
                products[t][lane] = __fmul_rn(gamma[span.out_row + row], kphi[(size_t)(span.in_row + row) * d_key + j]);
            }
        }
        __syncthreads();
        if (warp == 0 && feature) {
#pragma unroll 8
            for (int t = 0; t < n; ++t) acc = __fadd_rn(acc, products[t][lane]);
        }
        __syncthreads();  // the next round's stores wait for this round's adds
    }
    if (warp == 0 && feature) *zj = acc;
}

// The write's features and row numbers in one pass (replaces dpfp_f32 + the statistics half of armt_write_prep_f32
// where the prep is made in the kφ·A product's epilogue: gemm_tf32x3_sm90.cu's PREP entry). Per memory row t of a
// span (one block of WRITE_THREADS): kφ_t = dpfp(K raw_t) (dpfp_f32's products, into kphi rows span.in_row ..),
// β_t = σ(logit + b_β); segment 0: u_t = β·V_t, γ_t = 1 (as armt_write_prep_f32); otherwise δ_t = kφ_t·z + ε and
// ‖kφ_t‖² reduced exactly as armt_write_prep_f32 reduces them (thread c sums features c, c + WRITE_THREADS, … with
// fmaf; a xor butterfly; warps in order), γ_t from them, and stats[2 (in_row + t)] = {δ_t, β_t} for the epilogue.
// kvb: the fused write product (raw K at columns 0 .. d_mem, V at v_col, the β logit at v_col + d).
extern "C" __global__ void __launch_bounds__(WRITE_THREADS)
    armt_write_features_f32(const Spans spans, const float* __restrict__ kvb, int kvb_ld, int v_col, int d_mem,
                            int nu, const float* __restrict__ z, const float* __restrict__ b_beta,
                            float* __restrict__ kphi, float* __restrict__ stats, float* __restrict__ u,
                            float* __restrict__ gamma, int d, int correction) { pdl_entry();
    if ((int)blockIdx.y >= spans.count) return;
    const RowSpan span = spans.spans[blockIdx.y];
    const int t = blockIdx.x;
    if (t >= span.rows) return;  // block-uniform
    const int w = 2 * d_mem, d_key = nu * w;
    const float* kr = kvb + (size_t)(span.in_row + t) * kvb_ld;
    const float* v = kr + v_col;
    const float beta = write_beta(v[d], b_beta[span.layer]);
    float* kt = kphi + (size_t)(span.in_row + t) * d_key;
    const float* zs = z + (size_t)span.state * d_key;
    float kz = 0.0f, kk = 0.0f;
    for (int c = threadIdx.x; c < d_key; c += WRITE_THREADS) {
        const int j = c / w + 1, i = c - (j - 1) * w, k = (i + w - j % w) % w;
        const float xi = i < d_mem ? fmaxf(kr[i], 0.0f) : fmaxf(-kr[i - d_mem], 0.0f);
        const float xk = k < d_mem ? fmaxf(kr[k], 0.0f) : fmaxf(-kr[k - d_mem], 0.0f);
        const float kc = __fmul_rn(xi, xk);
        kt[c] = kc;
        if (!span.flag) {
            kz = fmaf(kc, zs[c], kz);
            kk = fmaf(kc, kc, kk);
        }
    }
    if (span.flag) {  // segment 0 (span-uniform): u = β·V, γ = 1, no statistics
        float* ut = u + (size_t)(span.out_row + t) * d;
        for (int c = threadIdx.x; c < d; c += WRITE_THREADS) ut[c] = __fmul_rn(beta, v[c]);
        if (threadIdx.x == 0) gamma[span.out_row + t] = 1.0f;
        return;
    }
    __shared__ float kz_warps[WRITE_WARPS];
    __shared__ float kk_warps[WRITE_WARPS];
    write_warp_sums(kz, kk, kz_warps, kk_warps);
    if (threadIdx.x == 0) {
        float kz_sum = 0.0f, kk_sum = 0.0f;
        for (int wi = 0; wi < WRITE_WARPS; ++wi) {
            kz_sum += kz_warps[wi];
            kk_sum += kk_warps[wi];
        }
        const float delta = kz_sum + ARMT_EPS;
        stats[2 * (size_t)(span.in_row + t)] = delta;
        stats[2 * (size_t)(span.in_row + t) + 1] = beta;
        gamma[span.out_row + t] = write_gamma(delta, kk_sum, correction);
    }
}
