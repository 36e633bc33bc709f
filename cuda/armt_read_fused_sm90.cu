/*
ARMT's associative read in one pass (armt-spec §1.3), sm_90a: for every cell of a step and every row r of it,
    h[r] += φ(u[r])·A / (φ(u[r])·z + ε)          u = h·W_qᵀ (already computed, f32 [rows, d_mem]), φ = DPFP(ν)
with the cell's own state A[state] (f32 [D, d]) and z[state] (f32 [D]), straight into the f32 hidden rows. It replaces
dpfp_f32 + gemm_sm90_nn_f32_f32_f32_tf32x3 (φ·A) + armt_read_apply_f32: no φ buffer, no num buffer, one launch.

  - φ is never stored: each consumer thread computes the DPFP features of its register-A fragment (its two rows, the
    features f ≡ lane % 4 of each k-block) from the tile's u rows in shared memory, in the shadow of the previous
    k-block's tensor-core work, and splits them into the tf32 parts in registers.
  - φ·A is the 3×TF32 product of gemm_tf32x3_sm90.cu (Split::Tf32x3: lo·hi + hi·lo + hi·hi, each k-block of 32
    accumulated from zero and added to the running f32 sums with round-to-nearest adds), or (Split::Tf32Bf16, the
    engine's since 2026-12-01) hi·hi in tf32 plus both corrections in one bf16 wgmma: A' = [bf16(lo_a), bf16(hi_a)] against
    B' = [bf16(hi_b), bf16(lo_b)] interleaved along k (2/3 of the tensor work; the bf16 roundings of the correction
    operands cost <= 2^-19 of a product, ~1e-6 of a sum).
  - φ·z: the same thread accumulates φ_f·z_f of the features it computes (an f32 fma chain in k order), the four lanes
    of a row are added with two xor shuffles (the same bits in all four), then + ε.
  - the epilogue divides the row's sums by the denominator (r = RN(1/den); q = RN(num·r); q += RN(num − den·q)·r:
    Markstein's correctly rounded quotient, den >= ε is normal) and adds them into h through sm90/epilogue.cuh's f32
    accumulate path (h prefetched into L2 during the mainloop): h + num/den, one division and one add, as
    armt_read_apply_f32 computes it.

Entries: armt_read_fused_sm90_f32 (Split::Tf32x3) and armt_read_fused_sm90_tf32bf16_f32 (Split::Tf32Bf16), each also
at narrow column tiles (below). Signature (u_map, a_map, ReadFusedParams), all by value (__grid_constant__).
Tensor maps (cuTensorMapEncodeTiled, FLOAT32, rank 2, INTERLEAVE_NONE, L2_256B, OOB zero fill, 16-byte aligned base):
  u map: dims {d_mem, rows}, row stride u_ld*4 bytes, box {d_mem + 4, 128}, SWIZZLE_NONE; the cell's row i of u is at
         (column 0.., row u_row + i). One box per tile lands as [128 rows][d_mem + 4] (4 zero-filled pad columns).
  A map: dims {d, S*D}, row stride a_ld*4 bytes, box {128, 32}, SWIZZLE_NONE; A[state][k][c] is at (c, a_row + k)
         (the stacked states [S*D, d], a_row = state*D), as gemm_tf32x3_sm90.cu's B map.
Requirements (read_fused_check below; the Rust launcher mirrors it): d_mem ∈ {32, 64} (the features of a k-block of
32 then lie in one DPFP block and one half of x; the u tile fits), D = 2·ν·d_mem ≤ 512, n = d a positive multiple of
4, u_ld and a_ld multiples of 4, every h address 16-byte aligned and h_ld % 4 == 0, z 16-byte aligned, count 1..64.
Launch: grid = min(#SMs, tiles) (any grid >= 1 gives the same bytes), block 384, dynamic shared memory
read_fused::smem_bytes() (traps if less), no cluster. Tiles 128 × 128 (armt_read_fused_sm90_f32 and _tf32bf16_f32).
Narrow column tiles (2026-12-01, for decode steps: one row gives only d/128 = 16 tiles): armt_read_fused_sm90_n64_f32
and armt_read_fused_sm90_n32_f32 (3×TF32), armt_read_fused_sm90_tf32bf16_n{64,32}_f32 (tf32 + bf16) take tiles of 128 rows × 64 or 32 columns, the A map's box {64 or 32, 32},
read_fused::smem_bytes_for(64 or 32) of shared memory (6 or 8 stages). Same per-element arithmetic as the 128-wide
entry (a column's products, running sums, the row's features and denominator and the division do not depend on the
column tile; the launcher may choose the width by rows, check/armt_read_fused_sm90.rs checks the bytes are equal).

Structure (per CTA; persistent over sm90/scheduler.cuh's tile list, rows fastest; 3 warpgroups), as gemm_tf32x3:
  warp 8 lane 0, producer: per tile, once the consumers have released the u buffer, the tile's u rows and its
    state's z (u_full);
    per k-block, A's [32 k][128 n] f32 block into a free stage (full).
  warps 9-11, converters: the stage's A block -> hi and lo (or bf16 pair) K-major 128B-swizzled tiles (conv).
  warpgroups 0, 1, consumers (rows 64w .. 64w+63 of the tile): the loop described above, then the epilogue.
Barriers: full/conv/empty per stage (sm90/mbarrier.cuh's protocol, unchanged), and u_full (count 1 + tx) / u_empty
(count 8 consumer warps) for the single u buffer. Every consumer warp waits every u_full phase and arrives once per
tile on u_empty (a warpgroup without rows right after its wait), so a parity can never be confused: u_full cannot
complete tile t+1's phase before every consumer warp arrived for tile t.
  A 32-column tile whose only row is its first (a decode step's single row) makes that row's features one per lane
    (features_row0: the same φ, split and denominator chain, ~80 instructions a k-block instead of ~305) and zero
    fragments for the other rows (docs/log/armt_read_fused_sm90.md §11).
Determinism: no split-K, no atomics, k-blocks in order, a row's features and denominator computed by the same lanes
in the same order wherever the row sits in a tile: a cell's bytes never depend on the others of its launch, on the
grid, or on its rows' position (decode rows = the same rows inside their segment).
Work: 2·m·D·d FLOP per cell on the tensor cores (×3 or ×2 tf32-equivalent), rows·D·(3 + 2) SIMT FLOP for φ and φ·z;
bytes at least 4·(m·d_mem + S·D·d) + 8·m·d (h read and written).
*/
#include <stdint.h>

#include "common/armt.cuh"
#include "sm90/epilogue.cuh"
#include "sm90/mbarrier.cuh"
#include "sm90/scheduler.cuh"
#include "sm90/tf32_split.cuh"
#include "sm90/tma.cuh"
#include "sm90/warpgroup.cuh"
#include "sm90/wgmma.cuh"
#include "common/pdl.cuh"

#define READ_FUSED_MAX_PROBLEMS 64

// One cell (32 bytes).
typedef struct {
    unsigned long long h;  //  0: device address of the cell's hidden row 0 (f32), 16-byte aligned
    unsigned long long z;  //  8: device address of z[state][0] (f32, D values)
    int u_row;             // 16: row of the u map holding the cell's row 0
    int a_row;             // 20: row of the A map holding A[state][0][*] (state · D)
    int m;                 // 24: rows, >= 0 (0: no work)
    int h_ld;              // 28: row stride of h in f32 elements (multiple of 4)
} ReadFusedProblem;

// The launch (2320 bytes; with three maps the parameters take 2704 bytes).
typedef struct {
    ReadFusedProblem problems[READ_FUSED_MAX_PROBLEMS];  //    0
    int count;  // 2048: problems used, 1 .. 64
    int n;      // 2052: d, the hidden width (multiple of 4)
    int d_mem;  // 2056: 32 or 64
    int nu;     // 2060: DPFP order; D = 2·nu·d_mem <= 512
    // 2064: the fused-q entries (FQ below): problem i's first row of the stacked W_mq (its layer · d_mem); unused else
    int w_row[READ_FUSED_MAX_PROBLEMS];
} ReadFusedParams;

static_assert(sizeof(ReadFusedProblem) == 32, "ReadFusedProblem layout is mirrored by the Rust launcher");
static_assert(sizeof(ReadFusedParams) == 36 * READ_FUSED_MAX_PROBLEMS + 16, "ReadFusedParams layout is mirrored");

// The launch contract, checked on the host (the harness calls it before every launch; the Rust launcher mirrors it).
// u_ld, a_ld: row strides (f32 elements) of the buffers the u and A maps cover. nullptr when every requirement
// holds, else the first broken one.
inline const char* read_fused_check(const ReadFusedParams* p, long long u_ld, long long a_ld) {
    if (p->count < 1 || p->count > READ_FUSED_MAX_PROBLEMS) return "count must be 1..64";
    if (p->n <= 0 || p->n % 4 != 0) return "n (d) must be a positive multiple of 4";
    if (p->d_mem != 32 && p->d_mem != 64) return "d_mem must be 32 or 64";
    if (p->nu < 1 || 2 * p->nu * p->d_mem > 512) return "D = 2 nu d_mem must be 1..512";
    if (u_ld % 4 != 0 || u_ld < p->d_mem) return "u_ld must be a multiple of 4 and >= d_mem";
    if (a_ld % 4 != 0 || a_ld < p->n) return "a_ld must be a multiple of 4 and >= n";
    for (int i = 0; i < p->count; ++i) {
        const ReadFusedProblem& q = p->problems[i];
        if (q.m < 0) return "m must be >= 0";
        if (q.m == 0) continue;
        if (q.h % 16 != 0) return "every h address must be 16-byte aligned";
        if (q.z % 16 != 0) return "every z address must be 16-byte aligned";
        if (q.h_ld % 4 != 0 || q.h_ld < p->n) return "h_ld must be a multiple of 4 and >= n";
        if (q.u_row < 0 || q.a_row < 0) return "map rows must be >= 0";
    }
    return nullptr;
}

namespace read_fused {

using sm90::TmaMap;
using sm90::lds_f32;
using sm90::sts_v4;
using sm90::to_tf32;

enum class Split { Tf32x3, Tf32Bf16 };

constexpr int BM = 128;       // tile rows: two consumer warpgroups of 64
constexpr int BN = 128;       // tile columns of h
constexpr int BK = 32;        // features per stage: 128 bytes of f32, one 128B swizzle row
constexpr int STAGES = 3;
constexpr int THREADS = 384;  // 2 consumer warpgroups + producer warp + 3 converter warps
constexpr int PRODUCER_REGS = 40;
constexpr int CONSUMER_REGS = 232;
constexpr int CONVERTERS = 96;  // threads 288 .. 383
constexpr int MAX_D_MEM = 64;

// Tensor-map boxes (host and device agree on them).
constexpr int U_PAD = 4;         // u map: box {d_mem + U_PAD, 128}, SWIZZLE_NONE (the pad columns are zero fill)
constexpr int U_BOX_ROWS = 128;  // one tile of rows
constexpr int A_BOX_COLS = 128;  // A map: 128 f32 = 512 bytes inner, SWIZZLE_NONE
constexpr int A_BOX_ROWS = 32;

constexpr int U_BYTES = (MAX_D_MEM + U_PAD) * U_BOX_ROWS * 4;    // 34816: the u tile buffer
constexpr int Z_BYTES = 512 * 4;                                  // 2048: z[state] (D <= 512), beside the u tile
constexpr int B_RAW_BYTES = BK * BN * 4;                          // 16384: A block [32 k][128 n], dense
constexpr int B_CONV_BYTES = BN * BK * 4;                         // 16384: one converted tile [128 n][32 k]
constexpr int STAGE_BYTES = B_RAW_BYTES + 2 * B_CONV_BYTES;       // 49152
static_assert(U_BOX_ROWS == BM && A_BOX_COLS == BN && A_BOX_ROWS == BK, "boxes are the tiles");
static_assert(STAGE_BYTES % 1024 == 0 && U_BYTES % 1024 == 0, "swizzled tiles stay 1024-byte aligned");

__host__ __device__ constexpr int smem_bytes() {
    return STAGES * STAGE_BYTES + U_BYTES + Z_BYTES + 2 * sm90::STAGING_BYTES + (3 * STAGES + 2) * 8;
}
static_assert(smem_bytes() <= 232448, "fits the 227 KB of dynamic shared memory per block");

// Column tile widths: BN (the plan above) or the narrow ones, 64 and 32 (stages of 3 x bn x 128 bytes: raw block, hi
// and lo tiles; as many stages as fit, at most 8; the Rust launcher mirrors the sizes). A pre-split read (PRE: the
// state arrives already split, armt_state_split.cu) has no raw block: stages of 2 x bn x 128 bytes, as many as fit
// at every width (4 at 128).
__host__ __device__ constexpr bool bn_ok(int bn) { return bn == BN || bn == 64 || bn == 32; }
__host__ __device__ constexpr int stage_bytes_for(int bn, bool pre = false) { return (pre ? 2 : 3) * BK * bn * 4; }
__host__ __device__ constexpr int stages_for(int bn, bool pre = false) {
    // stages of a narrow plan: as many as the room left beside the fixed buffers takes (24 bytes of barriers each)
    const int fit = (232448 - U_BYTES - Z_BYTES - 2 * sm90::STAGING_BYTES - 16) / (stage_bytes_for(bn, pre) + 24);
    return bn == BN && !pre ? STAGES : (fit > 8 ? 8 : fit);
}
// The fused-q plan (FQ, decode launches at 32 columns): QSTAGES stages of the q product's operands — 64 bf16 rows of
// x (128 bytes of k each) and the layer's W_mq rows (d_mem <= 64 of them) per k-block of 64 — and their barriers.
constexpr int QSTAGES = 4;
constexpr int QX_BYTES = 64 * 128;
constexpr int QW_BYTES = 64 * 128;
__host__ __device__ constexpr int q_bytes_for(bool fq) { return fq ? QSTAGES * (QX_BYTES + QW_BYTES) : 0; }
__host__ __device__ constexpr int smem_bytes_for(int bn, bool pre = false, bool fq = false) {
    return stages_for(bn, pre) * stage_bytes_for(bn, pre) + q_bytes_for(fq) + U_BYTES + Z_BYTES +
           2 * sm90::STAGING_BYTES + (3 * stages_for(bn, pre) + 2 + (fq ? 2 * QSTAGES : 0)) * 8;
}
static_assert(smem_bytes_for(BN) == smem_bytes() && stages_for(64) == 6 && stages_for(32) == 8 &&
                  smem_bytes_for(64) <= 232448 && smem_bytes_for(32) <= 232448,
              "the narrow plans (6 and 8 stages) fit");
static_assert(smem_bytes_for(32, true, true) <= 232448, "the fused-q plan fits");
static_assert(stages_for(BN, true) == 4 && stages_for(64, true) == 8 && stages_for(32, true) == 8 &&
                  smem_bytes_for(BN, true) <= 232448 && smem_bytes_for(64, true) <= 232448,
              "the pre-split plans (4, 8 and 8 stages) fit");
static_assert(PRODUCER_REGS * 128 + CONSUMER_REGS * 256 <= 65536, "register file");

// The u tile in shared memory: [128 rows][d_mem + U_PAD] f32 as TMA writes an unswizzled box (the last U_PAD columns
// are zero fill). A row pitch of d_mem + 4 words (≡ 4 mod 32 banks) puts a warp's 8 rows × 4 consecutive columns on
// 32 different banks, and a feature's address is a row base plus its column: v1 read a 128B-swizzled tile, whose
// address arithmetic (~12 integer instructions a load, redone per row) was most of the features' instructions and
// set the pace of the read (SASS: ~390 instructions per k-block per warp, 300 of them integer).
__host__ __device__ constexpr int u_pitch_bytes(int d_mem) { return (d_mem + U_PAD) * 4; }

// x = [relu(u), relu(−u)] of DPFP: element i < d_mem is relu(u[i]), else relu(−u[i − d_mem]) (fmaxf, as dpfp.cu).
__device__ __forceinline__ float relu_signed(float v, bool negate) { return fmaxf(negate ? -v : v, 0.0f); }

// The register-A fragments of one k-block (4 k8 steps): hi = tf32(φ); lo = tf32(φ − hi) (Tf32x3) or the bf16 pair
// {bf16(φ − hi), bf16(hi)} (Tf32Bf16, the lower column in the low half).
struct Frag {
    uint32_t hi[4][4];
    uint32_t lo[4][4];
};

// Keeps a fragment alive (and unmodified) up to this point for the compiler: called after the wgmma.wait_group
// that completes the instructions reading it.
__device__ __forceinline__ void keep(const Frag& f) {
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
        asm volatile("" ::"r"(f.hi[kk][0]), "r"(f.hi[kk][1]), "r"(f.hi[kk][2]), "r"(f.hi[kk][3]));
        asm volatile("" ::"r"(f.lo[kk][0]), "r"(f.lo[kk][1]), "r"(f.lo[kk][2]), "r"(f.lo[kk][3]));
    }
}

// Development only: with READ_FUSED_TRACE defined (cuda/dev/armt_read_fused_sm90.cu --trace), CTA 0 records the SM
// clock at the events of its roles into g_read_fused_trace (slots in the harness); otherwise the stamps compile away.
#ifdef READ_FUSED_TRACE
__device__ long long g_read_fused_trace[256];
#define READ_TRACE(slot, cond)                                                               \
    do {                                                                                     \
        if (blockIdx.x == 0 && (cond) && (slot) < 256) g_read_fused_trace[(slot)] = clock64(); \
    } while (0)
#else
#define READ_TRACE(slot, cond) ((void)0)
#endif

// A feature's tf32 hi part and its lo register: tf32(φ − hi) (3xTF32) or the bf16 pair {bf16(φ − hi), bf16(hi)}
// (tf32 + bf16), as the A fragments and the one-row path both need them.
template <Split SP>
__device__ __forceinline__ void split_feature(float phi, uint32_t& hi, uint32_t& lo_bits) {
    hi = to_tf32(phi);
    const float lo = phi - __uint_as_float(hi);  // exact
    if constexpr (SP == Split::Tf32x3) lo_bits = to_tf32(lo);
    else lo_bits = sm90::pack_bf16x2(lo, __uint_as_float(hi));
}

// The DPFP features of k-block kb for this thread's rows lr0 and lr0 + 8 (tile rows) and columns f ≡ tq (mod 4):
// feature f = 32 kb + 8 kk + 4 h + tq (k8 step kk, half h) is register v = row + 2h of step kk (the tf32 m64nNk8
// register-A layout). Feature f is block j = f / (2 d_mem) + 1, position i = f % (2 d_mem) of DPFP:
// φ_f = x_i · x_{(i − j) mod 2d_mem} (one rounded f32 product, as reference::dpfp). Also adds φ_f·z_f to den[row].
template <Split SP>
__device__ __forceinline__ void features(Frag& F, float (&den)[2], uint32_t u_buf, uint32_t z_buf, int kb, int lr0,
                                         int tq, int d_mem) {
    const int w = 2 * d_mem;  // 64 or 128: a power of two
    const int f0 = kb * BK;
    const int j = (f0 >> (d_mem == 32 ? 6 : 7)) + 1;  // f0 / w (w = 64 or 128)
    const int i0 = f0 & (w - 1);       // a multiple of 32: the k-block lies in one half of x
    const bool neg_i = i0 >= d_mem;     // uniform over the k-block
    const int ci0 = i0 & (d_mem - 1);  // u column of x_{i0}
    // Feature f0 + 4t + tq: x_i at u column ci0 + 4t + tq; x_k with k = (i0 + 4t + tq − j) mod w, i.e. the unreduced
    // k0 + 4t below: its u column is k & (d_mem − 1) and its sign bit k & d_mem (w = 2 d_mem is a power of two).
    const int k0 = i0 + w - j + tq;
    const uint32_t pitch = (uint32_t)u_pitch_bytes(d_mem);
    const uint32_t row[2] = {u_buf + (uint32_t)lr0 * pitch, u_buf + (uint32_t)(lr0 + 8) * pitch};
    const uint32_t xi_col = (uint32_t)(ci0 + tq) * 4;
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int t = 2 * kk + h;  // feature f0 + 4t + tq
            const int k = k0 + 4 * t;
            const bool neg_k = (k & d_mem) != 0;
            const uint32_t xk_col = (uint32_t)(k & (d_mem - 1)) * 4;
            const float zf = lds_f32(z_buf + 4 * (f0 + 4 * t + tq));  // a broadcast per 8 lanes
#pragma unroll
            for (int rr = 0; rr < 2; ++rr) {
                const float xi = relu_signed(lds_f32(row[rr] + xi_col + 16 * t), neg_i);
                const float xk = relu_signed(lds_f32(row[rr] + xk_col), neg_k);
                const float phi = __fmul_rn(xi, xk);
                den[rr] = __fmaf_rn(phi, zf, den[rr]);
                split_feature<SP>(phi, F.hi[kk][rr + 2 * h], F.lo[kk][rr + 2 * h]);
            }
        }
    }
}

// features() for a tile whose only row is its first (a decode step's single row): the same φ, tf32 split and
// denominator chain of tile row 0 (lanes 0-3 of warp 0 of warpgroup 0), made from one feature per lane and eight
// shuffles instead of each lane's 16 features (~80 instructions a k-block instead of ~305). Every other row's
// fragments are zero: a wgmma output row depends only on its own A row, and those rows are never stored.
template <Split SP>
__device__ __forceinline__ void features_row0(Frag& F, float& den0, uint32_t u_buf, uint32_t z_buf, int kb,
                                              bool row0, int lane, int d_mem) {
    const int w = 2 * d_mem;
    const int f0 = kb * BK;
    const int j = (f0 >> (d_mem == 32 ? 6 : 7)) + 1;
    const int i0 = f0 & (w - 1);
    const bool neg_i = i0 >= d_mem;
    const int ci0 = i0 & (d_mem - 1);
    // this lane's feature f0 + lane (lane = 4t + tq in features()): x_i at u column ci0 + lane, x_k at k below
    const int k = i0 + w - j + lane;
    const float xi = relu_signed(lds_f32(u_buf + (uint32_t)(ci0 + lane) * 4), neg_i);
    const float xk = relu_signed(lds_f32(u_buf + (uint32_t)(k & (d_mem - 1)) * 4), (k & d_mem) != 0);
    const float mine = __fmul_rn(xi, xk);
    const int tq = lane & 3;
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int t = 2 * kk + h;  // feature f0 + 4t + tq, as features() takes them
            const float phi = __shfl_sync(0xffffffffu, mine, 4 * t + tq);
            const float zf = lds_f32(z_buf + 4 * (f0 + 4 * t + tq));
            den0 = __fmaf_rn(phi, zf, den0);
            uint32_t hi, lo_bits;
            split_feature<SP>(phi, hi, lo_bits);
            F.hi[kk][2 * h] = row0 ? hi : 0u;
            F.lo[kk][2 * h] = row0 ? lo_bits : 0u;
            F.hi[kk][1 + 2 * h] = 0u;
            F.lo[kk][1 + 2 * h] = 0u;
        }
    }
}

// The fused q product (FQ below) of warpgroup 0: u[64 rows][N = d_mem] = x·W_mqᵀ over kq_blocks k-blocks of 64 from
// the q stages, exactly gemm_sm90's chain (m64nNk16 in k order, scale_d = 0 on the first, one batch in flight), then
// stored as f32 into the u buffer's rows (pitch d_mem + 4 words), where the u TMA would have put them.
template <int N, typename XAddr, typename WAddr>
__device__ __forceinline__ void q_product(XAddr q_x, WAddr q_w, uint32_t q_full, uint32_t q_empty, int& qs,
                                          uint32_t& q_phase, int kq_blocks, uint32_t u_buf, int wtid, bool lane0) {
    using namespace sm90;
    float qa[N / 2];
#pragma unroll
    for (int i = 0; i < N / 2; ++i) qa[i] = 0.0f;
    int prev = -1;  // the stage of the batch still in flight
    for (int kq = 0; kq < kq_blocks; ++kq) {
        mbar_wait(q_full + 8 * qs, q_phase);
        const uint64_t da = wgmma_desc_k128(q_x(qs));
        const uint64_t db = wgmma_desc_k128(q_w(qs));
        fence_operand(qa);
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) wgmma_m64k16_bf16<N>(qa, da + 2 * kk, db + 2 * kk, (kq | kk) != 0);
        wgmma_commit();
        fence_operand(qa);
        wgmma_wait<1>();  // the batch of k-block kq - 1 is done: its stage may be refilled
        fence_operand(qa);
        if (prev >= 0) {
            __syncwarp();
            if (lane0) mbar_arrive(q_empty + 8 * prev);
        }
        prev = qs;
        if (++qs == QSTAGES) {
            qs = 0;
            q_phase ^= 1;
        }
    }
    wgmma_wait<0>();
    fence_operand(qa);
    if (prev >= 0) {
        __syncwarp();
        if (lane0) mbar_arrive(q_empty + 8 * prev);
    }
    // accumulator i: row (warp)·16 + g + 8·((i % 4) / 2), column 8·(i / 4) + 2·tq + (i % 2) (sm90/wgmma.cuh)
    const int g = (wtid & 31) >> 2, tq = wtid & 3;
    const uint32_t pitch = (uint32_t)u_pitch_bytes(N);
#pragma unroll
    for (int i = 0; i < N / 2; ++i) {
        const int row = (wtid >> 5) * 16 + g + 8 * ((i % 4) / 2);
        const int col = 8 * (i / 4) + 2 * tq + (i % 2);
        asm volatile("st.shared.f32 [%0], %1;\n" ::"r"(u_buf + (uint32_t)row * pitch + 4u * (uint32_t)col), "f"(qa[i])
                     : "memory");
    }
}

// PRE (pre-split state, Split::Tf32Bf16 only): the A map is armt_state_split.cu's [S·d, 2D] u32 (per k-block, 32 tf32
// hi then 32 bf16 pairs of each column n), box {32, TBN}, SWIZZLE_128B, and A[state] starts at map row a_row = state·d:
// the producer's two loads land a stage's hi and lo tiles exactly as the converters would write them (the 128B
// swizzle of convert_stage is TMA's), so there are no converters, no raw block and no conv barrier wait.
// FQ (fused q, decode launches: every problem at most 64 rows, 32-column tiles, a pre-split state): u is not loaded
// but made here, u = x·W_mqᵀ for the tile's rows, as the q projection's GEMM (gemm_sm90_nt_bf16_bf16_f32) makes it:
// x = to_bf16's bf16 rows (the map `u_map` is then x's: dims {d, rows}, box {64, 64}, 128B swizzle, the cell's rows
// at u_row, where its u rows would be), W_mq's rows of the problem's layer (`w_map`: dims {d, L·d_mem}, box {64, d_mem},
// 128B swizzle, from P.w_row), the same m64nNk16 chain over k in order from zero (scale_d = 0 on the first), so u has
// the GEMM's bits (a product's bits depend neither on N nor on the tile: gemm_sm90's width checks) and decode ==
// prefill holds with prefill keeping its q launch. Warpgroup 0 (the tile's 64 rows) makes u after the tile's z landed
// and stores it into the u buffer as TMA would have; the features then read it as always. Not from h: the other
// column tiles' epilogues update h in place while this CTA would still read it.
template <Split SP, int TBN = BN, bool PRE = false, bool FQ = false>
__device__ __forceinline__ void read_fused(const TmaMap& u_map, const TmaMap& a_map, const ReadFusedParams& P,
                                           const TmaMap* w_map = nullptr) {
    using namespace sm90;
    static_assert(bn_ok(TBN), "column tiles of 128, 64 or 32");
    static_assert(!PRE || SP == Split::Tf32Bf16, "the pre-split state is the tf32 + bf16 split");
    static_assert(!FQ || (PRE && TBN == 32), "the fused q is the decode launch's: pre-split, 32 columns");
    // The column tile's plan (TBN = BN: the constants above).
    constexpr int B_RAW_BYTES = PRE ? 0 : BK * TBN * 4;  // A block [32 k][TBN n], dense
    constexpr int B_CONV_BYTES = TBN * BK * 4;           // one converted tile [TBN n][32 k]
    constexpr int STAGE_BYTES = B_RAW_BYTES + 2 * B_CONV_BYTES;
    constexpr int STAGES = stages_for(TBN, PRE);
    static_assert(STAGE_BYTES == stage_bytes_for(TBN, PRE) && STAGE_BYTES % 1024 == 0, "1024-byte aligned stages");
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    const uint32_t base = smem_u32(smem_raw);
    if (base & 1023u) __trap();  // the 128B swizzle needs 1024-byte aligned tiles
    {
        uint32_t dyn;
        asm("mov.u32 %0, %%dynamic_smem_size;\n" : "=r"(dyn));
        if (dyn < (uint32_t)smem_bytes_for(TBN, PRE, FQ)) __trap();
    }
    // Stage s: A raw block | hi tile | lo tile (each 16 KB, 1024-aligned). Then the u tile, the epilogue staging, the
    // barriers.
    auto b_raw = [&](int s) { return base + (uint32_t)(s * STAGE_BYTES); };
    auto b_hi = [&](int s) { return base + (uint32_t)(s * STAGE_BYTES + B_RAW_BYTES); };
    auto b_lo = [&](int s) { return base + (uint32_t)(s * STAGE_BYTES + B_RAW_BYTES + B_CONV_BYTES); };
    const uint32_t q_base = base + STAGES * STAGE_BYTES;  // FQ: QSTAGES x (x tile | W_mq tile), 1024-aligned
    auto q_x = [&](int qs) { return q_base + (uint32_t)(qs * (QX_BYTES + QW_BYTES)); };
    auto q_w = [&](int qs) { return q_x(qs) + (uint32_t)QX_BYTES; };
    const uint32_t u_buf = q_base + q_bytes_for(FQ);
    const uint32_t z_buf = u_buf + U_BYTES;                 // z[state], D floats, loaded with the u rows
    const uint32_t staging = z_buf + Z_BYTES;               // 2 x STAGING_BYTES
    const uint32_t full_bar = staging + 2 * STAGING_BYTES;  // STAGES x 8: TMA bytes landed
    const uint32_t conv_bar = full_bar + STAGES * 8;        // STAGES x 8: hi/lo tiles written
    const uint32_t empty_bar = conv_bar + STAGES * 8;       // STAGES x 8: stage consumed
    const uint32_t u_full = empty_bar + STAGES * 8;         // the tile's u rows landed
    const uint32_t u_empty = u_full + 8;                    // every consumer warp is done with them
    const uint32_t q_full = u_empty + 8;                    // FQ: QSTAGES x 8, a q stage's TMA bytes landed
    const uint32_t q_empty = q_full + QSTAGES * 8;          // FQ: QSTAGES x 8, warpgroup 0's 4 warps done with it

    const int wg = __shfl_sync(0xffffffffu, (int)threadIdx.x / 128, 0);
    const int tiles_n = (P.n + TBN - 1) / TBN;
    const int d_mem = P.d_mem;
    const int d_key = 2 * P.nu * d_mem;         // D: features per row, the length of z
    const int k_blocks = d_key / BK;             // even: d_mem is a multiple of 32

    if (threadIdx.x == 256) {
        tma_prefetch_map(&u_map);
        tma_prefetch_map(&a_map);
#pragma unroll
        for (int s = 0; s < STAGES; ++s) {
            mbar_init(full_bar + 8 * s, 1);
            mbar_init(conv_bar + 8 * s, CONVERTERS / 32);
            mbar_init(empty_bar + 8 * s, 8);  // 8 consumer warps
        }
        mbar_init(u_full, 1);
        mbar_init(u_empty, 8);
        if constexpr (FQ) {
            tma_prefetch_map(w_map);
#pragma unroll
            for (int q = 0; q < QSTAGES; ++q) {
                mbar_init(q_full + 8 * q, 1);
                mbar_init(q_empty + 8 * q, 4);  // warpgroup 0's warps
            }
        }
        mbar_fence_init();
    }
    __syncthreads();
    READ_TRACE(0, threadIdx.x == 0);
    // Programmatic dependent launch: the set-up above (no global memory) overlaps the previous kernel's tail.
    pdl_entry();
    READ_TRACE(1, threadIdx.x == 0);

    TileWalk<BM, ReadFusedParams> walk(P, tiles_n, blockIdx.x, gridDim.x);

    if (wg == 2) {
        setmaxnreg_dec<PRODUCER_REGS>();
        if (threadIdx.x == 256) {
            // ---------------- producer ----------------
            Tile t;
            int s = 0, qs = 0;
            uint32_t phase = 0, u_phase = 0, q_phase = 0;
            while (walk.advance(t)) {
                const ReadFusedProblem& pr = P.problems[t.p];
                const int m0 = t.m_tile * BM, n0 = t.n_tile * TBN;
                mbar_wait(u_empty, u_phase ^ 1);
                if constexpr (FQ) {
                    mbar_arrive_expect_tx(u_full, (uint32_t)(4 * d_key));  // z only: u is made here
                } else {
                    mbar_arrive_expect_tx(u_full, (uint32_t)(u_pitch_bytes(d_mem) * U_BOX_ROWS + 4 * d_key));
                    tma_load_2d(u_buf, &u_map, u_full, 0, pr.u_row + m0);
                }
                // z[state] beside them: the features read it from shared memory (from global memory, its loads
                // were on every k-block's dependent chain: a decode step's read waited on them).
                bulk_load(z_buf, reinterpret_cast<const void*>(pr.z), 4 * d_key, u_full);
                READ_TRACE(2, true);
                u_phase ^= 1;
                if constexpr (FQ) {
                    // the q product's operands, k-block by k-block: 64 rows of x and the layer's d_mem W_mq rows
                    const uint32_t q_tx = (uint32_t)(QX_BYTES + d_mem * 128);
                    for (int kq = 0; kq < (P.n + 63) / 64; ++kq) {
                        mbar_wait(q_empty + 8 * qs, q_phase ^ 1);
                        mbar_arrive_expect_tx(q_full + 8 * qs, q_tx);
                        tma_load_2d(q_x(qs), &u_map, q_full + 8 * qs, kq * 64, pr.u_row + m0);
                        tma_load_2d(q_w(qs), w_map, q_full + 8 * qs, kq * 64, P.w_row[t.p]);
                        if (++qs == QSTAGES) {
                            qs = 0;
                            q_phase ^= 1;
                        }
                    }
                }
                for (int kb = 0; kb < k_blocks; ++kb) {
                    const uint32_t full = full_bar + 8 * s;
                    mbar_wait(empty_bar + 8 * s, phase ^ 1);
                    READ_TRACE(10 + kb, true);
                    if constexpr (PRE) {
                        mbar_arrive_expect_tx(full, 2 * B_CONV_BYTES);
                        tma_load_2d(b_hi(s), &a_map, full, kb * 2 * BK, pr.a_row + n0);
                        tma_load_2d(b_lo(s), &a_map, full, kb * 2 * BK + BK, pr.a_row + n0);
                    } else {
                        mbar_arrive_expect_tx(full, B_RAW_BYTES);
                        tma_load_2d(b_raw(s), &a_map, full, n0, pr.a_row + kb * BK);
                    }
                    if (++s == STAGES) {
                        s = 0;
                        phase ^= 1;
                    }
                }
            }
        } else if (!PRE && threadIdx.x >= 256 + 32) {
            // ---------------- converters: A [32 k][128 n] f32 -> hi, lo [128 n][32 k] ----------------
            // As gemm_tf32x3_sm90.cu: item i = (chunk c = i / 128, column n = i % 128), k = 4c .. 4c+3 of column n,
            // one 16-byte chunk of each converted tile. Tf32Bf16: the lo tile holds, per k, the bf16 pair
            // {bf16(hi), bf16(lo)} (64 bf16 = 128 bytes per row: chunk c is k = 4c .. 4c+3 again).
            const int ctid = threadIdx.x - (256 + 32);
            const bool lane0 = (threadIdx.x & 31) == 0;
            Tile t;
            int s = 0;
            uint32_t phase = 0;
            while (walk.advance(t)) {
                for (int kb = 0; kb < k_blocks; ++kb) {
                    mbar_wait(full_bar + 8 * s, phase);
                    READ_TRACE(40 + kb, threadIdx.x == 288);
                    const uint32_t raw = b_raw(s), hi = b_hi(s), lo = b_lo(s);
                    static_assert(BK == 32, "convert_stage converts 32 k per stage");
                    sm90::convert_stage<TBN, CONVERTERS, SP == Split::Tf32Bf16>(raw, hi, lo, ctid);
                    // Generic-proxy writes, read next by wgmma (async proxy): fence, then publish the stage.
                    fence_proxy_async_shared();
                    __syncwarp();
                    if (lane0) mbar_arrive(conv_bar + 8 * s);
                    READ_TRACE(70 + kb, threadIdx.x == 288);
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
        const int lr0 = wg * 64 + (wtid >> 5) * 16 + g;  // this thread's tile rows: lr0 and lr0 + 8
        const uint32_t buf = staging + wg * STAGING_BYTES;
        const int pf_kb = k_blocks > 6 ? k_blocks - 6 : 0;

        float acc[TBN / 2];  // the current k-block's products (from zero)
        float sum[TBN / 2];  // the tile's running sums (round-to-nearest adds of the k-blocks)
#pragma unroll
        for (int i = 0; i < TBN / 2; ++i) acc[i] = 0.0f;

        Tile t;
        int s = 0, qs = 0;
        uint32_t phase = 0, u_phase = 0, q_phase = 0;
        while (walk.advance(t)) {
            const ReadFusedProblem& pr = P.problems[t.p];
            const int row0 = t.m_tile * BM + wg * 64;
            const int rows = pr.m - row0;
            const int col0 = t.n_tile * TBN;
            char* const h_base = reinterpret_cast<char*>(pr.h);
            const long long ldh_bytes = (long long)pr.h_ld * 4;
            const bool active = __shfl_sync(0xffffffffu, (int)(rows > 0), 0) != 0;
            mbar_wait(u_full, u_phase);
            READ_TRACE(3, threadIdx.x == 0);
            if constexpr (FQ) {
                // u = x·W_mqᵀ for warpgroup 0's 64 rows (the only warpgroup with rows at 32 columns), into the u buffer
                if (active) {
                    if (d_mem == 64) {
                        q_product<64>(q_x, q_w, q_full, q_empty, qs, q_phase, (P.n + 63) / 64, u_buf, wtid, lane0);
                    } else {
                        q_product<32>(q_x, q_w, q_full, q_empty, qs, q_phase, (P.n + 63) / 64, u_buf, wtid, lane0);
                    }
                    named_barrier_sync(1 + wg, 128);  // every row of u stored before any thread's features
                }
            }
            if (active) {
#pragma unroll
                for (int i = 0; i < TBN / 2; ++i) sum[i] = 0.0f;
                float den[2] = {0.0f, 0.0f};
                Frag fa, fb;
                // A 32-column tile of one row (a decode step's): features_row0, the same bits for that row. (Width-32
                // launches have at most 64 rows a problem, so only warpgroup 0 ever has rows there.)
                const bool one_row = TBN == 32 && rows == 1;
                auto make = [&](Frag& f, int kb) {
                    if (one_row) features_row0<SP>(f, den[0], u_buf, z_buf, kb, lr0 == 0, lane, d_mem);
                    else features<SP>(f, den, u_buf, z_buf, kb, lr0, tq, d_mem);
                };
                make(fa, 0);
                READ_TRACE(4, threadIdx.x == 0);

                // One k-block: the MMAs of `cur` on stage s, the next k-block's features into `nxt` while they run.
                auto step = [&](const Frag& cur, Frag& nxt, int kb) {
                    mbar_wait(full_bar + 8 * s, phase);
                    if constexpr (!PRE) mbar_wait(conv_bar + 8 * s, phase);
                    READ_TRACE(100 + kb, threadIdx.x == 0);
                    const uint64_t dh = wgmma_desc_k128(b_hi(s));
                    const uint64_t dl = wgmma_desc_k128(b_lo(s));
                    fence_operand(acc);
                    wgmma_fence();
                    if constexpr (SP == Split::Tf32x3) {
#pragma unroll
                        for (int kk = 0; kk < 4; ++kk) {
                            // +32 bytes per k8 step inside the 128-byte swizzled row.
                            wgmma_m64k8_tf32_rs<TBN>(acc, cur.lo[kk], dh + 2 * kk, kk != 0);
                            wgmma_m64k8_tf32_rs<TBN>(acc, cur.hi[kk], dl + 2 * kk, 1);
                            wgmma_m64k8_tf32_rs<TBN>(acc, cur.hi[kk], dh + 2 * kk, 1);
                        }
                    } else {
                        // Accumulator chaining needs no fence only between wgmma of one shape: the tf32 k8 and the
                        // bf16 k16 instructions are two batches with a wgmma.fence between them.
#pragma unroll
                        for (int kk = 0; kk < 4; ++kk) wgmma_m64k16_bf16_rs<TBN>(acc, cur.lo[kk], dl + 2 * kk, kk != 0);
                        wgmma_fence();
#pragma unroll
                        for (int kk = 0; kk < 4; ++kk) wgmma_m64k8_tf32_rs<TBN>(acc, cur.hi[kk], dh + 2 * kk, 1);
                    }
                    wgmma_commit();
                    if (kb + 1 < k_blocks) {
                        make(nxt, kb + 1);
                    } else {
                        // The last features are made: the u buffer may take the next tile's rows.
                        __syncwarp();
                        if (lane0) mbar_arrive(u_empty);
                    }
                    fence_operand(acc);
                    wgmma_wait<0>();
                    fence_operand(acc);
                    keep(cur);
#pragma unroll
                    for (int i = 0; i < TBN / 2; ++i) sum[i] += acc[i];
                    READ_TRACE(130 + kb, threadIdx.x == 0);
                    if (kb == pf_kb) prefetch_c_rows<TBN>(h_base, ldh_bytes, row0, rows, col0, P.n, wtid);
                    // Release the stage (the wgmma reads of it are complete: wait_group 0 above).
                    __syncwarp();
                    if (lane0) mbar_arrive(empty_bar + 8 * s);
                    if (++s == STAGES) {
                        s = 0;
                        phase ^= 1;
                    }
                };
                for (int kb = 0; kb < k_blocks; kb += 2) {
                    step(fa, fb, kb);
                    step(fb, fa, kb + 1);
                }

                // The denominators of rows lr0 and lr0 + 8: the four lanes of a row hold the partial sums of the
                // features ≡ 0, 1, 2, 3 (mod 4); two xor shuffles give every lane the same bits.
#pragma unroll
                for (int rr = 0; rr < 2; ++rr) {
                    den[rr] += __shfl_xor_sync(0xffffffffu, den[rr], 1);
                    den[rr] += __shfl_xor_sync(0xffffffffu, den[rr], 2);
                    den[rr] += ARMT_EPS;
                }
                const float y[2] = {__frcp_rn(den[0]), __frcp_rn(den[1])};
#pragma unroll
                for (int i = 0; i < TBN / 2; ++i) {
                    const int rr = (i % 4) / 2;  // accumulator i is row lr0 + 8 rr (sm90/wgmma.cuh's layout)
                    const float q0 = __fmul_rn(sum[i], y[rr]);
                    const float rem = __fmaf_rn(-den[rr], q0, sum[i]);  // exact
                    sum[i] = __fmaf_rn(rem, y[rr], q0);                  // RN(num / den)
                }
                // h += num / den: the f32 accumulate epilogue (one add per element).
                READ_TRACE(5, threadIdx.x == 0);
                epilogue<TBN, Epi::F32, Store::Stg>(sum, buf, wtid, 1 + wg, h_base, ldh_bytes, row0, rows, col0, P.n,
                                                    true);
                READ_TRACE(6, threadIdx.x == 0);
            } else {
                __syncwarp();
                if (lane0) mbar_arrive(u_empty);
                for (int kb = 0; kb < k_blocks; ++kb) {
                    mbar_wait(full_bar + 8 * s, phase);
                    if constexpr (!PRE) mbar_wait(conv_bar + 8 * s, phase);
                    if (lane0) mbar_arrive(empty_bar + 8 * s);
                    if (++s == STAGES) {
                        s = 0;
                        phase ^= 1;
                    }
                }
            }
            u_phase ^= 1;
        }
    }
}

}  // namespace read_fused

// The engine's read: φ·A in 3×TF32.
extern "C" __global__ void __launch_bounds__(read_fused::THREADS, 1)
    armt_read_fused_sm90_f32(const __grid_constant__ sm90::TmaMap u_map, const __grid_constant__ sm90::TmaMap a_map,
                             const __grid_constant__ ReadFusedParams params) {
    read_fused::read_fused<read_fused::Split::Tf32x3>(u_map, a_map, params);
}

// The same read with φ·A as tf32 hi·hi + one bf16 correction product (2/3 of the tensor work): the engine's.
extern "C" __global__ void __launch_bounds__(read_fused::THREADS, 1)
    armt_read_fused_sm90_tf32bf16_f32(const __grid_constant__ sm90::TmaMap u_map,
                                      const __grid_constant__ sm90::TmaMap a_map,
                                      const __grid_constant__ ReadFusedParams params) {
    read_fused::read_fused<read_fused::Split::Tf32Bf16>(u_map, a_map, params);
}

// The engine's read with narrow column tiles (64 or 32 columns: 2x or 4x the CTAs of a launch of few rows), the same
// bytes as armt_read_fused_sm90_f32.
extern "C" __global__ void __launch_bounds__(read_fused::THREADS, 1)
    armt_read_fused_sm90_n64_f32(const __grid_constant__ sm90::TmaMap u_map, const __grid_constant__ sm90::TmaMap a_map,
                                 const __grid_constant__ ReadFusedParams params) {
    read_fused::read_fused<read_fused::Split::Tf32x3, 64>(u_map, a_map, params);
}

extern "C" __global__ void __launch_bounds__(read_fused::THREADS, 1)
    armt_read_fused_sm90_n32_f32(const __grid_constant__ sm90::TmaMap u_map, const __grid_constant__ sm90::TmaMap a_map,
                                 const __grid_constant__ ReadFusedParams params) {
    read_fused::read_fused<read_fused::Split::Tf32x3, 32>(u_map, a_map, params);
}

// The tf32 + bf16 split at the narrow column tiles (the same bytes as armt_read_fused_sm90_tf32bf16_f32).
extern "C" __global__ void __launch_bounds__(read_fused::THREADS, 1)
    armt_read_fused_sm90_tf32bf16_n64_f32(const __grid_constant__ sm90::TmaMap u_map,
                                          const __grid_constant__ sm90::TmaMap a_map,
                                          const __grid_constant__ ReadFusedParams params) {
    read_fused::read_fused<read_fused::Split::Tf32Bf16, 64>(u_map, a_map, params);
}

extern "C" __global__ void __launch_bounds__(read_fused::THREADS, 1)
    armt_read_fused_sm90_tf32bf16_n32_f32(const __grid_constant__ sm90::TmaMap u_map,
                                          const __grid_constant__ sm90::TmaMap a_map,
                                          const __grid_constant__ ReadFusedParams params) {
    read_fused::read_fused<read_fused::Split::Tf32Bf16, 32>(u_map, a_map, params);
}

// The tf32 + bf16 read of a pre-split state (PRE above; armt_state_split_tf32bf16 makes the A operand once per state
// change instead of every read converting it), at each column tile width: the same bytes as
// armt_read_fused_sm90_tf32bf16_f32.
extern "C" __global__ void __launch_bounds__(read_fused::THREADS, 1)
    armt_read_fused_sm90_split_f32(const __grid_constant__ sm90::TmaMap u_map,
                                   const __grid_constant__ sm90::TmaMap a_map,
                                   const __grid_constant__ ReadFusedParams params) {
    read_fused::read_fused<read_fused::Split::Tf32Bf16, read_fused::BN, true>(u_map, a_map, params);
}

extern "C" __global__ void __launch_bounds__(read_fused::THREADS, 1)
    armt_read_fused_sm90_split_n64_f32(const __grid_constant__ sm90::TmaMap u_map,
                                       const __grid_constant__ sm90::TmaMap a_map,
                                       const __grid_constant__ ReadFusedParams params) {
    read_fused::read_fused<read_fused::Split::Tf32Bf16, 64, true>(u_map, a_map, params);
}

extern "C" __global__ void __launch_bounds__(read_fused::THREADS, 1)
    armt_read_fused_sm90_split_n32_f32(const __grid_constant__ sm90::TmaMap u_map,
                                       const __grid_constant__ sm90::TmaMap a_map,
                                       const __grid_constant__ ReadFusedParams params) {
    read_fused::read_fused<read_fused::Split::Tf32Bf16, 32, true>(u_map, a_map, params);
}

// The decode read with its own q projection (FQ above): x = to_bf16's rows (map 1), the pre-split state (map 2),
// the stacked W_mq (map 3); every problem at most 64 rows. The same bytes as the q GEMM then
// armt_read_fused_sm90_split_n32_f32.
extern "C" __global__ void __launch_bounds__(read_fused::THREADS, 1)
    armt_read_fused_sm90_split_q_n32_f32(const __grid_constant__ sm90::TmaMap x_map,
                                         const __grid_constant__ sm90::TmaMap a_map,
                                         const __grid_constant__ sm90::TmaMap w_map,
                                         const __grid_constant__ ReadFusedParams params) {
    read_fused::read_fused<read_fused::Split::Tf32Bf16, 32, true, true>(x_map, a_map, params, &w_map);
}
