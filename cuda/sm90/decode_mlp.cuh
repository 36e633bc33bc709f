/*
v13: a decode step's whole MLP block in one launch (docs/log/decode_graphs.md §11) --
    act = SwiGLU(norm(x) . gate_up^T)          (the normed narrow SwiGLU tile: 128 interleaved B rows, 64 outputs)
    x  += act . down^T   (and its bf16 mirror) (the narrow width 16, f32 output accumulated)
The bytes of gemm_sm90_nt_bf16_bf16_swiglu_bn128_decode_normed followed by the f32 narrow launch of down: the same
tiles, each with the same k order, the same wgmma chain and the same epilogue; only when their loads are issued
moves. Part of gemm_sm90.cu (it includes this inside namespace sm90, after gemm_sm90_narrow: the plan constants,
make_normed_rows and the epilogue are its).

Why one launch: apart, down's CTAs start only when the last gate/up tile is stored, then each waits for its first
stages from DRAM (the ramp) before its chain runs; 1B decode spends ~38 us a layer in the two where their 100 MB at
the gate/up tile's rate take ~26. Here each CTA (grid <= SMs, all resident: a cooperative launch) runs its gate/up
tiles and then its down tiles; its producer goes on from the last gate/up stage straight into down's B stages
(weights: nothing in the launch writes them), and only down's A rows -- the activations, 16 KB a request row in L2
-- wait for the grid barrier (sm90/grid_barrier.cuh) that every CTA passes after storing its gate/up tiles. Down's
chain then runs on stages that have mostly landed.

Shared memory (the narrow plan's area, NARROW_AREA), v13.1: the ring keeps the normed SwiGLU launch's stage count
(v13.0's eight stages streamed slower than its ten: docs/log/gemm_sm90.md §22):
  [0, a_area)          a_area = max(the normed rows of gate/up, 32 KB), a multiple of 8 KB: the normed A rows (one
                       8-row slot a k-block), dead once this CTA's gate/up tiles are done; then down's A slots, na =
                       a_area / 8 KB of them (4 at d <= 2,048), down stage j in slot j % na (8 k-blocks of 8 rows:
                       the 3-D A box {64, 8, 8}).
  [a_area, +16 KB s)   the ring, `stages` = (NARROW_AREA - a_area) / 16 KB slots of B (10 at d <= 2,048): one gate/up
                       k-block (128 rows x 128 B), or eight down k-blocks (16 rows: the 3-D B box {64, 16, 8}). Both
                       phases share the stage sequence (s, phase) and the full/empty barriers.
  staging, then the full and empty barriers (NARROW_MAX_STAGES each) and the normed rows' barrier, as the narrow plan.
Down's stage: the producer arrives with the bytes of A and B (24 KB) and issues B at once; the A copies of the first
`stages` down stages wait for the grid barrier. An A slot is reused by stage j once stage j - na has been released
(its ring slot's empty barrier at the lap it was issued in: the consumer releases a stage after the next one's wgmma
are issued, so na >= 2 keeps this from waiting on itself). Later down stages need a ring slot freed by down's own
chain, so the producer passes the barrier before waiting for one.

Requirements (trap otherwise; the launcher checks them first): every problem of both launches m <= 8 rows, gate/up
k <= NORMED_MAX_K and n % 128 == 0 (so down's k = n / 2 is whole k-blocks), down's B box 16 rows, the grid at most
one CTA per SM and every CTA resident.
*/
#pragma once

constexpr int MLP_DOWN_BN = 16;
constexpr int MLP_DOWN_KS = narrow_ks(MLP_DOWN_BN);
constexpr uint32_t MLP_STAGE_B = 16384;
constexpr uint32_t MLP_DOWN_A_SLOT = NORMED_ROWS * BK * 2;  // one k-block of 8 rows
constexpr uint32_t MLP_DOWN_A_STAGE = MLP_DOWN_KS * MLP_DOWN_A_SLOT;
constexpr uint32_t MLP_MIN_A_AREA = 4 * MLP_DOWN_A_STAGE;
constexpr int MLP_RECORDS = 32;
// v13.2: down stages whose B the producer issues before the grid barrier (at most the ring). v13.1 filled the ring
// (ten): those bytes only lengthened the DRAM-bound gate/up phase; a few cover down's first loads after the barrier.
#ifndef GEMM_SM90_MLP_AHEAD
#define GEMM_SM90_MLP_AHEAD 3
#endif
constexpr int MLP_AHEAD = GEMM_SM90_MLP_AHEAD;  // the producer's record of its last down stages (ring slot, lap)
static_assert(b_tile_bytes(128) == (int)MLP_STAGE_B && MLP_DOWN_KS * b_tile_bytes(MLP_DOWN_BN) == (int)MLP_STAGE_B,
              "a gate/up k-block and a down stage are one 16 KB ring slot");
// The A area for gate/up's k: the normed rows, at least four of down's A slots, whole A slots.
__host__ __device__ constexpr uint32_t mlp_a_area(int k) {
    return ((uint32_t)normed_a_bytes(k) > MLP_MIN_A_AREA ? (uint32_t)normed_a_bytes(k) : MLP_MIN_A_AREA) +
           MLP_DOWN_A_STAGE - 1 - (((uint32_t)normed_a_bytes(k) > MLP_MIN_A_AREA ? (uint32_t)normed_a_bytes(k) - 1
                                                                                  : MLP_MIN_A_AREA - 1) %
                                   MLP_DOWN_A_STAGE);
}
__host__ __device__ constexpr int mlp_stages(int k) {
    return (NARROW_AREA - (int)mlp_a_area(k)) / (int)MLP_STAGE_B > NARROW_MAX_STAGES
               ? NARROW_MAX_STAGES
               : (NARROW_AREA - (int)mlp_a_area(k)) / (int)MLP_STAGE_B;
}
static_assert(mlp_a_area(2048) == 32768 && mlp_stages(2048) == 10 && mlp_a_area(576) == 32768 &&
                  mlp_stages(576) == 10 && mlp_a_area(3072) == 49152 && mlp_stages(3072) == 9 &&
                  mlp_a_area(NORMED_MAX_K) == 65536 && mlp_stages(NORMED_MAX_K) == 8,
              "the plans the notes state: ten stages at d <= 2,048");
static_assert(MLP_RECORDS >= NARROW_MAX_STAGES + 8, "records cover the deferred stages and na stages back");

__device__ __forceinline__ void gemm_sm90_decode_mlp(const TmaMap& gu_b_map, const TmaMap& dn_a_map,
                                                     const TmaMap& dn_b_map, const GemmSm90Params& G,
                                                     const GemmSm90Params& D, const GemmSm90NormRows& nr,
                                                     uint32_t* grid_bar) {
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    const uint32_t base = smem_u32(smem_raw);
    if (base & 1023u) __trap();
    {
        uint32_t dyn;
        asm("mov.u32 %0, %%dynamic_smem_size;\n" : "=r"(dyn));
        if (dyn < (uint32_t)narrow_smem_bytes() + 8u) __trap();
    }
    int max_m = 0;
    for (int p = 0; p < G.count; ++p) max_m = max(max_m, G.problems[p].m);
    for (int p = 0; p < D.count; ++p) max_m = max(max_m, D.problems[p].m);
    if (max_m > NORMED_ROWS || G.k > NORMED_MAX_K || G.n % 128 != 0 || D.k % BK != 0) __trap();

    // the plan (the same in every thread)
    const uint32_t a_area = mlp_a_area(G.k);
    const int na = (int)(a_area / MLP_DOWN_A_STAGE);
    const int stages = mlp_stages(G.k);
    const uint32_t ring = base + a_area;
    const uint32_t staging = base + NARROW_AREA;
    const uint32_t full_bar = staging + 2 * STAGING_BYTES;
    const uint32_t empty_bar = full_bar + NARROW_MAX_STAGES * 8;
    const uint32_t normed_bar = empty_bar + NARROW_MAX_STAGES * 8;

    const int wg = __shfl_sync(0xffffffffu, (int)threadIdx.x / 128, 0);
    const int gu_tiles_n = G.n / 128;
    const int gu_k_blocks = (G.k + BK - 1) / BK;
    const int dn_tiles_n = (D.n + MLP_DOWN_BN - 1) / MLP_DOWN_BN;
    const int dn_k_blocks = D.k / BK;
    const int dn_k_stages = (dn_k_blocks + MLP_DOWN_KS - 1) / MLP_DOWN_KS;

    if (threadIdx.x == 256) {
        tma_prefetch_map(&gu_b_map);
        tma_prefetch_map(&dn_a_map);
        tma_prefetch_map(&dn_b_map);
        for (int s = 0; s < NARROW_MAX_STAGES; ++s) {
            mbar_init(full_bar + 8 * s, 1);
            mbar_init(empty_bar + 8 * s, 4);  // the 4 warps of consumer warpgroup 0
        }
        mbar_init(normed_bar, 1);
        mbar_fence_init();
    }
    __syncthreads();
    pdl_entry();

    if (wg == 2) {
        // ---------------- producer ----------------
        setmaxnreg_dec<PRODUCER_REGS>();
        if (threadIdx.x != 256) return;
        const uint32_t generation = grid_generation(grid_bar);
        int s = 0;
        uint32_t phase = 0;
        // gate/up: one k-block of 128 B rows a stage; the launch's first stage goes out with the norm's loads, the
        // rest once the rows are made (as the normed entries)
        TileWalk<BM, GemmSm90Params> gu(G, gu_tiles_n, blockIdx.x, gridDim.x);
        Tile t;
        bool first_tile = true;
        while (gu.advance(t)) {
            const int b_row = G.problems[t.p].b_row + t.n_tile * 128;
            for (int kb = 0; kb < gu_k_blocks; ++kb) {
                const uint32_t full = full_bar + 8 * s;
                mbar_wait(empty_bar + 8 * s, phase ^ 1);
                if (first_tile && kb == 1) mbar_wait(normed_bar, 0);
                mbar_arrive_expect_tx(full, MLP_STAGE_B);
                tma_load_2d(ring + (uint32_t)s * MLP_STAGE_B, &gu_b_map, full, kb * BK, b_row);
                if (++s == stages) {
                    s = 0;
                    phase ^= 1;
                }
            }
            if (first_tile && gu_k_blocks == 1) mbar_wait(normed_bar, 0);
            first_tile = false;
        }
        // down: B at once; A after the grid barrier, into A slot j % na once stage j - na has been released
        int rec_slot[MLP_RECORDS], rec_phase[MLP_RECORDS];  // down stage j's ring slot and lap parity at j % 32
        int rec_row[MLP_RECORDS], rec_kb[MLP_RECORDS];      // and its A box
        auto issue_a = [&](int j) {
            const int r = j % MLP_RECORDS;
            if (j >= na) {
                const int back = (j - na) % MLP_RECORDS;
                mbar_wait(empty_bar + 8 * rec_slot[back], (uint32_t)rec_phase[back]);
            }
            tma_load_3d(base + (uint32_t)(j % na) * MLP_DOWN_A_STAGE, &dn_a_map, full_bar + 8 * rec_slot[r], 0,
                        rec_row[r], rec_kb[r]);
        };
        TileWalk<BM, GemmSm90Params> dn(D, dn_tiles_n, blockIdx.x, gridDim.x);
        int j = 0;
        bool open = false;
        while (dn.advance(t)) {
            const int a_row = D.problems[t.p].a_row;
            const int b_row = D.problems[t.p].b_row + t.n_tile * MLP_DOWN_BN;
            for (int st = 0; st < dn_k_stages; ++st) {
                if (!open && j == min(stages, MLP_AHEAD)) {
                    // the stages streamed before the barrier are out (at most a ring: the next slot frees only
                    // when down's chain runs)
                    grid_wait(grid_bar, generation);
                    for (int i = 0; i < j; ++i) issue_a(i);
                    open = true;
                }
                const uint32_t full = full_bar + 8 * s;
                mbar_wait(empty_bar + 8 * s, phase ^ 1);
                mbar_arrive_expect_tx(full, MLP_DOWN_A_STAGE + MLP_STAGE_B);
                tma_load_3d(ring + (uint32_t)s * MLP_STAGE_B, &dn_b_map, full, 0, b_row, st * MLP_DOWN_KS);
                const int r = j % MLP_RECORDS;
                rec_slot[r] = s;
                rec_phase[r] = (int)phase;
                rec_row[r] = a_row;
                rec_kb[r] = st * MLP_DOWN_KS;
                if (open) issue_a(j);
                ++j;
                if (++s == stages) {
                    s = 0;
                    phase ^= 1;
                }
            }
        }
        if (!open && j > 0) {
            grid_wait(grid_bar, generation);
            for (int i = 0; i < j; ++i) issue_a(i);
        }
        return;
    }
    setmaxnreg_inc<CONSUMER_REGS>();
    if (wg != 0) return;  // every problem has m <= 8: warpgroup 1 has no row to compute
    // ---------------- consumer warpgroup 0 ----------------
    const int wtid = threadIdx.x % 128;
    const bool lane0 = (threadIdx.x & 31) == 0;
    const uint64_t desc0 = wgmma_desc_k128(base);
    const uint32_t generation = wtid == 0 ? grid_generation(grid_bar) : 0u;  // the arriving thread's
    float* const norm_sums = reinterpret_cast<float*>(smem_raw + NARROW_AREA);
    int s = 0;
    uint32_t phase = 0;
    Tile t;
    {
        // gate/up, as gemm_sm90_narrow<128, SwiGlu, Fast, true>
        float acc[64];
#pragma unroll
        for (int i = 0; i < 64; ++i) acc[i] = 0.0f;
        TileWalk<BM, GemmSm90Params> gu(G, gu_tiles_n, blockIdx.x, gridDim.x);
        int normed_p = -1;
        while (gu.advance(t)) {
            const GemmSm90Problem& pr = G.problems[t.p];
            const int rows = pr.m;
            if (t.p != normed_p) {
                make_normed_rows(base, nr, t.p, rows, G.k, gu_k_blocks, wtid, norm_sums,
                                 normed_p < 0 ? normed_bar : 0u);
                normed_p = t.p;
            }
            for (int kb = 0; kb < gu_k_blocks; ++kb) {
                mbar_wait(full_bar + 8 * s, phase);
                fence_operand(acc);
                wgmma_fence();
                const uint64_t da0 = desc0 + ((uint32_t)kb * (NORMED_ROWS * BK * 2) >> 4);
                const uint64_t db0 = desc0 + ((a_area + (uint32_t)s * MLP_STAGE_B) >> 4);
#pragma unroll
                for (int kk = 0; kk < BK / 16; ++kk) wgmma_m64k16<128>(acc, da0 + 2 * kk, db0 + 2 * kk, (kb | kk) != 0);
                wgmma_commit();
                fence_operand(acc);
                wgmma_wait<1>();
                fence_operand(acc);
                if (kb > 0 && lane0) mbar_arrive(empty_bar + 8 * (s == 0 ? stages - 1 : s - 1));
                if (++s == stages) {
                    s = 0;
                    phase ^= 1;
                }
            }
            wgmma_wait<0>();
            fence_operand(acc);
            if (lane0) mbar_arrive(empty_bar + 8 * (s == 0 ? stages - 1 : s - 1));
            epilogue<128, Epi::SwiGlu, Store::Stg, 0, Silu::Fast>(acc, staging, wtid, 1, reinterpret_cast<char*>(pr.c),
                                                               (long long)pr.ldc * 2, 0, rows, t.n_tile * 128,
                                                               G.n / 2, false, 0ull);
        }
    }
    // this CTA's activations are stored: arrive (the producer waits for everyone before down's A rows)
    named_barrier_sync(1, 128);
    if (wtid == 0) grid_arrive(grid_bar, generation, gridDim.x);
    {
        // down, as gemm_sm90_narrow<16, F32> with 3-D boxes; stage j's A in slot j % na at the start of the area
        constexpr uint32_t B_BYTES = b_tile_bytes(MLP_DOWN_BN);
        const bool accumulate = D.accumulate != 0;
        const int pf_st = (dn_k_blocks > 6 ? dn_k_blocks - 6 : 0) / MLP_DOWN_KS;
        float acc[MLP_DOWN_BN / 2];
#pragma unroll
        for (int i = 0; i < MLP_DOWN_BN / 2; ++i) acc[i] = 0.0f;
        TileWalk<BM, GemmSm90Params> dn(D, dn_tiles_n, blockIdx.x, gridDim.x);
        int j = 0;
        while (dn.advance(t)) {
            const GemmSm90Problem& pr = D.problems[t.p];
            const int rows = pr.m;
            char* const c_base = reinterpret_cast<char*>(pr.c);
            const long long ldc_bytes = (long long)pr.ldc * 4;
            for (int st = 0; st < dn_k_stages; ++st, ++j) {
                const int nkb = __shfl_sync(0xffffffffu, min(MLP_DOWN_KS, dn_k_blocks - st * MLP_DOWN_KS), 0);
                mbar_wait(full_bar + 8 * s, phase);
                fence_operand(acc);
                wgmma_fence();
                const uint64_t da0 = desc0 + (((uint32_t)(j % na) * MLP_DOWN_A_STAGE) >> 4);
                const uint64_t db0 = desc0 + ((a_area + (uint32_t)s * MLP_STAGE_B) >> 4);
                if (nkb == MLP_DOWN_KS) {
#pragma unroll
                    for (int jj = 0; jj < MLP_DOWN_KS; ++jj) {
#pragma unroll
                        for (int kk = 0; kk < BK / 16; ++kk) {
                            wgmma_m64k16<MLP_DOWN_BN>(acc, da0 + jj * (MLP_DOWN_A_SLOT >> 4) + 2 * kk,
                                                      db0 + jj * (B_BYTES >> 4) + 2 * kk, (st | jj | kk) != 0);
                        }
                    }
                } else {
                    for (int jj = 0; jj < nkb; ++jj) {
#pragma unroll
                        for (int kk = 0; kk < BK / 16; ++kk) {
                            wgmma_m64k16<MLP_DOWN_BN>(acc, da0 + jj * (MLP_DOWN_A_SLOT >> 4) + 2 * kk,
                                                      db0 + jj * (B_BYTES >> 4) + 2 * kk, (st | jj | kk) != 0);
                        }
                    }
                }
                wgmma_commit();
                fence_operand(acc);
                if (accumulate && st == pf_st) {
                    prefetch_c_rows<MLP_DOWN_BN>(c_base, ldc_bytes, 0, rows, t.n_tile * MLP_DOWN_BN, D.n, wtid);
                }
                wgmma_wait<1>();
                fence_operand(acc);
                if (st > 0 && lane0) mbar_arrive(empty_bar + 8 * (s == 0 ? stages - 1 : s - 1));
                if (++s == stages) {
                    s = 0;
                    phase ^= 1;
                }
            }
            wgmma_wait<0>();
            fence_operand(acc);
            if (lane0) mbar_arrive(empty_bar + 8 * (s == 0 ? stages - 1 : s - 1));
            epilogue<MLP_DOWN_BN, Epi::F32, Store::Stg, 0, Silu::Exact>(acc, staging, wtid, 1, c_base, ldc_bytes, 0,
                                                                       rows, t.n_tile * MLP_DOWN_BN, D.n,
                                                                       accumulate, D.mirror_k);
        }
    }
}
