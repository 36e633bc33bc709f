/*
Microbenchmark: what a chain of dependent wgmma m64nNk16 (bf16 x bf16 -> f32) costs on one SM of an sm_90a GPU — the
question behind the decode GEMMs' pace (docs/log/gemm_sm90.md §17-18: a narrow CTA spends ~57 cycles a dependent
m64n16k16 whether A comes from shared memory or registers, and a second chain on the other warpgroup did not help).

One CTA, `W` warpgroups (1 or 2), each issuing `links` rounds of `C` wgmmas (C independent accumulator sets: C = 1 is
one dependent chain, C = 2 two chains interleaved), all in one commit group, then waiting; clock64 around it. Operands
are fixed tiles in shared memory (A 64 x 64, B N x 64, bf16, K-major 128B-swizzled layout as the GEMMs use; the values
are irrelevant to the timing), or A from registers (`rs`). Printed per configuration: cycles per round (per link of a
chain), cycles per wgmma, and the SM's MACs per cycle.

Build and run (a GPU host; or build here with the nvcc wheel and carry the binary):
    cuda/dev/run_wgmma_chain.sh [links]         # default 512 (a 1B down projection's chain); < 10 s
*/
#include <cstdio>
#include <cstdlib>
#include <cuda_runtime.h>

#include "sm90/wgmma.cuh"

namespace {

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

template <int N, int C, bool RS>
__global__ void __launch_bounds__(256, 1) chain(int links, int wgs, unsigned long long* cycles, float* sink) {
    using namespace sm90;
    extern __shared__ __align__(1024) unsigned char smem[];
    constexpr int A_BYTES = 64 * 128, B_BYTES = N * 128;
    for (int i = threadIdx.x; i < (A_BYTES + B_BYTES) / 4; i += blockDim.x) {
        reinterpret_cast<uint32_t*>(smem)[i] = 0x3c003c00u + (i & 0x00ff00ffu);  // small finite bf16 pairs
    }
    __syncthreads();
    const int wg = threadIdx.x / 128;
    if (wg >= wgs) return;
    const uint32_t base = smem_addr(smem);
    const uint64_t da = wgmma_desc_k128(base), db = wgmma_desc_k128(base + A_BYTES);
    float acc[C][N / 2];
#pragma unroll
    for (int c = 0; c < C; ++c) {
#pragma unroll
        for (int i = 0; i < N / 2; ++i) acc[c][i] = 0.0f;
    }
    uint32_t a[4] = {0x3c003c01u, 0x3c013c00u, 0x3c003c02u, 0x3c023c00u};
    asm volatile("bar.sync %0, 128;\n" ::"r"(1 + wg));
    const unsigned long long t0 = clock64();
#pragma unroll
    for (int c = 0; c < C; ++c) fence_operand(acc[c]);
    wgmma_fence();
    for (int l = 0; l < links; ++l) {
#pragma unroll
        for (int c = 0; c < C; ++c) {
            // the four k16 slices of the 64-wide tile in turn, as a k-block's four wgmmas
            if constexpr (RS) {
                wgmma_m64k16_bf16_rs<N>(acc[c], a, db + 2 * (l & 3), 1);
            } else {
                wgmma_m64k16<N>(acc[c], da + 2 * (l & 3), db + 2 * (l & 3), 1);
            }
        }
    }
    wgmma_commit();
    wgmma_wait<0>();
#pragma unroll
    for (int c = 0; c < C; ++c) fence_operand(acc[c]);
    const unsigned long long t1 = clock64();
    if (threadIdx.x % 128 == 0) cycles[wg] = t1 - t0;
    float s = 0.0f;
#pragma unroll
    for (int c = 0; c < C; ++c) {
#pragma unroll
        for (int i = 0; i < N / 2; ++i) s += acc[c][i];
    }
    if (s == 1234.5f) sink[0] = s;  // keeps the products
}

template <int N, int C, bool RS>
void run(int links) {
    constexpr int SMEM = 64 * 128 + N * 128;
    unsigned long long* cycles;
    float* sink;
    cudaMalloc(&cycles, 2 * sizeof(unsigned long long));
    cudaMalloc(&sink, sizeof(float));
    cudaFuncSetAttribute(chain<N, C, RS>, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM);
    for (int wgs = 1; wgs <= 2; ++wgs) {
        unsigned long long best = ~0ull;
        for (int rep = 0; rep < 5; ++rep) {
            chain<N, C, RS><<<1, 256, SMEM>>>(links, wgs, cycles, sink);
            unsigned long long h[2] = {0, 0};
            if (cudaMemcpy(h, cycles, sizeof(h), cudaMemcpyDeviceToHost) != cudaSuccess) {
                std::printf("CUDA error: %s\n", cudaGetErrorString(cudaGetLastError()));
                std::exit(2);
            }
            const unsigned long long m = wgs == 2 && h[1] > h[0] ? h[1] : h[0];
            if (m < best) best = m;
        }
        const double per_round = (double)best / links;
        const double macs = 64.0 * N * 16 * C * wgs * links / (double)best;
        // a round is C wgmmas of each warpgroup; "a wgmma" is a warpgroup's, the others running beside it
        std::printf("N %3d  chains %d  warpgroups %d  A %-4s  %7.1f cycles a round  %6.1f a wgmma  %7.0f MAC/cycle\n", N,
                    C, wgs, RS ? "regs" : "smem", per_round, per_round / C, macs);
    }
    cudaFree(cycles);
    cudaFree(sink);
}

}  // namespace

int main(int argc, char** argv) {
    const int links = argc > 1 ? std::atoi(argv[1]) : 512;
    std::printf("dependent wgmma m64nNk16 bf16 chains, %d rounds, one CTA (clock64 cycles)\n", links);
    run<16, 1, false>(links);
    run<16, 2, false>(links);
    run<32, 1, false>(links);
    run<32, 2, false>(links);
    run<32, 1, true>(links);
    run<64, 1, false>(links);
    run<64, 2, false>(links);
    run<64, 1, true>(links);
    run<128, 1, false>(links);
    run<128, 2, false>(links);
    run<128, 1, true>(links);
    run<256, 1, false>(links);  // (A from registers at 256: ptxas serialises the wgmmas, C7512)
    return 0;
}
