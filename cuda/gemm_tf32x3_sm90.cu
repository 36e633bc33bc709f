/*
Grouped f32 GEMM on tensor cores for sm_90a ("3xTF32"), for the ARMT associative memory, whose state A (D x d) is
f32: the read phi(q).A, the write's K.A (both NN) and the update A += K^T.U (TN). Each f32 operand x is split into
two tf32 values, hi = rna_tf32(x) and lo = rna_tf32(x - hi), and every k step accumulates
    lo_a.hi_b + hi_a.lo_b + hi_a.hi_b          (wgmma m64n128k8 .tf32, f32 accumulators)
which drops only lo_a.lo_b (|.| <= 2^-22 |a.b|) and the roundings of the lo parts (<= 2^-23 |a.b| each). To keep the
tensor core's own accumulation (truncating, not rounding) from drifting over long k, each k-block of 32 is
accumulated from zero and then added to the running f32 sums with ordinary round-to-nearest adds. Measured error
against a double reference: the harness (cuda/dev/gemm_tf32x3_sm90.cu) prints it; the contract is <= 1e-5 relative
(||out - ref|| / ||ref||) at k = 128 and 384.

For every problem p of a launch (n, k shared by the launch; m per problem):
  gemm_sm90_nn_f32_f32_f32_tf32x3:  C_p[m_p, n] (+)= A_p[m_p, k] . B_p[k, n]      A_p row-major, B_p row-major
  gemm_sm90_tn_f32_f32_f32_tf32x3:  C_p[m_p, n] (+)= A_p[k, m_p]^T . B_p[k, n]    A_p stored [k, m_p] row-major
with C_p row-major (ldc), params.accumulate != 0: C = C + product (C read once, one f32 add, written once).
Operands come through two TMA tensor maps (f32, rank 2; built by the host with cuTensorMapEncodeTiled,
INTERLEAVE_NONE, L2_PROMOTION_L2_256B, FLOAT_OOB_FILL_NONE, element strides {1, 1}, 16-byte aligned base):
  A map, NN: dims {k_cols, rows}, row stride lda*4 bytes, box {32, 128}, SWIZZLE_128B; problem p's A_p[i][j] is at
             (column j, row a_row_p + i).  (The phi / K buffer [rows, D].)
  A map, TN: dims {m_cols, rows}, row stride lda*4 bytes, box {32, 32},  SWIZZLE_128B; problem p's stored A_p[kk][i]
             (the transposed operand) is at (column i, row a_row_p + kk).  (The K buffer [cells * M, D].)
  B map:     dims {n, rows},      row stride ldb*4 bytes, box {128, 32}, SWIZZLE_NONE; B_p[kk][j] is at
             (column j, row b_row_p + kk).  (The stacked states [S * D, d], or U [cells * M, d].)
Parameters: GemmTf32x3Params below (the same 1560-byte layout as GemmSm90Params; b_row means the B row of k = 0).
Requirements: k % 32 == 0 (a k-block never reads another problem's rows), n % 4 == 0, lda % 4 == 0, ldb % 4 == 0,
ldc % 4 == 0, every C address 16-byte aligned, 1 <= count <= 64, m_p >= 0, map rows < 2^31.
Launch: grid = number of SMs (any grid >= 1 is correct), block 384, dynamic shared memory tf32x3::smem_bytes() =
231496 bytes (set cudaFuncAttributeMaxDynamicSharedMemorySize), no cluster. Tiles 128 x 128 (one shape, so a
problem's bits depend only on its own operands: the same bytes alone or grouped, with any grid).

Structure (per CTA; persistent over the tile list of sm90/scheduler.cuh, rows fastest; 3 warpgroups):
  warp 8 (lane 0), producer: per k-block of 32, waits for an empty stage and loads A's 128 x 32 block (NN: one box;
    TN: four 32 x 32 boxes) and B's 32 x 128 block (one box) with TMA, completing on the stage's full barrier.
  warps 9-11, converters (96 threads): per stage, once it is full, read B's f32 block [32 k][128 n] and write its
    hi and lo tf32 tiles in the K-major 128B-swizzled layout wgmma wants ([128 n][32 k], 16-byte chunk c of row n at
    (c ^ (n % 8)) * 16: tf32 wgmma cannot transpose), fence.proxy.async, then arrive on the stage's conv barrier.
  warpgroups 0 and 1, consumers: warpgroup w owns rows 64w .. 64w+63 of the tile. Per k-block: wait full and conv,
    read its A fragments straight from the f32 block (the register-A wgmma layout; NN and TN differ only here),
    split them into hi/lo in registers, issue 4 x (3 wgmma m64n128k8), wait, add the k-block's products to the
    running sums, release the stage. Epilogue: sm90/epilogue.cuh (f32, accumulate), the same code as the bf16 GEMM.
Determinism: no split-K, no atomics, a fixed order over k (k-blocks in order; inside one, k8 steps in order, each
lo.hi, hi.lo, hi.hi), so a problem's bytes never depend on the others of its launch or on the grid.
Work: 2 m n k FLOP per problem (6 m n k on the tensor cores); bytes at least 4 (m k + k n + m n) (+ 4 m n to read C).
*/
#include <stdint.h>

#include "sm90/epilogue.cuh"
#include "sm90/mbarrier.cuh"
#include "sm90/scheduler.cuh"
#include "sm90/tf32_split.cuh"
#include "sm90/tma.cuh"
#include "sm90/warpgroup.cuh"
#include "sm90/wgmma.cuh"
#include "common/pdl.cuh"

#define GEMM_TF32X3_MAX_PROBLEMS 64

// One problem (24 bytes, 8-byte aligned).
typedef struct {
    unsigned long long c;  //  0: device address of C_p[0][0], 16-byte aligned (f32)
    int a_row;             //  8: NN: row of the A map holding A_p[0][*]; TN: row holding stored A_p[0][*] (k = 0)
    int b_row;             // 12: row of the B map holding B_p[0][*] (k = 0)
    int m;                 // 16: rows of C_p, >= 0 (0: no work)
    int ldc;               // 20: row stride of C_p in f32 elements (multiple of 4)
} GemmTf32x3Problem;

// The launch (1560 bytes; the parameters with the two maps take 1816 bytes).
typedef struct {
    GemmTf32x3Problem problems[GEMM_TF32X3_MAX_PROBLEMS];  //    0
    int count;       // 1536: problems used, 1 .. 64
    int n;           // 1540: columns of every C_p (multiple of 4)
    int k;           // 1544: the summed dimension (multiple of 32)
    int accumulate;  // 1548: nonzero -> C += product
    unsigned long long mirror_k;  // 1552: unused here (GemmSm90Params' bf16 mirror; the launcher passes 0)
} GemmTf32x3Params;

static_assert(sizeof(GemmTf32x3Problem) == 24, "GemmTf32x3Problem layout is mirrored by the Rust launcher");
static_assert(sizeof(GemmTf32x3Params) == 24 * GEMM_TF32X3_MAX_PROBLEMS + 24, "GemmTf32x3Params layout is mirrored");

// The launch contract, checked on the host (the harness calls it before every launch; the Rust launcher mirrors
// it). tn: 0 for the NN entry, 1 for TN. lda, ldb: row strides (f32 elements) of the buffers the A and B maps cover;
// a_cols: the A map's globalDim[0] (NN: k columns, TN: the m columns of the stored [k, m] blocks); b_cols: the B
// map's globalDim[0] (n). Returns nullptr when every requirement holds, else the first broken one.
// The tensor-map rules behind the stride conditions (cuTensorMapEncodeTiled): global address 16-byte aligned,
// globalStrides multiples of 16 bytes (so lda, ldb % 4 == 0), boxDim[i] in 1..256, boxDim[0]*4 a multiple of 16,
// and with SWIZZLE_128B boxDim[0]*4 <= 128 (the A boxes are 32 f32 wide: exactly the span).
inline const char* gemm_tf32x3_check(const GemmTf32x3Params* p, int tn, long long lda, long long ldb,
                                     long long a_cols, long long b_cols) {
    if (p->count < 1 || p->count > GEMM_TF32X3_MAX_PROBLEMS) return "count must be 1..64";
    if (p->n <= 0 || p->n % 4 != 0) return "n must be a positive multiple of 4";
    if (p->k <= 0 || p->k % 32 != 0) return "k must be a positive multiple of 32";
    if (lda % 4 != 0 || ldb % 4 != 0) return "lda and ldb must be multiples of 4 (16-byte tensor-map strides)";
    if (a_cols < 1 || lda < a_cols) return "lda must be >= the A map's column count";
    if (b_cols < p->n || ldb < b_cols) return "the B map must cover n columns (ldb >= its column count >= n)";
    if (!tn && a_cols < p->k) return "NN: the A map must cover k columns";
    for (int i = 0; i < p->count; ++i) {
        const GemmTf32x3Problem& q = p->problems[i];
        if (q.m < 0) return "m must be >= 0";
        if (q.m == 0) continue;
        if (q.c % 16 != 0) return "every C address must be 16-byte aligned";
        if (q.ldc % 4 != 0 || q.ldc < p->n) return "ldc must be a multiple of 4 and >= n";
        if (q.a_row < 0 || q.b_row < 0) return "map rows must be >= 0";
        if (tn && a_cols < q.m) return "TN: the A map must cover m columns";
    }
    return nullptr;
}

namespace tf32x3 {

using sm90::TmaMap;
using sm90::lds_f32;
using sm90::sts_v4;
using sm90::to_tf32;

constexpr int BM = 128;       // tile rows: two consumer warpgroups of 64
constexpr int BN = 128;       // tile columns
constexpr int BK = 32;        // k per stage: 128 bytes of f32, one 128B swizzle row
constexpr int STAGES = 3;
constexpr int THREADS = 384;  // 2 consumer warpgroups + producer warp + 3 converter warps
constexpr int PRODUCER_REGS = 40;
constexpr int CONSUMER_REGS = 232;
constexpr int CONVERTERS = 96;  // threads 288 .. 383

// Tensor-map boxes (host and device agree on them; the transaction count is A_BYTES + B_RAW_BYTES).
constexpr int A_BOX_COLS = 32;      // A maps: 32 f32 = 128 bytes inner, SWIZZLE_128B
constexpr int A_BOX_ROWS_NN = 128;  // NN: one box per k-block
constexpr int A_BOX_ROWS_TN = 32;   // TN: four boxes per k-block (m0 + 32j, k rows)
constexpr int B_BOX_COLS = 128;     // B map: 128 f32 = 512 bytes inner, SWIZZLE_NONE
constexpr int B_BOX_ROWS = 32;

constexpr int A_BYTES = BM * BK * 4;      // 16384: A block (NN: [128 m][32 k] swizzled; TN: 4 x [32 k][32 m])
constexpr int B_RAW_BYTES = BK * BN * 4;  // 16384: B block [32 k][128 n], dense
constexpr int B_CONV_BYTES = BN * BK * 4; // 16384: one converted tile [128 n][32 k] tf32, swizzled
constexpr int STAGE_BYTES = A_BYTES + B_RAW_BYTES + 2 * B_CONV_BYTES;  // 65536
static_assert(A_BOX_COLS * 4 == 128 && A_BOX_COLS == BK, "A boxes: one 128-byte swizzle row of k (NN) or m (TN)");
static_assert(A_BOX_COLS * A_BOX_ROWS_NN * 4 == A_BYTES && 4 * A_BOX_COLS * A_BOX_ROWS_TN * 4 == A_BYTES,
              "the A boxes fill the A block");
static_assert(B_BOX_COLS == BN && B_BOX_ROWS == BK && B_BOX_COLS * B_BOX_ROWS * 4 == B_RAW_BYTES && B_BOX_COLS <= 256,
              "the B box is the raw B block");

__host__ __device__ constexpr int smem_bytes() { return STAGES * STAGE_BYTES + 2 * sm90::STAGING_BYTES + 3 * STAGES * 8; }
static_assert(smem_bytes() <= 232448, "fits the 227 KB of dynamic shared memory per block");
static_assert(PRODUCER_REGS * 128 + CONSUMER_REGS * 256 <= 65536, "register file");

enum class Layout { NN, TN };

// Keeps a register-A fragment alive (and unmodified) up to this point for the compiler: called after the
// wgmma.wait_group that completes the instructions reading it.
__device__ __forceinline__ void keep(const uint32_t (&a)[4]) {
    asm volatile("" ::"r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]));
}

// Shared-memory address of A[r][c] (tile row r = m, column c = k) inside the stage's A block.
//   NN: one 128B-swizzled box [128 rows][32 k]: row r at r * 128, 16-byte chunk c/4 at ((c/4) ^ (r % 8)) * 16.
//   TN: four boxes [32 k][32 m] (box j holds m = 32j .. 32j+31): the element A[r][c] = stored[c][r] is in box r/32,
//       row c, chunk ((r % 32)/4) ^ (c % 8).
template <Layout L>
__device__ __forceinline__ uint32_t a_addr(uint32_t a_blk, int r, int c) {
    if constexpr (L == Layout::NN) {
        return a_blk + (uint32_t)(r * 128 + ((((c >> 2) ^ (r & 7)) << 4)) + (c & 3) * 4);
    } else {
        return a_blk + (uint32_t)((r >> 5) * 4096 + c * 128 + (((((r & 31) >> 2) ^ (c & 7)) << 4)) + (r & 3) * 4);
    }
}

// SPLIT (the TN update of the memory write, accumulating): the epilogue also writes the new C in the fused read's
// pre-split form (sm90/epilogue.cuh's SplitOut): problem p's C is state s = (c − c_base) / (m·n·4) of the stacked
// states, whose split rows start at split_base + s·n·2m u32 (m = D, n = d; the launcher checks both).
// PREP (the NN kφ·A of the memory write, not accumulating): the epilogue stores the write's rows u = β·(V − ka/δ)
// instead of ka (sm90/epilogue.cuh's PrepIn; the kφ row of problem p's row r is a_row + r).
template <Layout L, bool SPLIT = false, bool PREP = false>
__device__ __forceinline__ void gemm_tf32x3(const TmaMap& a_map, const TmaMap& b_map, const GemmTf32x3Params& P,
                                            unsigned long long c_base = 0, unsigned long long split_base = 0,
                                            sm90::PrepIn prep = {}) {
    using namespace sm90;
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    const uint32_t base = smem_u32(smem_raw);
    if (base & 1023u) __trap();  // the 128B swizzle needs 1024-byte aligned tiles
    // Stage s: A block | B raw block | B hi tile | B lo tile (each 16 KB, 1024-aligned).
    auto a_blk = [&](int s) { return base + (uint32_t)(s * STAGE_BYTES); };
    auto b_raw = [&](int s) { return base + (uint32_t)(s * STAGE_BYTES + A_BYTES); };
    auto b_hi = [&](int s) { return base + (uint32_t)(s * STAGE_BYTES + A_BYTES + B_RAW_BYTES); };
    auto b_lo = [&](int s) { return base + (uint32_t)(s * STAGE_BYTES + A_BYTES + B_RAW_BYTES + B_CONV_BYTES); };
    const uint32_t staging = base + STAGES * STAGE_BYTES;     // 2 x STAGING_BYTES
    const uint32_t full_bar = staging + 2 * STAGING_BYTES;    // STAGES x 8: TMA bytes landed
    const uint32_t conv_bar = full_bar + STAGES * 8;          // STAGES x 8: B hi/lo tiles written
    const uint32_t empty_bar = conv_bar + STAGES * 8;         // STAGES x 8: stage consumed

    const int wg = __shfl_sync(0xffffffffu, (int)threadIdx.x / 128, 0);
    const int tiles_n = (P.n + BN - 1) / BN;
    const int k_blocks = P.k / BK;

    if (threadIdx.x == 256) {
        tma_prefetch_map(&a_map);
        tma_prefetch_map(&b_map);
#pragma unroll
        for (int s = 0; s < STAGES; ++s) {
            mbar_init(full_bar + 8 * s, 1);
            mbar_init(conv_bar + 8 * s, CONVERTERS / 32);
            mbar_init(empty_bar + 8 * s, 8);  // 8 consumer warps
        }
        mbar_fence_init();
    }
    __syncthreads();

    TileWalk<BM, GemmTf32x3Params> walk(P, tiles_n, blockIdx.x, gridDim.x);

    if (wg == 2) {
        setmaxnreg_dec<PRODUCER_REGS>();
        if (threadIdx.x == 256) {
            // ---------------- producer ----------------
            Tile t;
            int s = 0;
            uint32_t phase = 0;
            while (walk.advance(t)) {
                const GemmTf32x3Problem& pr = P.problems[t.p];
                const int m0 = t.m_tile * BM, n0 = t.n_tile * BN;
                for (int kb = 0; kb < k_blocks; ++kb) {
                    const uint32_t full = full_bar + 8 * s;
                    mbar_wait(empty_bar + 8 * s, phase ^ 1);
                    mbar_arrive_expect_tx(full, A_BYTES + B_RAW_BYTES);
                    if constexpr (L == Layout::NN) {
                        tma_load_2d(a_blk(s), &a_map, full, kb * BK, pr.a_row + m0);
                    } else {
#pragma unroll
                        for (int j = 0; j < 4; ++j)
                            tma_load_2d(a_blk(s) + j * 4096, &a_map, full, m0 + 32 * j, pr.a_row + kb * BK);
                    }
                    tma_load_2d(b_raw(s), &b_map, full, n0, pr.b_row + kb * BK);
                    if (++s == STAGES) {
                        s = 0;
                        phase ^= 1;
                    }
                }
            }
        } else if (threadIdx.x >= 256 + 32) {
            // ---------------- converters: B [32 k][128 n] f32 -> hi, lo [128 n][32 k] tf32 ----------------
            // Item i = (chunk c = i / 128, column n = i % 128): k = 4c .. 4c+3 of column n, one 16-byte chunk of
            // each converted tile. A warp takes 32 consecutive n of one chunk: its loads read 32 consecutive words
            // of a row, its 16-byte stores hit 32 rows whose chunks spread over all banks (4 wavefronts for 512 B).
            const int ctid = threadIdx.x - (256 + 32);
            const bool lane0 = (threadIdx.x & 31) == 0;
            Tile t;
            int s = 0;
            uint32_t phase = 0;
            while (walk.advance(t)) {
                for (int kb = 0; kb < k_blocks; ++kb) {
                    mbar_wait(full_bar + 8 * s, phase);
                    const uint32_t raw = b_raw(s), hi = b_hi(s), lo = b_lo(s);
                    static_assert(BK == 32, "convert_stage converts 32 k per stage");
                    sm90::convert_stage<BN, CONVERTERS, false>(raw, hi, lo, ctid);
                    // Generic-proxy writes, read next by wgmma (async proxy): fence, then publish the stage.
                    fence_proxy_async_shared();
                    __syncwarp();
                    if (lane0) mbar_arrive(conv_bar + 8 * s);
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
        const int lane = threadIdx.x & 31;
        const bool lane0 = lane == 0;
        const int g = lane >> 2, tq = lane & 3;
        const int frag_row = wg * 64 + (wtid >> 5) * 16 + g;  // this thread's A rows: frag_row and frag_row + 8
        const uint32_t buf = staging + wg * STAGING_BYTES;
        const bool accumulate = P.accumulate != 0;
        const int pf_kb = k_blocks > 6 ? k_blocks - 6 : 0;

        float acc[BN / 2];  // the current k-block's products (from zero)
        float sum[BN / 2];  // the tile's running sums (round-to-nearest adds of the k-blocks)
#pragma unroll
        for (int i = 0; i < BN / 2; ++i) acc[i] = 0.0f;

        Tile t;
        int s = 0;
        uint32_t phase = 0;
        while (walk.advance(t)) {
            const GemmTf32x3Problem& pr = P.problems[t.p];
            const int row0 = t.m_tile * BM + wg * 64;
            const int rows = pr.m - row0;
            char* const c_base_p = reinterpret_cast<char*>(pr.c);
            const long long ldc_bytes = (long long)pr.ldc * 4;
            const bool active = __shfl_sync(0xffffffffu, (int)(rows > 0), 0) != 0;
            if (active) {
#pragma unroll
                for (int i = 0; i < BN / 2; ++i) sum[i] = 0.0f;
                for (int kb = 0; kb < k_blocks; ++kb) {
                    mbar_wait(full_bar + 8 * s, phase);
                    mbar_wait(conv_bar + 8 * s, phase);
                    // A fragments of the 4 k8 steps (register-A layout, see wgmma_ops.cuh), split into hi / lo.
                    uint32_t ah[4][4], al[4][4];
                    const uint32_t ab = a_blk(s);
#pragma unroll
                    for (int kk = 0; kk < 4; ++kk) {
#pragma unroll
                        for (int v = 0; v < 4; ++v) {
                            const float x = lds_f32(a_addr<L>(ab, frag_row + 8 * (v & 1), 8 * kk + tq + 4 * (v >> 1)));
                            ah[kk][v] = to_tf32(x);
                            al[kk][v] = to_tf32(x - __uint_as_float(ah[kk][v]));
                        }
                    }
                    const uint64_t dh = wgmma_desc_k128(b_hi(s));
                    const uint64_t dl = wgmma_desc_k128(b_lo(s));
                    fence_operand(acc);
                    wgmma_fence();
#pragma unroll
                    for (int kk = 0; kk < 4; ++kk) {
                        // +32 bytes per k8 step inside the 128-byte swizzled row (as the bf16 GEMM's k16 steps).
                        wgmma_m64k8_tf32_rs<BN>(acc, al[kk], dh + 2 * kk, kk != 0);
                        wgmma_m64k8_tf32_rs<BN>(acc, ah[kk], dl + 2 * kk, 1);
                        wgmma_m64k8_tf32_rs<BN>(acc, ah[kk], dh + 2 * kk, 1);
                    }
                    wgmma_commit();
                    fence_operand(acc);
                    wgmma_wait<0>();
                    fence_operand(acc);
#pragma unroll
                    for (int kk = 0; kk < 4; ++kk) {
                        keep(ah[kk]);
                        keep(al[kk]);
                    }
#pragma unroll
                    for (int i = 0; i < BN / 2; ++i) sum[i] += acc[i];
                    if (accumulate && kb == pf_kb) {
                        prefetch_c_rows<BN>(c_base_p, ldc_bytes, row0, rows, t.n_tile * BN, P.n, wtid);
                    }
                    // Release the stage. Our reads of the A block (generic proxy) have returned their values: the
                    // arrive's release orders them before the producer's next TMA write into it (no proxy fence is
                    // needed for a read followed by an async-proxy write; CUTLASS's pipelines rely on the same).
                    __syncwarp();
                    if (lane0) mbar_arrive(empty_bar + 8 * s);
                    if (++s == STAGES) {
                        s = 0;
                        phase ^= 1;
                    }
                }
                if constexpr (SPLIT) {
                    const unsigned long long state = (pr.c - c_base) / ((unsigned long long)pr.m * P.n * 4);
                    const SplitOut so{reinterpret_cast<uint32_t*>(split_base) + state * P.n * 2 * pr.m, 2 * pr.m};
                    epilogue<BN, Epi::F32, Store::Stg, 0, Silu::Exact, true>(sum, buf, wtid, 1 + wg, c_base_p,
                                                                             ldc_bytes, row0, rows, t.n_tile * BN, P.n,
                                                                             accumulate, 0, so);
                } else if constexpr (PREP) {
                    PrepIn pin = prep;
                    pin.row = pr.a_row + row0;
                    epilogue<BN, Epi::F32, Store::Stg, 0, Silu::Exact, false, true>(sum, buf, wtid, 1 + wg, c_base_p,
                                                                              ldc_bytes, row0, rows, t.n_tile * BN,
                                                                              P.n, false, 0, {}, pin);
                } else {
                    epilogue<BN, Epi::F32, Store::Stg>(sum, buf, wtid, 1 + wg, c_base_p, ldc_bytes, row0, rows,
                                                       t.n_tile * BN, P.n, accumulate);
                }
            } else {
                for (int kb = 0; kb < k_blocks; ++kb) {
                    mbar_wait(full_bar + 8 * s, phase);
                    mbar_wait(conv_bar + 8 * s, phase);
                    if (lane0) mbar_arrive(empty_bar + 8 * s);
                    if (++s == STAGES) {
                        s = 0;
                        phase ^= 1;
                    }
                }
            }
        }
    }
}

}  // namespace tf32x3

extern "C" __global__ void __launch_bounds__(tf32x3::THREADS, 1)
    gemm_sm90_nn_f32_f32_f32_tf32x3(const __grid_constant__ sm90::TmaMap a_map,
                                    const __grid_constant__ sm90::TmaMap b_map,
                                    const __grid_constant__ GemmTf32x3Params params) { pdl_entry();
    tf32x3::gemm_tf32x3<tf32x3::Layout::NN>(a_map, b_map, params);
}

extern "C" __global__ void __launch_bounds__(tf32x3::THREADS, 1)
    gemm_sm90_tn_f32_f32_f32_tf32x3(const __grid_constant__ sm90::TmaMap a_map,
                                    const __grid_constant__ sm90::TmaMap b_map,
                                    const __grid_constant__ GemmTf32x3Params params) { pdl_entry();
    tf32x3::gemm_tf32x3<tf32x3::Layout::TN>(a_map, b_map, params);
}

// The memory update A += kφᵀ·u that also writes the new A's pre-split form (SPLIT above): the same A as
// gemm_sm90_tn_f32_f32_f32_tf32x3, and the split armt_state_split_tf32bf16 would make of it, in one launch.
// c_base: the stacked states' first element (every problem's C is one whole state); split_base: their split rows.
extern "C" __global__ void __launch_bounds__(tf32x3::THREADS, 1)
    gemm_sm90_tn_f32_f32_f32_tf32x3_split(const __grid_constant__ sm90::TmaMap a_map,
                                          const __grid_constant__ sm90::TmaMap b_map,
                                          const __grid_constant__ GemmTf32x3Params params, unsigned long long c_base,
                                          unsigned long long split_base) { pdl_entry();
    tf32x3::gemm_tf32x3<tf32x3::Layout::TN, true>(a_map, b_map, params, c_base, split_base);
}

// The memory write's kφ·A whose epilogue makes the write's rows u = β·(V − ka/δ) (PREP above) instead of storing ka:
// the bits of gemm_sm90_nn_f32_f32_f32_tf32x3 followed by armt_write_prep_f32, in one launch. kvb: the fused write
// product (row stride kvb_ld, V at column v_col); stats: {δ, β} per kφ row (armt_write_features_f32).
extern "C" __global__ void __launch_bounds__(tf32x3::THREADS, 1)
    gemm_sm90_nn_f32_f32_f32_tf32x3_prep(const __grid_constant__ sm90::TmaMap a_map,
                                         const __grid_constant__ sm90::TmaMap b_map,
                                         const __grid_constant__ GemmTf32x3Params params, const float* kvb, int kvb_ld,
                                         int v_col, const float* stats) { pdl_entry();
    tf32x3::gemm_tf32x3<tf32x3::Layout::NN, false, true>(a_map, b_map, params, 0, 0,
                                                         sm90::PrepIn{kvb, stats, kvb_ld, v_col, 0});
}
