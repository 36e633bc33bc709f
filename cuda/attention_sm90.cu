/*
Causal grouped-query attention for sm_90a (H100/H200) on the tensor cores: TMA loads, wgmma, warp specialisation,
persistent CTAs. It computes what cuda/attention.cu computes (same contract; that file's header is the reference),
for head dims 64 and 128:

  q, k and v come from the fused QKV buffer, bf16 [rows_total, qkv_ld] (q heads at column 0, k heads at H*hd, v heads
  at H*hd + KV*hd; RoPE already applied); query head h reads KV head h / (H / KV). A span with pos = 0 is a whole
  segment: its `rows` rows attend causally among themselves. A span with pos > 0 is the new rows of an open segment
  whose rows 0 .. pos - 1 are already in the buffer (a KV cache): queries are rows pos .. pos + rows - 1 of the
  segment (segment row 0 = qkv row in_row), each attending to rows 0 ..= its own; query pos + i goes to output row
  out_row + i (H*hd bf16 columns). Scores are scaled by `scale`; softmax in f32; the output is rounded to bf16 once.

ABI (extern "C"; the parameters unchanged from version 1): attention_sm90_causal_bf16_hd64 (three consumer warpgroups),
  attention_sm90_causal_bf16_hd64_wg2 and attention_sm90_causal_bf16_hd128 (two); the launcher picks by consumer_wgs
  (const __grid_constant__ sm90::TmaMap q_map,      // byte offset 0    (CUtensorMap, 128 bytes, 64-aligned)
   const __grid_constant__ sm90::TmaMap kv_map,     // byte offset 128
   const __grid_constant__ Spans spans,             // byte offset 256  (common/params.h: 64 RowSpan + count)
   const __grid_constant__ AttnSm90Params params)   // byte offset 2320 (24 bytes, below); 2344 bytes in all
  Spans: count 0..64; per span in_row, out_row, rows (>= 0; 0 = no work), pos (>= 0; or, dynamic, positions[state]
  read on the device, at most pos); layer/flag unused.
  AttnSm90Params: out (device address of the bf16 output, 16-byte aligned), out_ld (elements, multiple of 8),
  heads H, kv_heads KV (H % KV == 0, R = H / KV <= 64), scale (finite).
  Requirements (the launcher checks): qkv_ld a multiple of hd (the q map's nested strides; the fused buffer has
  qkv_ld = (H + 2*KV)*hd) and the qkv base 16-byte aligned (TMA strides and addresses);
  in_row + pos + rows <= rows_total of the maps; output rows of different spans disjoint; rows_total < 2^31.
Tensor maps (cuTensorMapEncodeTiled, bf16, INTERLEAVE_NONE, SWIZZLE_128B, L2_PROMOTION_L2_256B,
FLOAT_OOB_FILL_NONE = zeros, element strides all 1):
  q_map:  rank 3 over the q heads: base = qkv, globalDim {hd, H, rows_total}, globalStrides {hd*2, qkv_ld*2} bytes,
          boxDim {64, R, P} with P = 64 / R (the packed-GQA tile below).
  kv_map: rank 2 over the k and v heads: base = qkv + H*hd elements, globalDim {2*KV*hd, rows_total},
          globalStrides {qkv_ld*2} bytes, boxDim {64, 128}.
  Both depend only on the buffer, its shape and (H, KV, hd), so a launcher can build them once per buffer.
Launch: grid = number of SMs (persistent; any grid >= 1 gives the same bytes), block 128 * (consumer warpgroups + 1)
(512 or 384), no cluster, dynamic shared memory attn90::smem_bytes(hd) (204992 bytes at hd 64 since session 21,
229984 at hd 128; an entry uses at most that; set cudaFuncAttributeMaxDynamicSharedMemorySize to it). The dynamic
shared memory base must be 1024-byte aligned (the kernel traps if not).

Structure (per CTA: warpgroups 0 .. NWG - 1 consume, warpgroup NWG produces; NWG = 3 or 2 (consumer_wgs); register
split 32/160 or 40/232, sm90/warpgroup.cuh):
  - GQA packing: a consumer warpgroup owns a 64-row tile of the packed M dimension = P = 64 / R consecutive query
    positions times the R query heads of one KV head (row = position_offset * R + head_offset; rows R*P .. 63 are
    padding when R does not divide 64). So the R heads that share a K/V tile read it from shared memory together,
    and a decode row (one position) fills R rows of a tile instead of 1.
  - Work items (attention_sm90/schedule.cuh): (span, KV head, level c); consumer warpgroup w takes warpgroup block
    NWG*c + w (positions (NWG*c + w)P .. (NWG*c + w + 1)P - 1, aligned at position 0 of the segment). Items come in L2
    sections of a few spans, longest first inside a section, snake order over the persistent grid; every role
    walks the list itself with whole-warp ballots.
  - Producer warp (warp 4*NWG; lane 0 issues): per item, the Q tile of each active warpgroup (one 3-D TMA box {64, R, P}
    per 64-column half; 2 slots, double-buffered across items), then K and V tiles of 128 keys (one 2-D box {64, 128}
    per half) into two separate rings (KS and VS stages, full and empty mbarriers each), K one tile ahead of V:
    K0, K1, V0, K2, V1, ... A K stage is released as soon as the S product that reads it has completed, a V stage
    when its P.V product has completed, so the loads of the next tiles start about one iteration earlier than with
    version 1's shared K+V stage (released only after P.V, which left hd 128 with ~0.1 iteration of prefetch).
  - V-fixup warp (warp 4*NWG + 1): waits for every V tile; rows of a tile at or past the span's last key (pos + rows)
    are garbage for this span (other cells' rows, not yet written cache rows, poison) and are zeroed, then the warp
    arrives on vready. A masked probability is exactly 0, but 0 * NaN would not be.
  - Consumers, per key tile n (FA3's intra-warpgroup overlap): issue S_n = Q K_n^T (m64n128k16, Q and K from shared
    memory), issue O += P_{n-1} V_{n-1} (m64n{hd}k16, P from registers, V MN-major via the transposed-B descriptor),
    wait for S_n, release K_n, run the online softmax of tile n while the P.V product runs, wait for it, release
    V_{n-1}, rescale O, convert P_n to bf16 in registers. The causal mask is applied only to tiles that reach past
    the warpgroup's first position. Epilogue: O / l rounded to bf16, staged in shared memory (XOR-swizzled 16-byte
    chunks: conflict-free), then 16-byte coalesced stores of the rows inside [pos, pos + rows) only.
  - Pingpong (FA3's warp scheduler barriers): when every warpgroup has rows in the item, they take turns issuing
    their GEMMs round robin (named barriers TURN + w: a warpgroup waits for its turn, issues S_n and
    P_{n-1}.V_{n-1}, hands the turn to the next, then runs its softmax while the others' GEMMs use the tensor
    cores). For equal turn counts all walk the item's largest key-tile count; the extra tiles of a warpgroup with
    fewer are no-ops for its rows (C4). An item where some warpgroup has no rows (decode, a span's last level) runs
    the others without turns.

The canonical computation of one query row (head h, segment position q) — requirement (b), decode == prefill:
  C1. Its warpgroup tile is fixed by (q, h) alone: block b = floor(q / P) (positions aligned at segment row 0, never
      at the span's pos), row (q - bP) * R + (h mod R), KV head h / R. Every path (whole span, pos > 0 with 1 or more
      rows, any neighbours in the launch) computes the row as that row of that tile.
  C2. Key tiles are 128 keys aligned at segment row 0 (tile n = keys 128n .. 128n + 127), walked in order n = 0, 1,
      ..., T-1, where T >= floor(q / 128) + 1 (every key <= q is covered). The score of (row, key) is the f32 output
      of the same wgmma instructions (4 (hd 64) or 8 (hd 128) chained m64n128k16 over the same k16 order) from the
      same Q row and K row; a wgmma output element depends only on its own A row and B column, never on the other
      rows of the tile (rows before pos in a decode tile, padding rows, rows past the segment: any values, even NaN).
  C3. Per tile, with explicit _rn intrinsics (no contraction or reordering can differ between code paths): mask
      key > q to -inf (select); row max m_t over the tile, quad max via shuffles (max is exact and order-free);
      m_new = max(m, m_t); alpha = (m_new == m) ? 1 : 2^((m - m_new) * scale*log2e); p = 2^(fma(s, scale*log2e,
      -(m_new * scale*log2e))) (ex2.approx.ftz); per-thread partial sum in a fixed order, l = fma(l, alpha, sum);
      O = O * alpha, then O += bf16(p) . V (wgmma, k16 order fixed). First tile: m = m_t, l = sum, the first P.V with
      scale-d = 0. End: l summed over the quad (xor 1 then 2: commutative, so all four threads agree), O * rcp_rn(l),
      rounded to bf16.
  C4. A tile whose keys are all > q (a trailing tile the other rows of the tile, or another warpgroup, needed) is
      an exact no-op for the row: every score is masked, so m_t = -inf, m_new = m (m is finite from tile 0 on: key
      0 <= q), alpha = 1 exactly (the select, not ex2(0)), p = +0 for every key, l = fma(l, 1, +0) = l, O * 1 = O,
      and O + sum(0 * v) = O because V is finite there: keys <= the span's last key are real rows, keys past it are
      zeroed by the fixup warp (the same zeroing in every path).
  So a path that walks fewer trailing tiles (a decode span stops at the tile of its last key, a whole span at the
  tile of the item's last row) produces the same bits: the extra tiles are no-ops (C4), everything else is the
  same instructions on the same values (C1-C3). The same kernel runs every path, so the instruction choice
  (FFMA vs FMUL+FADD, MUFU.EX2) is identical by construction; the _rn intrinsics pin it besides. Requirement (a)
  follows from the schedule (an item's bits never depend on the CTA that runs it, on the order, or on other spans).
Decode (one new row per span over a long cache) is not split across CTAs: a span's item for one KV head holds the R
query heads of that head in one tile and streams the cache once; docs/log/attention_sm90.md has the numbers behind
not doing it now.
FLOPs: 4 * hd * H * rows^2 / 2 per whole span (QK^T and PV, causal half); bytes: K and V once per (span, KV head,
item) from L2, Q once, output once.
*/
#include <cuda_bf16.h>
#include <stdint.h>

#include "attention_sm90/ptx.cuh"
#include "attention_sm90/schedule.cuh"
#include "common/params.h"
#include "sm90/bulk.cuh"
#include "sm90/mbarrier.cuh"
#include "sm90/tma.cuh"
#include "sm90/warpgroup.cuh"
#include "sm90/wgmma.cuh"
#include "common/pdl.cuh"

// The scalar parameters of a launch (24 bytes, 8-byte aligned).
typedef struct {
    unsigned long long out;  // device address of output row 0, column 0 (bf16), 16-byte aligned
    int out_ld;              // output row stride in elements, a multiple of 8
    int heads;               // H, query heads
    int kv_heads;            // KV; H % KV == 0 and H / KV <= 64
    float scale;             // score scale (normally 1 / sqrt(hd)), finite
} AttnSm90Params;

static_assert(sizeof(AttnSm90Params) == 24, "AttnSm90Params layout is mirrored by the launchers");

namespace attn90 {

constexpr int BN = 128;  // keys per tile
// Consumer warpgroups per CTA (the launcher's choice of entry; every choice gives the same bits, C1-C4): three at hd
// 64 with grouped queries (R >= 2; as FA3's 192-row tiles at hd 64), where one warpgroup's softmax is a chain of
// dependent instructions that two warps per scheduler did not hide (docs/log/attention_sm90.md §8: the 1B step
// +17-21%, SmolLM2's +15%); two otherwise: at R = 1 (the 160M step, 64 positions a warpgroup block) three were 14%
// slower, and at hd 128 the accumulators (64 + 64 + 32 registers a thread) leave no room for a third. The launcher
// also takes two for launches of few rows (decode: one warpgroup of an item has rows; 1-6% faster there).
__host__ __device__ constexpr int consumer_wgs(int hd, int r) { return hd == 64 && r > 1 ? 3 : 2; }
// NWG consumer warpgroups + 1 producer warpgroup; the register split of the whole file (65536 a CTA).
template <int NWG>
struct Roles {
    static constexpr int THREADS = 128 * (NWG + 1);
    static constexpr int PRODUCER_REGS = NWG == 3 ? 32 : 40;
    static constexpr int CONSUMER_REGS = NWG == 3 ? 160 : 232;
    static constexpr int PRODUCER_WARP = 4 * NWG;   // warp 0 of the producer warpgroup (lane 0 issues the TMA)
    static constexpr int FIXUP_WARP = 4 * NWG + 1;  // warp 1 of the producer warpgroup
    static constexpr uint32_t TURN = 1 + NWG;       // named barriers TURN + w, after 0 and the epilogues' 1 + w
    static_assert(PRODUCER_REGS * 128 + CONSUMER_REGS * 128 * NWG <= 65536, "register file");
    static_assert(TURN + NWG <= 16, "named barriers");
};
// The dynamic shared memory a launch provides (the ABI of version 1; the kernel may use less).
constexpr int SMEM_ABI_HD64 = 204992;
constexpr int SMEM_ABI_HD128 = 229984;
// Named barriers: 0 = __syncthreads; 1 + w = consumer warpgroup w's own (128 threads, the epilogue staging);
// TURN + w = warpgroup w's pingpong turn (256 threads: w syncs, warpgroup w - 1 (mod NWG), the one whose turn
// comes before, arrives).

// Shared memory plan (offsets from the 1024-aligned dynamic base).
template <int HD, int NWG>
struct Smem {
    static constexpr int HALVES = HD / 64;                 // 64-column (128-byte) halves of a head row
    static constexpr int KS = HD == 64 ? 4 : 2;            // K ring depth
    static constexpr int VS = HD == 64 ? 4 : 2;            // V ring depth
    static constexpr uint32_t HALF_TILE = BN * 128;        // one half of a K or V tile: [128 keys][64 columns]
    static constexpr uint32_t KV_TILE = HALF_TILE * HALVES;
    static constexpr uint32_t Q_HALF = 64 * 128;           // one half of a warpgroup's Q tile: [64 rows][64]
    static constexpr uint32_t Q_TILE = Q_HALF * HALVES;
    static constexpr uint32_t O_TILE = 64 * HD * 2;        // a warpgroup's output staging: [64 rows][hd] bf16
    static constexpr uint32_t K_OFF = 0;
    static constexpr uint32_t V_OFF = K_OFF + KS * KV_TILE;
    static constexpr uint32_t Q_OFF = V_OFF + VS * KV_TILE;      // [slot 0..1][warpgroup 0..NWG-1]
    static constexpr uint32_t O_OFF = Q_OFF + 2 * NWG * Q_TILE;  // [warpgroup 0..NWG-1]
    static constexpr uint32_t BAR_OFF = O_OFF + NWG * O_TILE;
    static constexpr int CONSUMER_WARPS = 4 * NWG;  // the count of the empty barriers below
    // mbarrier indices
    static constexpr int FULL_K = 0;               // [KS] count 1: producer expect_tx + TMA bytes of K
    static constexpr int EMPTY_K = KS;             // [KS] count 4·NWG: the consumer warps, after their S product
    static constexpr int FULL_V = 2 * KS;          // [VS] count 1: producer expect_tx + TMA bytes of V
    static constexpr int VREADY = 2 * KS + VS;     // [VS] count 32: the fixup warp's lanes
    static constexpr int EMPTY_V = 2 * KS + 2 * VS;  // [VS] count 4·NWG: the consumer warps, after their P.V
    static constexpr int Q_FULL = 2 * KS + 3 * VS;   // [2] count 1: producer expect_tx + TMA bytes of Q
    static constexpr int Q_EMPTY = Q_FULL + 2;       // [2] count 4·NWG: the consumer warps
    static constexpr int NBARS = Q_EMPTY + 2;
    static constexpr uint32_t BYTES = BAR_OFF + NBARS * 8;
    static_assert(K_OFF % 1024 == 0 && V_OFF % 1024 == 0 && Q_OFF % 1024 == 0 && KV_TILE % 1024 == 0 &&
                      Q_TILE % 1024 == 0,
                  "128B-swizzled tiles start 1024-byte aligned");
    static_assert(BYTES <= (HD == 64 ? SMEM_ABI_HD64 : SMEM_ABI_HD128), "fits the launch's dynamic shared memory");
};

__host__ __device__ constexpr int smem_bytes(int hd) { return hd == 64 ? SMEM_ABI_HD64 : SMEM_ABI_HD128; }

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // round to nearest even; lo in the low half
    return *reinterpret_cast<const uint32_t*>(&v);
}

// A stage ring position: index and the parity of the current round.
template <int N>
struct Ring {
    int i = 0;
    uint32_t ph = 0;
    __device__ __forceinline__ void next() {
        if (++i == N) {
            i = 0;
            ph ^= 1;
        }
    }
};

// One work item as every role derives it from the walk position.
template <int NWG>
struct Item {
    int in_row, out_row, pos, kv_len;  // the span: kv_len = pos + rows (the segment's rows so far)
    int g;                             // KV head
    int p0;                            // first position of warpgroup 0's block (warpgroup w's: p0 + w·bp)
    int kts[NWG];                      // key tiles of each warpgroup (0: no query of the span in its block)
    int kt;                            // key tiles the producer loads: the largest of kts, >= 1
    bool all;                          // every warpgroup has a query in the item
};

template <int NWG>
__device__ __forceinline__ Item<NWG> make_item(const Spans& spans, const int* pos, const Walk& w, int bp) {
    Item<NWG> it;
    const RowSpan& sp = spans.spans[w.s];
    it.in_row = sp.in_row;
    it.out_row = sp.out_row;
    it.pos = pos[w.s];
    it.kv_len = it.pos + sp.rows;
    it.g = w.g;
    it.p0 = NWG * w.level() * bp;
    it.kt = 0;
    it.all = true;
    // A block needs the key tiles up to the one holding its last query inside the span (C2: at least the tile of
    // every query it stores).
#pragma unroll
    for (int b = 0; b < NWG; ++b) {
        const int p = it.p0 + b * bp;
        const bool active = p < it.kv_len && p + bp > it.pos;
        it.kts[b] = active ? (min(p + bp, it.kv_len) - 1) / BN + 1 : 0;
        it.kt = max(it.kt, it.kts[b]);
        it.all = it.all && active;
    }
    return it;
}

// Profiling records (the harness's profiling build only; the production entries compile all of it out): per CTA
// NWG + 1 records of PF_N counters: consumer warpgroups 0 .. NWG - 1 (each measured by its warp 0, lane 0), then
// the producer (its warp 0, lane 0). Cycle counters (SM clock) except the counts and the global-timer stamps.
enum Prof : int {
    PF_TOTAL = 0,  // cycles from the role's start to its end
    PF_ITEM,       // consumers: walk + item + Q wait; producer: walk + Q-slot wait
    PF_WAITK,      // consumers: waits for a K tile; producer: waits for a free K stage
    PF_TURN,       // consumers: waits for the pingpong turn
    PF_WAITV,      // consumers: waits for a ready V tile; producer: waits for a free V stage
    PF_WAITS,      // consumers: waits for the S product
    PF_SOFT,       // consumers: softmax, rescale, convert
    PF_WAITPV,     // consumers: waits for the P.V product (including the last one of the item)
    PF_TAIL,       // consumers: releasing the tiles of an item the warpgroup does not compute
    PF_EPI,        // consumers: epilogue
    PF_ISSUE,      // consumers: wgmma issue (fences, descriptors, the instructions)
    PF_TILES,      // count: key tiles computed (consumers) or loaded (producer)
    PF_ITEMS,      // count: items
    PF_T0,         // global timer at the role's start (ns)
    PF_T1,         // global timer at its end (ns)
    PF_N = 16
};

// S[64 x 128] = Q[64 x hd] . K[128 x hd]^T: hd/16 chained m64n128k16, both operands K-major 128B-swizzled.
template <int HD>
__device__ __forceinline__ void s_gemm(float (&s)[64], uint32_t q_tile, uint32_t k_tile) {
    using L = Smem<HD, 2>;  // the tile sizes (the same for every NWG)
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
        const uint32_t qa = q_tile + (kk / 4) * L::Q_HALF + (kk % 4) * 32;
        const uint32_t ka = k_tile + (kk / 4) * L::HALF_TILE + (kk % 4) * 32;
        sm90::wgmma_m64k16<BN>(s, sm90::wgmma_desc_k128(qa), sm90::wgmma_desc_k128(ka), kk > 0);
    }
}

// O[64 x hd] (+)= P[64 x 128] . V[128 x hd]: 8 chained m64n{hd}k16, P from registers, V MN-major (ptx.cuh).
// first: the first product of the item overwrites O (scale-d = 0 on its first k16 step).
template <int HD>
__device__ __forceinline__ void pv_gemm(float (&o)[HD / 2], const uint32_t (&p)[32], uint32_t v_tile, bool first) {
#pragma unroll
    for (int kc = 0; kc < BN / 16; ++kc) {
        const uint32_t a[4] = {p[4 * kc], p[4 * kc + 1], p[4 * kc + 2], p[4 * kc + 3]};
        const uint64_t d = wgmma_desc_mn128(v_tile + kc * 2048, Smem<HD, 2>::HALF_TILE);
        const int scale_d = (!first || kc > 0) ? 1 : 0;
        if constexpr (HD == 64) {
            wgmma_m64n64k16_rs_tb(o, a, d, scale_d);
        } else {
            wgmma_m64n128k16_rs_tb(o, a, d, scale_d);
        }
    }
}

// The online softmax of one score tile (C3), in place: s becomes p. This thread holds rows a and b (16w + lane/4 and
// + 8) and columns key0 + 8j + {0, 1} (j = 0..15) of each; element i is row (i & 2 ? b : a), column key0 + 8(i/4) +
// (i & 1). FIRST: the first tile of the item; MASK: some key of the tile may lie past some row's position.
template <bool FIRST, bool MASK>
__device__ __forceinline__ void softmax_tile(float (&s)[64], float& m_a, float& m_b, float& l_a, float& l_b,
                                             float& al_a, float& al_b, int key0, int pos_a, int pos_b, float sl2) {
    if constexpr (MASK) {
#pragma unroll
        for (int i = 0; i < 64; ++i) {
            const int key = key0 + 8 * (i >> 2) + (i & 1);
            const int pos = (i & 2) ? pos_b : pos_a;
            s[i] = key > pos ? -INFINITY : s[i];
        }
    }
    float xa[4], xb[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) xa[k] = xb[k] = -INFINITY;
#pragma unroll
    for (int j = 0; j < 16; ++j) {
        const int k = (j & 1) * 2;
        xa[k] = fmaxf(xa[k], s[4 * j]);
        xa[k + 1] = fmaxf(xa[k + 1], s[4 * j + 1]);
        xb[k] = fmaxf(xb[k], s[4 * j + 2]);
        xb[k + 1] = fmaxf(xb[k + 1], s[4 * j + 3]);
    }
    float mx_a = fmaxf(fmaxf(xa[0], xa[1]), fmaxf(xa[2], xa[3]));
    float mx_b = fmaxf(fmaxf(xb[0], xb[1]), fmaxf(xb[2], xb[3]));
    mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 1));
    mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 1));
    mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 2));
    mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 2));
    float mn_a, mn_b;
    if constexpr (FIRST) {
        mn_a = mx_a;
        mn_b = mx_b;
        al_a = 0.0f;
        al_b = 0.0f;
    } else {
        mn_a = fmaxf(m_a, mx_a);
        mn_b = fmaxf(m_b, mx_b);
        al_a = mn_a == m_a ? 1.0f : ex2(__fmul_rn(__fsub_rn(m_a, mn_a), sl2));
        al_b = mn_b == m_b ? 1.0f : ex2(__fmul_rn(__fsub_rn(m_b, mn_b), sl2));
    }
    const float ms_a = -__fmul_rn(mn_a, sl2);
    const float ms_b = -__fmul_rn(mn_b, sl2);
    float ta[4], tb[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) ta[k] = tb[k] = 0.0f;
#pragma unroll
    for (int j = 0; j < 16; ++j) {
        const int k = (j & 1) * 2;
        s[4 * j] = ex2(__fmaf_rn(s[4 * j], sl2, ms_a));
        s[4 * j + 1] = ex2(__fmaf_rn(s[4 * j + 1], sl2, ms_a));
        s[4 * j + 2] = ex2(__fmaf_rn(s[4 * j + 2], sl2, ms_b));
        s[4 * j + 3] = ex2(__fmaf_rn(s[4 * j + 3], sl2, ms_b));
        ta[k] = __fadd_rn(ta[k], s[4 * j]);
        ta[k + 1] = __fadd_rn(ta[k + 1], s[4 * j + 1]);
        tb[k] = __fadd_rn(tb[k], s[4 * j + 2]);
        tb[k + 1] = __fadd_rn(tb[k + 1], s[4 * j + 3]);
    }
    const float sum_a = __fadd_rn(__fadd_rn(ta[0], ta[1]), __fadd_rn(ta[2], ta[3]));
    const float sum_b = __fadd_rn(__fadd_rn(tb[0], tb[1]), __fadd_rn(tb[2], tb[3]));
    if constexpr (FIRST) {
        l_a = sum_a;
        l_b = sum_b;
    } else {
        l_a = __fmaf_rn(l_a, al_a, sum_a);
        l_b = __fmaf_rn(l_b, al_b, sum_b);
    }
    m_a = mn_a;
    m_b = mn_b;
}

template <bool FIRST>
__device__ __forceinline__ void softmax_any(bool mask, float (&s)[64], float& m_a, float& m_b, float& l_a,
                                            float& l_b, float& al_a, float& al_b, int key0, int pos_a, int pos_b,
                                            float sl2) {
    if (mask) {
        softmax_tile<FIRST, true>(s, m_a, m_b, l_a, l_b, al_a, al_b, key0, pos_a, pos_b, sl2);
    } else {
        softmax_tile<FIRST, false>(s, m_a, m_b, l_a, l_b, al_a, al_b, key0, pos_a, pos_b, sl2);
    }
}

// P (bf16 A fragments, ptx.cuh) from the probabilities in s.
__device__ __forceinline__ void convert_p(uint32_t (&p)[32], const float (&s)[64]) {
#pragma unroll
    for (int k = 0; k < 32; ++k) p[k] = pack_bf16x2(s[2 * k], s[2 * k + 1]);
}

template <int HD>
__device__ __forceinline__ void rescale_o(float (&o)[HD / 2], float al_a, float al_b) {
#pragma unroll
    for (int i = 0; i < HD / 2; ++i) o[i] = __fmul_rn(o[i], (i & 2) ? al_b : al_a);
}

// Timing helper of the profiling build: adds the cycles since `t` to acc[f] and restarts `t` (no code otherwise).
// 32-bit cycle counts (a launch is far shorter than 2^32 clocks).
template <bool PROF>
struct Clock {
    uint32_t t = 0;
    __device__ __forceinline__ void start() {
        if constexpr (PROF) t = (uint32_t)clock();
    }
    __device__ __forceinline__ void lap(uint32_t (&acc)[PF_N], int f) {
        if constexpr (PROF) {
            const uint32_t now = (uint32_t)clock();
            acc[f] += now - t;
            t = now;
        }
    }
};

// Version 2 of the kernel. NWG: consumer warpgroups (consumer_wgs: 3 or 2); PINGPONG: they take turns on the tensor
// cores; SECTIONS: the item order keeps the K/V of a few spans in flight (schedule.cuh); PROF: the profiling
// counters (dev harness only). The production entries are <HD, NWG, true, true, false>; the other variants exist for
// the harness's A/B runs and compute the same bytes (the order of items, the warpgroups of a CTA and the turns never
// reach the arithmetic: C1-C4).
template <int HD, int NWG, bool PINGPONG, bool SECTIONS, bool PROF>
__device__ __forceinline__ void attention_sm90(const sm90::TmaMap& q_map, const sm90::TmaMap& kv_map,
                                               const Spans& spans, const AttnSm90Params& P,
                                               unsigned long long* prof) {
    using L = Smem<HD, NWG>;
    using X = Roles<NWG>;
    using ItemT = Item<NWG>;
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    const uint32_t base = sm90::smem_u32(smem_raw);
    if (base & 1023u) __trap();  // the 128B swizzle needs 1024-byte aligned tiles
    auto bar = [&](int i) -> uint32_t { return base + L::BAR_OFF + 8u * (uint32_t)i; };

    const int R = P.heads / P.kv_heads;  // query heads per KV head
    const int BP = 64 / R;               // positions per warpgroup block
    const int KV = P.kv_heads;

    if (threadIdx.x == 32 * X::PRODUCER_WARP) {
        sm90::tma_prefetch_map(&q_map);
        sm90::tma_prefetch_map(&kv_map);
#pragma unroll
        for (int s = 0; s < L::KS; ++s) {
            sm90::mbar_init(bar(L::FULL_K + s), 1);
            sm90::mbar_init(bar(L::EMPTY_K + s), L::CONSUMER_WARPS);
        }
#pragma unroll
        for (int s = 0; s < L::VS; ++s) {
            sm90::mbar_init(bar(L::FULL_V + s), 1);
            sm90::mbar_init(bar(L::VREADY + s), 32);
            sm90::mbar_init(bar(L::EMPTY_V + s), L::CONSUMER_WARPS);
        }
        for (int q = 0; q < 2; ++q) {
            sm90::mbar_init(bar(L::Q_FULL + q), 1);
            sm90::mbar_init(bar(L::Q_EMPTY + q), L::CONSUMER_WARPS);
        }
        sm90::mbar_fence_init();
    }
    __syncthreads();
    // Programmatic dependent launch: the set-up above (no global memory) overlaps the previous kernel's tail.
    pdl_entry();
    // Each span's position, a dynamic span's read from the positions buffer (once per CTA, so that the walk and the
    // items of every role read it from shared memory).
    __shared__ int span_pos_s[DBRMT_MAX_GROUPS];
    if (threadIdx.x < min(spans.count, DBRMT_MAX_GROUPS))
        span_pos_s[threadIdx.x] = span_pos(spans, spans.spans[threadIdx.x]);
    __syncthreads();

    // Warp-uniform for the compiler too (a shuffle of lane 0's value), so that the branches on it are not divergent
    // paths around the wgmma.
    const int wg = __shfl_sync(0xffffffffu, (int)threadIdx.x / 128, 0);
    const int warp = __shfl_sync(0xffffffffu, (int)threadIdx.x / 32, 0);
    const int lane = (int)threadIdx.x & 31;
    uint32_t acc[PF_N];
    unsigned long long prof_t0 = 0;
    if constexpr (PROF) {
#pragma unroll
        for (int i = 0; i < PF_N; ++i) acc[i] = 0;
        prof_t0 = globaltimer_ns();
        acc[PF_TOTAL] = (uint32_t)clock();
    }
    // Writes this role's record (one thread per role).
    auto prof_write = [&](int role) {
        if constexpr (PROF) {
            acc[PF_TOTAL] = (uint32_t)clock() - acc[PF_TOTAL];
            unsigned long long* rec = prof + ((size_t)blockIdx.x * (NWG + 1) + role) * PF_N;
#pragma unroll
            for (int i = 0; i < PF_N; ++i) rec[i] = acc[i];
            rec[PF_T0] = prof_t0;
            rec[PF_T1] = globaltimer_ns();
        }
    };

    if (wg == NWG) {
        // ---------------- producer warpgroup ----------------
        sm90::setmaxnreg_dec<X::PRODUCER_REGS>();
        if (warp == X::PRODUCER_WARP) {
            Walk walk;
            walk.init<SECTIONS>(spans, span_pos_s, KV, NWG * BP, HD * 4);
            Ring<L::KS> kr;
            Ring<L::VS> vr;
            Clock<PROF> clk;
            clk.start();
            for (int it = 0; walk.next(); ++it) {
                const ItemT item = make_item<NWG>(spans, span_pos_s, walk, BP);
                if (lane == 0) {
                    const int slot = it & 1;
                    sm90::mbar_wait(bar(L::Q_EMPTY + slot), ((it >> 1) & 1) ^ 1);
                    clk.lap(acc, PF_ITEM);
                    const uint32_t qfull = bar(L::Q_FULL + slot);
                    int nq = 0;
#pragma unroll
                    for (int w = 0; w < NWG; ++w) nq += item.kts[w] > 0;
                    // The box is {64, R, BP}: R * BP rows of 128 bytes per half, zero-filled parts included.
                    sm90::mbar_arrive_expect_tx(qfull, (uint32_t)(nq * L::HALVES * R * BP * 128));
#pragma unroll
                    for (int w = 0; w < NWG; ++w) {
                        if (item.kts[w] == 0) continue;
                        const uint32_t q_tile = base + L::Q_OFF + (uint32_t)(slot * NWG + w) * L::Q_TILE;
#pragma unroll
                        for (int h = 0; h < L::HALVES; ++h)
                            tma_load_3d(q_tile + h * L::Q_HALF, &q_map, qfull, h * 64, item.g * R,
                                        item.in_row + item.p0 + w * BP);
                    }
                    // K one tile ahead of V (the consumers need K_n at the start of iteration n, V_n one iteration
                    // later): K0, K1, V0, K2, V1, ..., K_{kt-1}, V_{kt-2}, V_{kt-1}.
                    for (int n = 0; n <= item.kt; ++n) {
                        if (n < item.kt) {
                            sm90::mbar_wait(bar(L::EMPTY_K + kr.i), kr.ph ^ 1);
                            clk.lap(acc, PF_WAITK);
                            const uint32_t fk = bar(L::FULL_K + kr.i);
                            sm90::mbar_arrive_expect_tx(fk, L::KV_TILE);
#pragma unroll
                            for (int h = 0; h < L::HALVES; ++h)
                                sm90::tma_load_2d(base + L::K_OFF + kr.i * L::KV_TILE + h * L::HALF_TILE, &kv_map,
                                                  fk, item.g * HD + h * 64, item.in_row + n * BN);
                            kr.next();
                        }
                        if (n > 0) {
                            sm90::mbar_wait(bar(L::EMPTY_V + vr.i), vr.ph ^ 1);
                            clk.lap(acc, PF_WAITV);
                            const uint32_t fv = bar(L::FULL_V + vr.i);
                            sm90::mbar_arrive_expect_tx(fv, L::KV_TILE);
#pragma unroll
                            for (int h = 0; h < L::HALVES; ++h)
                                sm90::tma_load_2d(base + L::V_OFF + vr.i * L::KV_TILE + h * L::HALF_TILE, &kv_map,
                                                  fv, (KV + item.g) * HD + h * 64, item.in_row + (n - 1) * BN);
                            vr.next();
                        }
                    }
                    if constexpr (PROF) {
                        acc[PF_TILES] += item.kt;
                        acc[PF_ITEMS] += 1;
                    }
                }
                __syncwarp();
            }
            if (lane == 0) prof_write(NWG);
        } else if (warp == X::FIXUP_WARP) {
            Walk walk;
            walk.init<SECTIONS>(spans, span_pos_s, KV, NWG * BP, HD * 4);
            Ring<L::VS> vr;
            while (walk.next()) {
                const ItemT item = make_item<NWG>(spans, span_pos_s, walk, BP);
                for (int n = 0; n < item.kt; ++n) {
                    sm90::mbar_wait(bar(L::FULL_V + vr.i), vr.ph);
                    const int valid = item.kv_len - n * BN;  // >= 1: keys of this tile inside the span's rows
                    if (valid < BN) {
                        const uint32_t vt = base + L::V_OFF + vr.i * L::KV_TILE + (uint32_t)valid * 128;
                        const int chunks = (BN - valid) * 8;  // 16-byte chunks past the last key, per half
#pragma unroll
                        for (int h = 0; h < L::HALVES; ++h)
                            for (int i = lane; i < chunks; i += 32) st_shared_v4_zero(vt + h * L::HALF_TILE + i * 16);
                        // Generic-proxy writes, read next by wgmma (async proxy): fence before the release.
                        sm90::fence_proxy_async_shared();
                    }
                    sm90::mbar_arrive(bar(L::VREADY + vr.i));
                    vr.next();
                }
            }
        }
    } else {
        // ---------------- consumer warpgroups ----------------
        sm90::setmaxnreg_inc<X::CONSUMER_REGS>();
        const int wtid = (int)threadIdx.x & 127;
        const int wwarp = wtid >> 5;
        const bool lane0 = lane == 0;
        const int r_a = 16 * wwarp + (lane >> 2);  // this thread's two rows of the tile: r_a and r_a + 8
        const int off_a = r_a / R, off_b = (r_a + 8) / R;
        const int rdiv = (65536 + R - 1) / R;      // row / R == (row * rdiv) >> 16 for row < 64, R <= 64
        const float sl2 = __fmul_rn(P.scale, 1.4426950408889634f);  // scores in base 2
        const uint32_t o_stage = base + L::O_OFF + (uint32_t)wg * L::O_TILE;
        char* const out = reinterpret_cast<char*>(P.out);
        const bool rec = PROF && wtid == 0;

        float o[HD / 2], s[64];
        uint32_t p[32];
#pragma unroll
        for (int i = 0; i < HD / 2; ++i) o[i] = 0.0f;
#pragma unroll
        for (int i = 0; i < 64; ++i) s[i] = 0.0f;
#pragma unroll
        for (int i = 0; i < 32; ++i) p[i] = 0u;

        // The pingpong turns, round robin: warpgroup 0 issues first (the last one hands it the first turn), then
        // 1, ..., NWG - 1, 0, ...
        if constexpr (PINGPONG) {
            if (wg == NWG - 1) named_barrier_arrive(X::TURN + 0, 256);
        }
        auto turn_wait = [&]() { sm90::named_barrier_sync(X::TURN + wg, 256); };
        auto turn_pass = [&]() { named_barrier_arrive(X::TURN + (wg + 1 == NWG ? 0 : wg + 1), 256); };

        Walk walk;
        walk.init<SECTIONS>(spans, span_pos_s, KV, NWG * BP, HD * 4);
        Ring<L::KS> kr;
        Ring<L::VS> vr;
        Clock<PROF> clk;
        clk.start();
        for (int it = 0; walk.next(); ++it) {
            const ItemT item = make_item<NWG>(spans, span_pos_s, walk, BP);
            const int slot = it & 1;
            int kt = item.kts[0];
#pragma unroll
            for (int w = 1; w < NWG; ++w) kt = wg == w ? item.kts[w] : kt;  // no dynamic index: kts in registers
            const int p0 = item.p0 + wg * BP;
            // Every warpgroup active: pingpong over the item's largest tile count each (equal turn counts).
            // Otherwise the active warpgroups run without turns.
            const bool pp = PINGPONG && item.all;
            const int nt = pp ? item.kt : kt;
            sm90::mbar_wait(bar(L::Q_FULL + slot), (it >> 1) & 1);
            if (rec) clk.lap(acc, PF_ITEM);
            float m_a = 0.f, m_b = 0.f, l_a = 0.f, l_b = 0.f, al_a = 0.f, al_b = 0.f;
            if (nt > 0) {
                const uint32_t q_tile = base + L::Q_OFF + (uint32_t)(slot * NWG + wg) * L::Q_TILE;
                const int pos_a = p0 + off_a, pos_b = p0 + off_b;
                const int key_lane = 2 * (lane & 3);
                // Tile 0.
                sm90::mbar_wait(bar(L::FULL_K + kr.i), kr.ph);
                if (rec) clk.lap(acc, PF_WAITK);
                if (pp) {
                    turn_wait();
                    if (rec) clk.lap(acc, PF_TURN);
                }
                sm90::wgmma_fence();
                s_gemm<HD>(s, q_tile, base + L::K_OFF + kr.i * L::KV_TILE);
                sm90::wgmma_commit();
                if (pp) turn_pass();
                if (rec) clk.lap(acc, PF_ISSUE);
                sm90::wgmma_wait<0>();
                sm90::fence_operand(s);
                if (lane0) sm90::mbar_arrive(bar(L::EMPTY_K + kr.i));
                kr.next();
                if (rec) clk.lap(acc, PF_WAITS);
                softmax_any<true>(BN - 1 > p0, s, m_a, m_b, l_a, l_b, al_a, al_b, key_lane, pos_a, pos_b, sl2);
                convert_p(p, s);
                if (rec) clk.lap(acc, PF_SOFT);
                for (int n = 1; n < nt; ++n) {
                    sm90::mbar_wait(bar(L::FULL_K + kr.i), kr.ph);
                    if (rec) clk.lap(acc, PF_WAITK);
                    if (pp) {
                        turn_wait();
                        if (rec) clk.lap(acc, PF_TURN);
                    }
                    sm90::wgmma_fence();  // P and O were written by ordinary instructions
                    s_gemm<HD>(s, q_tile, base + L::K_OFF + kr.i * L::KV_TILE);
                    sm90::wgmma_commit();
                    if (rec) clk.lap(acc, PF_ISSUE);
                    sm90::mbar_wait(bar(L::VREADY + vr.i), vr.ph);
                    if (rec) clk.lap(acc, PF_WAITV);
                    sm90::wgmma_fence();  // (the wait above sits between the two products; S_n keeps running)
                    pv_gemm<HD>(o, p, base + L::V_OFF + vr.i * L::KV_TILE, n == 1);
                    sm90::wgmma_commit();
                    if (pp) turn_pass();
                    sm90::fence_operand(o);
                    fence_regs(p);
                    if (rec) clk.lap(acc, PF_ISSUE);
                    sm90::wgmma_wait<1>();  // S_n is done; P_{n-1}.V_{n-1} may still run
                    sm90::fence_operand(s);
                    if (lane0) sm90::mbar_arrive(bar(L::EMPTY_K + kr.i));
                    kr.next();
                    if (rec) clk.lap(acc, PF_WAITS);
                    const int k0 = n * BN;
                    softmax_any<false>(k0 + BN - 1 > p0, s, m_a, m_b, l_a, l_b, al_a, al_b, k0 + key_lane, pos_a,
                                       pos_b, sl2);
                    if (rec) clk.lap(acc, PF_SOFT);
                    sm90::wgmma_wait<0>();
                    sm90::fence_operand(o);
                    fence_regs(p);
                    if (lane0) sm90::mbar_arrive(bar(L::EMPTY_V + vr.i));
                    vr.next();
                    if (rec) clk.lap(acc, PF_WAITPV);
                    rescale_o<HD>(o, al_a, al_b);
                    convert_p(p, s);
                    if (rec) clk.lap(acc, PF_SOFT);
                }
                // The last P.V (outside the turns, as in FA3: the other warpgroups' turn counts do not see it).
                sm90::mbar_wait(bar(L::VREADY + vr.i), vr.ph);
                if (rec) clk.lap(acc, PF_WAITV);
                sm90::wgmma_fence();
                pv_gemm<HD>(o, p, base + L::V_OFF + vr.i * L::KV_TILE, nt == 1);
                sm90::wgmma_commit();
                sm90::fence_operand(o);
                fence_regs(p);
                if (rec) clk.lap(acc, PF_ISSUE);
                sm90::wgmma_wait<0>();
                sm90::fence_operand(o);
                fence_regs(p);
                if (lane0) sm90::mbar_arrive(bar(L::EMPTY_V + vr.i));
                vr.next();
                if (rec) clk.lap(acc, PF_WAITPV);
                if constexpr (PROF) acc[PF_TILES] += nt;
            }
            // Q of this slot is no longer read; tiles this warpgroup does not compute are released as they arrive
            // (after their full barrier, so that a release never counts towards an earlier round of the stage).
            // V waits on vready, as the computing path does, not on full: every phase of every barrier a warpgroup
            // waits on is waited in order. Otherwise a warpgroup that skipped VS or more V tiles could pass a later
            // vready wait on the parity of a phase two rounds old (the fixup warp lagging one round), before its
            // tile is there (found by the protocol model, docs/log/attention_sm90.md §7).
            if (lane0) sm90::mbar_arrive(bar(L::Q_EMPTY + slot));
            for (int n = nt; n < item.kt; ++n) {
                sm90::mbar_wait(bar(L::FULL_K + kr.i), kr.ph);
                if (lane0) sm90::mbar_arrive(bar(L::EMPTY_K + kr.i));
                kr.next();
                sm90::mbar_wait(bar(L::VREADY + vr.i), vr.ph);
                if (lane0) sm90::mbar_arrive(bar(L::EMPTY_V + vr.i));
                vr.next();
            }
            if (rec) clk.lap(acc, PF_TAIL);
            if constexpr (PROF) acc[PF_ITEMS] += 1;
            if (kt == 0) continue;

            // Epilogue: O / l to bf16, staged (16-byte chunk c of row r at (c ^ (r & 7)) * 16), then the rows of the
            // span stored with 16-byte coalesced stores.
            l_a = __fadd_rn(l_a, __shfl_xor_sync(0xffffffffu, l_a, 1));
            l_b = __fadd_rn(l_b, __shfl_xor_sync(0xffffffffu, l_b, 1));
            l_a = __fadd_rn(l_a, __shfl_xor_sync(0xffffffffu, l_a, 2));
            l_b = __fadd_rn(l_b, __shfl_xor_sync(0xffffffffu, l_b, 2));
            const float inv_a = __frcp_rn(l_a), inv_b = __frcp_rn(l_b);
            constexpr int ROWB = HD * 2;  // staged row bytes
            constexpr int CPR = HD / 8;   // 16-byte chunks per row
            sm90::named_barrier_sync(1 + wg, 128);  // the previous item's reads of the staging buffer are done
            {
                const uint32_t wa = o_stage + (uint32_t)(r_a * ROWB + (lane & 3) * 4);
                const uint32_t wb = wa + 8 * ROWB;
                const int sw = r_a & 7;  // = (r_a + 8) & 7
#pragma unroll
                for (int j = 0; j < CPR; ++j) {
                    st_shared_u32(wa + ((j ^ sw) * 16),
                                  pack_bf16x2(__fmul_rn(o[4 * j], inv_a), __fmul_rn(o[4 * j + 1], inv_a)));
                    st_shared_u32(wb + ((j ^ sw) * 16),
                                  pack_bf16x2(__fmul_rn(o[4 * j + 2], inv_b), __fmul_rn(o[4 * j + 3], inv_b)));
                }
            }
            sm90::named_barrier_sync(1 + wg, 128);
            const int rows_used = R * BP;
#pragma unroll
            for (int k = 0; k < 64 * CPR / 128; ++k) {
                const int idx = wtid + 128 * k;
                const int row = idx / CPR, q = idx % CPR;
                const int po = (row * rdiv) >> 16;  // row / R
                const int pos = p0 + po;
                if (row < rows_used && pos >= item.pos && pos < item.kv_len) {
                    const int head = item.g * R + (row - po * R);
                    const uint4 v = ld_shared_v4(o_stage + (uint32_t)(row * ROWB + ((q ^ (row & 7)) * 16)));
                    const long long e =
                        (long long)(item.out_row + pos - item.pos) * P.out_ld + (long long)head * HD + q * 8;
                    *reinterpret_cast<uint4*>(out + 2 * e) = v;
                }
            }
            if (rec) clk.lap(acc, PF_EPI);
        }
        // Warpgroup 0 takes the last turn warpgroup NWG - 1 handed over (one more arrival than turns: the first).
        if constexpr (PINGPONG) {
            if (wg == 0) turn_wait();
        }
        if (wtid == 0) prof_write(wg);
    }
}

}  // namespace attn90

// ----------------------------------------------------------------------------
// CUDA kernels

// The entries: one per (head dim, consumer warpgroups) the launcher picks (consumer_wgs).
#define ATTENTION_SM90_ENTRY(NAME, HD, NWG)                                                                        \
    extern "C" __global__ void __launch_bounds__(attn90::Roles<NWG>::THREADS, 1)                                   \
        NAME(const __grid_constant__ sm90::TmaMap q_map, const __grid_constant__ sm90::TmaMap kv_map,              \
             const __grid_constant__ Spans spans, const __grid_constant__ AttnSm90Params params) {                 \
        attn90::attention_sm90<HD, NWG, true, true, false>(q_map, kv_map, spans, params, nullptr);                 \
    }

ATTENTION_SM90_ENTRY(attention_sm90_causal_bf16_hd64, 64, 3)
ATTENTION_SM90_ENTRY(attention_sm90_causal_bf16_hd64_wg2, 64, 2)
ATTENTION_SM90_ENTRY(attention_sm90_causal_bf16_hd128, 128, 2)
