/*
Grouped bf16 GEMM, version 4, for sm_90a (H100/H200): TMA loads, wgmma, warp specialisation, persistent tiles.
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
  gemm_sm90_nt_bf16_bf16_bf16_bn{128,144,152,160,192,208,224,256}  C bf16, rounded to nearest even once from the
                                                f32 accumulator. (v2 had bn128/192/256; v3 adds the other widths.)
  gemm_sm90_nt_bf16_bf16_f32_bn{128,144,152,160,192,208,224,256}   C f32; params.accumulate != 0: C = C + A.B^T
                                                (one f32 add, C read once, written once: the fused residual add).
                                                v7: params.mirror_k != 0 (all f32 entries, narrow ones too): every
                                                element stored to C also goes, rounded to nearest even bf16, to
                                                address/2 + mirror_k, a bf16 buffer of C's layout (the engine's bf16
                                                copy of the hidden rows, which the memory's projections read: no
                                                to_bf16 pass). Written in a pass of its own after the f32 stores (the
                                                storer's 40 registers and the inline epilogue's keep their sizes).
  gemm_sm90_nt_bf16_bf16_{bf16,f32}_bn{16,32,64}  v5, the narrow (decode) widths: the same numerics as the widths
                                                above; only for launches whose problems all have m <= 64 (else
                                                they trap); A box of gemm_sm90_decode_a_rows(max m) rows (8..64),
                                                inline epilogue; v6: 128/BN k-blocks per stage, 2-16 stages
                                                (sm90::gemm_sm90_narrow); v10: where k % 64 == 0 both maps are 3-D
                                                views {64, rows, k/64} (strides ld*2, 128 bytes) with boxes
                                                {64, rows, 128/BN}: one copy per operand per stage. Picked by
                                                gemm_sm90_decode_bn_rule.
  gemm_sm90_nt_bf16_bf16_swiglu_bn128_decode    v6, the narrow SwiGLU tile (128 interleaved B rows, 64 outputs;
                                                m <= 64; one k-block per stage, up to 11 stages; the fast silu of
                                                the SwiGLU entries below, the same bytes). The decode rule's
                                                GEMM_SM90_DECODE_SWIGLU_BN.
  gemm_sm90_nt_bf16_bf16_{bf16_bn{16,32,64},swiglu_bn128_decode}_normed   v9, the narrow entries above with the A
                                                rows made, not loaded: row r of problem p is the RMSNorm of f32 row
                                                norm.x_row[p] + r of norm.x with norm weights norm.layer[p]
                                                (GemmSm90NormRows), by rms_norm_f32_few's arithmetic, so the bytes of
                                                rms_norm + the unnormed entry (a decode step's norm without its own
                                                launch). m <= 8, k <= 4096; no A map: (b_map, params, norm).
  gemm_sm90_nt_bf16_bf16_bf16_bn{128,192,256}_rope_hd64, _bn{128,256}_rope_hd128   v12, the bf16 entries of those
                                                widths with a prefill's RoPE in the epilogue (GemmSm90Rope,
                                                sm90/rope_rows.cuh): problems flagged in rope.rotate_mask are whole
                                                segments whose row r is rotated at position r before the epilogue
                                                stores it (q and k heads: columns < rope.rot_cols); head-aligned
                                                tiles only. The bytes of the entry of the same width + rope_bf16 in
                                                place: (a_map, b_map, params, rope).
  gemm_sm90_nt_bf16_bf16_swiglu_bn{128,256}     fused SwiGLU, output bf16 [m, n/2] (n = 2*I, B rows). B is the
        gate/up weight interleaved in blocks of 64 rows: for output columns j0 .. j0+63 (j0 = 64*b), B rows
        128*b .. 128*b+63 are gate rows j0 .. j0+63 and B rows 128*b+64 .. 128*b+127 are up rows j0 .. j0+63, i.e.
            B_interleaved[128*b + r]      = W_gate[64*b + r]   (r in 0..63)
            B_interleaved[128*b + 64 + r] = W_up  [64*b + r]
        for b in 0 .. I/64 - 1 (per layer; layers stacked as usual, b_row = layer * 2I). Output column
        j = 64*b + r is silu(g) * u with g, u the f32 accumulators of B rows 128b + r and 128b + 64 + r,
        silu(x) = x * rcp.approx(1 + ex2.approx(-x * log2 e)) in f32 (v4; v2/v3: x / (1 + expf(-x)) as swiglu.cu;
        the two differ by ~1e-6 relative, far below the bf16 rounding of the output), rounded to bf16 once. ldc is
        in output elements.
All take (const __grid_constant__ TmaMap a_map, const __grid_constant__ TmaMap b_map,
          const __grid_constant__ GemmSm90Params params)  -- unchanged since v2 but for v7's mirror_k (8 bytes at the
          end; 0 = no mirror).
Launch: grid = number of SMs (any grid >= 1 is correct), block 384, dynamic shared memory
gemm_sm90_smem_bytes(epilogue, BN) (set cudaFuncAttributeMaxDynamicSharedMemorySize to it; a larger value up to
232448 is fine, so launchers that pass the v2 sizes of bn128/192/256 keep working; less traps at entry; v4's f32
entries of width 144/152/160 need more than v3's sizes), no cluster. The B map's box is
{64, BN}; the A map's box is {64, 128}, or {64, gemm_sm90_decode_a_rows(max m)} for the narrow widths. Tile
width: gemm_sm90_bn_rule(epilogue, n, k, number of SMs) below, a function of (n, k) and the device only; v5: when
every problem has m <= GEMM_SM90_DECODE_MAX_ROWS, gemm_sm90_decode_bn_rule(epilogue, n, k, SMs, problems with
rows, max m) instead, which may pick a narrow width -- allowed because no element's bits depend on the tile width (see
Determinism); docs/log/gemm_sm90.md has the models behind both.
Not exported: gemm_sm90<..., CL = 2>, a 2-CTA cluster variant (__cluster_dims__(2, 1, 1), B box {64, BN/2}, even
grid) that multicasts the shared B tile; the v2 per-row bulk-copy epilogue (Store::Bulk); a profiled variant
(PROF) that records per-CTA phase times. The development harness instantiates, checks and times them.

Structure (per CTA; 384 threads = 3 warpgroups; persistent: grid = number of SMs, see sm90/scheduler.cuh):
  warpgroup 2, producer (setmaxnreg.dec 40): one thread walks the tile list and, per k-block of 64, waits for an
    empty stage and issues two TMA copies (A 128x64, B BNx64, both 128B-swizzled) completing on the stage's full
    barrier (sm90/mbarrier.cuh). It runs up to STAGES k-blocks ahead, across tile boundaries, so the next tile's
    operands stream in while the consumers run the epilogue.
  warpgroups 0 and 1, consumers (setmaxnreg.inc 232): warpgroup w owns rows 64w .. 64w+63 of the 128-row tile and
    all BN columns: per k-block, 4 x wgmma m64nBNk16 (descriptors into the stage), commit, wait until at most the
    newest batch is in flight, then release the previous stage. Epilogue, in passes of 256 output bytes per row:
    accumulators -> this warpgroup's 17 KB shared staging buffer (64 rows, 272-byte pitch: conflict-free) ->
    coalesced 16-byte global stores (a warp writes whole 256-byte row pieces). v3: these ordinary stores replace
    v2's one-bulk-copy-per-row (cp.async.bulk): those went through the SM's single TMA unit, one instruction per row
    (serialised over the lanes of a warp in SASS), ahead of the producer's next loads; the v2 measurements put the
    cost of a tile's epilogue at ~2.8-4.2 us (docs/log/gemm_sm90.md). When accumulating (f32 C is read), the tile's
    C rows are prefetched into L2 a few k-blocks before the mainloop ends and each pass issues its C loads before
    it stages the accumulators. Rows >= m_p and columns >= n (n/2 for SwiGLU) are never stored. A warpgroup whose
    64 rows all lie past m_p skips its MMAs (it still waits and releases every stage).
  v4, the offloaded epilogue (Store::Off; the exported f32 entries of width 128..160 and both SwiGLU entries;
    sm90/epilogue.cuh has the protocol): the consumers write the finished tile (f32: acc, or C + acc in place;
    SwiGLU: silu(g) * u) into a whole-tile shared buffer OUT and go straight on to the next tile's MMAs; warps 9-11
    of the producer warpgroup (the "storer", otherwise idle) load the tile's C into OUT with cp.async while the
    tile's mainloop runs (accumulating) and copy OUT to global memory during the next tile's mainloop. So neither
    the C loads nor any global store of these entries is on the tensor cores' path any more.
Determinism: no split-K, no atomics; each output element is the sum over k-blocks 0, 1, ... in order, each k-block
4 chained wgmma in order; a tile's bits depend only on its A rows, B rows and k. So a problem gives the same bytes
alone or inside any grouped launch, with any grid size, and (v5) the same bytes at every tile width: each element is the same
chain of k16 wgmma steps over the same k-blocks and the same epilogue operation whatever BN and the A rows per
stage are (check/gemm_sm90.rs checks it bitwise at every width on the device; the decode rule relies on it).
Work: 2 * sum(m_p) * n * k FLOP; bytes at least 2*sum(m_p)*k + 2*n*k*(distinct layers) + out*sum(m_p)*n_out
(x2 when accumulating). Tile choice and measured speed: docs/log/gemm_sm90.md.
*/
#include <cuda_bf16.h>
#include <stdint.h>

#include "sm90/bulk.cuh"
#include "sm90/cluster.cuh"
#include "sm90/epilogue.cuh"
#include "sm90/mbarrier.cuh"
#include "sm90/rope_rows.cuh"
#include "sm90/scheduler.cuh"
#include "sm90/tma.cuh"
#include "sm90/warpgroup.cuh"
#include "sm90/wgmma.cuh"
#include "common/pdl.cuh"

#define GEMM_SM90_MAX_PROBLEMS 64

// One problem of a grouped GEMM launch (24 bytes, 8-byte aligned). Unchanged since v2.
typedef struct {
    unsigned long long c;  // device address of C_p[0][0] (16-byte aligned)
    int a_row;             // row of the A tensor map holding A_p[0]
    int b_row;             // row of the B tensor map holding B_p[0] (layer_p * n)
    int m;                 // rows of the problem, >= 0 (0: no work)
    int ldc;               // row stride of C_p in elements of the output type
} GemmSm90Problem;

// The launch (1560 bytes; with the two tensor maps the parameters are 1816 bytes, under the 4 KB limit). v7 added
// mirror_k at the end.
typedef struct {
    GemmSm90Problem problems[GEMM_SM90_MAX_PROBLEMS];
    int count;       // problems used, 1 .. 64
    int n;           // columns of every product (B rows per problem; for SwiGLU 2*I, the output has n/2)
    int k;           // the summed dimension (k % 8 == 0)
    int accumulate;  // f32 output only: nonzero -> C += A.B^T
    // f32 output only (v7): nonzero -> every stored f32 element also goes, rounded to bf16, to its mirror at
    // address/2 + mirror_k (sm90::store_mirror: a bf16 buffer of C's layout). 0: no mirror.
    unsigned long long mirror_k;
} GemmSm90Params;

// The normed entries (v9, `_normed`): the A rows are not loaded but made, problem p's row r being the RMSNorm of f32
// row x_row[p] + r of x with the norm weights of layer[p] -- rms_norm_f32_few's arithmetic (cuda/rms_norm.cu), so
// the same bf16 values as that kernel writes and the GEMM then loads. 560 bytes (with the B map and the params the
// arguments are 2,248 bytes, under the 4 KB limit).
typedef struct {
    const float* x;           // the f32 rows (the hidden rows)
    const __nv_bfloat16* w;   // the norm weights, [layers, k]
    long long x_ld;           // row stride of x in elements
    float eps;
    int pad;
    int x_row[GEMM_SM90_MAX_PROBLEMS];  // x's row of problem p's first A row (its m rows follow)
    int layer[GEMM_SM90_MAX_PROBLEMS];  // the norm weights' row of problem p
} GemmSm90NormRows;

static_assert(sizeof(GemmSm90NormRows) == 32 + 8 * GEMM_SM90_MAX_PROBLEMS, "GemmSm90NormRows layout is mirrored");
static_assert(sizeof(GemmSm90Problem) == 24, "GemmSm90Problem layout is mirrored by the Rust launcher");
static_assert(sizeof(GemmSm90Params) == 24 * GEMM_SM90_MAX_PROBLEMS + 24, "GemmSm90Params layout is mirrored");

// The epilogue kinds, as the tile rule takes them (also sm90::Epi).
#define GEMM_SM90_EPI_BF16 0
#define GEMM_SM90_EPI_F32 1
#define GEMM_SM90_EPI_SWIGLU 2

// The tile widths with entry points (bf16 and f32 output; SwiGLU only 128 and 256), ascending.
#define GEMM_SM90_NUM_BN 8
#define GEMM_SM90_BN_LIST {128, 144, 152, 160, 192, 208, 224, 256}

// The host-side tile-width rule (the Rust launcher mirrors it). A function of the epilogue, n, k and the device's
// SM count only, never of the rows or the number of problems of a launch, so a cell's tile shape (and hence its
// bits) never depends on its neighbours. Model (docs/log/gemm_sm90.md, "tile rule"): for a reference cell of 1152
// rows (9 row tiles of 128) and 1, 4 and 16 cells, the persistent schedule runs ceil(tiles / sms) waves of tiles
// that each cost BN * k_blocks * eff(BN) + overhead(BN) (units: one column for one k-block); eff(BN) charges the
// smaller tiles' extra operand traffic (L2 bytes per FLOP grow as 1/128 + 1/BN), the overhead is the exposed
// epilogue of a tile. Each width's score is its worst slowdown over the three cell counts against the best width for
// that count; the smallest score wins (ties within 0.5%: the wider tile). Units: one tile column for one k-block
// = 4 tensor-core cycles.
inline int gemm_sm90_bn_rule(int epi, int n, int k, int sms) {
    const int gemm_sm90_bn_list[GEMM_SM90_NUM_BN] = GEMM_SM90_BN_LIST;
    if (epi == GEMM_SM90_EPI_SWIGLU) return n >= 1024 ? 256 : 128;
    if (sms < 1) sms = 132;
    const int kb = (k + 63) / 64;
    const int counts[3] = {1, 4, 16};
    double cost[GEMM_SM90_NUM_BN][3];
    double best[3] = {1e300, 1e300, 1e300};
    for (int b = 0; b < GEMM_SM90_NUM_BN; ++b) {
        const int bn = gemm_sm90_bn_list[b];
        const double bytes_per_flop = (128.0 + bn) / (128.0 * bn);
        const double eff = 1.0 + 0.25 * (bytes_per_flop / (384.0 / 32768.0) - 1.0);
        // f32 (v4): the offloaded epilogue of widths <= 160 exposes only the shared-memory read-modify-write of
        // the tile (8*BN cycles accumulating, + ~300 fixed: 75 + 2*BN units); v3's inline epilogue (still used at
        // 192..256) measured ~3 us per BN-152 tile more than bf16's on the H200 (250 + 9*BN units).
        const double ovh = epi == GEMM_SM90_EPI_F32 ? (bn <= 160 ? 75.0 + 2.0 * bn : 250.0 + 9.0 * bn)
                                                    : 125.0 + 0.8 * bn;
        for (int c = 0; c < 3; ++c) {
            const long long tiles = 9LL * counts[c] * ((n + bn - 1) / bn);
            const long long waves = (tiles + sms - 1) / sms;
            cost[b][c] = (double)waves * (bn * kb * eff + ovh);
            if (cost[b][c] < best[c]) best[c] = cost[b][c];
        }
    }
    double score[GEMM_SM90_NUM_BN];
    double min_score = 1e300;
    for (int b = 0; b < GEMM_SM90_NUM_BN; ++b) {
        score[b] = 0.0;
        for (int c = 0; c < 3; ++c) {
            const double s = cost[b][c] / best[c];
            if (s > score[b]) score[b] = s;
        }
        if (score[b] < min_score) min_score = score[b];
    }
    int pick = 128;
    for (int b = 0; b < GEMM_SM90_NUM_BN; ++b)
        if (score[b] <= min_score * 1.005) pick = gemm_sm90_bn_list[b];  // the list ascends: the widest tie wins
    return pick;
}

// Decode tiles (v5, v6). A launch whose problems all have at most GEMM_SM90_DECODE_MAX_ROWS rows (decode steps: one
// row per request, or a few merged) gets few CTAs from the rule above (n / BN of them: 14 for n = 2048 on 132 SMs),
// each latency-bound on its own TMA pipeline. For such launches the narrow widths 16, 32, 64 exist (entry points
// gemm_sm90_nt_bf16_bf16_{bf16,f32}_bn{16,32,64}; v6: 128 / BN k-blocks of 64 per stage, see sm90::gemm_sm90_narrow),
// and this rule picks among every width with an entry point (narrow and wide), by a time model in ns refitted (v6)
// on the v5 measurements (ncu, H200, one row: ~160 ns per k-block per CTA at one k-block per stage, ~2.5 us fixed):
//   tiles  = row_tiles * ceil(n / BN)                  (row_tiles: problems with rows; each is one 128-row m-tile)
//   waves  = ceil(tiles / sms)
//   hbm    = tiles * kb * BN * 128 / 4000              (the B bytes at ~4 TB/s, the H200's usable HBM rate)
//   step   = narrow: max(120 + 40 * KS, KS * (BN + a_rows) * 128 / 100) per stage of KS = 128 / BN k-blocks
//                                                      (a barrier round trip ~120 ns + ~40 ns of TMA issue and a
//                                                      k-block's 4 chained wgmma; or the stage's bytes at ~100 GB/s
//                                                      per SM; a_rows = gemm_sm90_decode_a_rows(max m))
//            wide:   max(160, (BN + 128) * 128 / 90)    per k-block (v4/v5 measured: 128-row A tile + B at ~90 GB/s)
//   sm     = waves * steps * step                      (steps = ceil(kb / KS) narrow, kb wide)
//   cost   = 2500 + 400 * (waves - 1) + max(hbm, sm)   (launch, pipeline fill and the last epilogue; one more
//                                                      exposed epilogue per further wave)
// The smallest cost wins (ties within 0.5%: the wider tile). Allowed to depend on the rows and the problem count
// only because a cell's bytes do not depend on the tile width at all (same k order, BK = 64, the same k16 wgmma
// chain and epilogue arithmetic at every width: checked bitwise by check/gemm_sm90.rs's width checks on the device;
// the harness's [tile-invariance] probe showed it for 128..256). SwiGLU (v6): the narrow SwiGLU tile (below) or
// gemm_sm90_bn_rule's width, whichever the same model finds cheaper. The Rust launcher mirrors this (gemm_sm90::decode_tile_width) and DBRMT_DECODE_TILES=off turns it
// off there.
#define GEMM_SM90_DECODE_MAX_ROWS 64
#define GEMM_SM90_NUM_DECODE_BN 3
#define GEMM_SM90_DECODE_BN_LIST {16, 32, 64}
// The rows of the A box (and of the A bytes each stage expects) of a narrow-width launch whose largest problem has
// max_m rows: 8, 16, 32 or 64. The launcher builds the A tensor map with this box; the kernel derives the same
// number from the problems' m (one function, so the two agree; the Rust mirror is gemm_sm90::decode_a_rows).
__host__ __device__ constexpr int gemm_sm90_decode_a_rows(int max_m) {
    return max_m <= 8 ? 8 : (max_m <= 16 ? 16 : (max_m <= 32 ? 32 : 64));
}

// The decode model's cost in ns of a launch at width bn (see above): ks = the k-blocks per stage of a narrow entry
// (128 / BN; 1 for the narrow SwiGLU tile of 128 B rows), or 0 for a wide entry.
inline double gemm_sm90_decode_cost(int bn, int ks, int n, int k, int sms, int row_tiles, int max_m) {
    const int kbi = (k + 63) / 64;
    const double kb = (double)kbi;
    const long long tiles = (long long)row_tiles * ((n + bn - 1) / bn);
    const long long waves = (tiles + sms - 1) / sms;
    const double hbm = (double)tiles * kb * bn * 128.0 / 4000.0;
    double steps, step;
    if (ks > 0) {
        const double a_rows = (double)gemm_sm90_decode_a_rows(max_m);
        const double fixed = 120.0 + 40.0 * ks, bytes = ks * (bn + a_rows) * 128.0 / 100.0;
        steps = (double)((kbi + ks - 1) / ks);
        step = fixed > bytes ? fixed : bytes;
    } else {
        const double bytes = (bn + 128.0) * 128.0 / 90.0;
        steps = kb;
        step = bytes > 160.0 ? bytes : 160.0;
    }
    const double sm = (double)waves * steps * step;
    return 2500.0 + 400.0 * (double)(waves - 1) + (hbm > sm ? hbm : sm);
}

// v6: the narrow SwiGLU entry gemm_sm90_nt_bf16_bf16_swiglu_bn128_decode (128 interleaved B rows = 64 outputs per
// tile, one k-block per stage) is named GEMM_SM90_DECODE_SWIGLU_BN (64, its output columns) by the decode rule, which
// picks it for SwiGLU when its cost is below the (n, k) rule's width's by more than 0.5% (ties: the wide one).
#define GEMM_SM90_DECODE_SWIGLU_BN 64

inline int gemm_sm90_decode_bn_rule(int epi, int n, int k, int sms, int row_tiles, int max_m) {
    if (sms < 1) sms = 132;
    if (row_tiles < 1) row_tiles = 1;
    if (epi == GEMM_SM90_EPI_SWIGLU) {
        const int wide_bn = gemm_sm90_bn_rule(epi, n, k, sms);
        const double wide = gemm_sm90_decode_cost(wide_bn, 0, n, k, sms, row_tiles, max_m);
        const double narrow = gemm_sm90_decode_cost(128, 1, n, k, sms, row_tiles, max_m);
        return narrow * 1.005 < wide ? GEMM_SM90_DECODE_SWIGLU_BN : wide_bn;
    }
    const int narrow[GEMM_SM90_NUM_DECODE_BN] = GEMM_SM90_DECODE_BN_LIST;
    const int wide[GEMM_SM90_NUM_BN] = GEMM_SM90_BN_LIST;
    int list[GEMM_SM90_NUM_DECODE_BN + GEMM_SM90_NUM_BN];
    for (int i = 0; i < GEMM_SM90_NUM_DECODE_BN; ++i) list[i] = narrow[i];
    for (int i = 0; i < GEMM_SM90_NUM_BN; ++i) list[GEMM_SM90_NUM_DECODE_BN + i] = wide[i];
    double cost[GEMM_SM90_NUM_DECODE_BN + GEMM_SM90_NUM_BN];
    double min_cost = 1e300;
    for (int b = 0; b < GEMM_SM90_NUM_DECODE_BN + GEMM_SM90_NUM_BN; ++b) {
        const int bn = list[b];
        cost[b] = gemm_sm90_decode_cost(bn, bn < 128 ? 128 / bn : 0, n, k, sms, row_tiles, max_m);  // sm90::narrow_ks
        if (cost[b] < min_cost) min_cost = cost[b];
    }
    int pick = 128;
    for (int b = 0; b < GEMM_SM90_NUM_DECODE_BN + GEMM_SM90_NUM_BN; ++b)
        if (cost[b] <= min_cost * 1.005) pick = list[b];  // the list ascends: the widest tie wins
    return pick;
}

namespace sm90 {

constexpr int BM = 128;      // rows per tile: two consumer warpgroups of 64
constexpr int BK = 64;       // k per stage: 128 bytes of bf16, one 128B swizzle row
constexpr int THREADS = 384; // 2 consumer warpgroups + 1 producer warpgroup
constexpr int PRODUCER_REGS = 40;
constexpr int CONSUMER_REGS = 232;
constexpr int SMEM_LIMIT = 232448;  // dynamic shared memory per block (227 KB)
static_assert((int)Epi::Bf16 == GEMM_SM90_EPI_BF16 && (int)Epi::F32 == GEMM_SM90_EPI_F32 &&
                  (int)Epi::SwiGlu == GEMM_SM90_EPI_SWIGLU,
              "the rule's epilogue codes");

__host__ __device__ constexpr bool bn_supported(int bn) {
    return bn == 16 || bn == 32 || bn == 64 || bn == 128 || bn == 144 || bn == 152 || bn == 160 || bn == 192 ||
           bn == 208 || bn == 224 || bn == 256;
}
// The narrow (decode) widths (gemm_sm90_narrow): launches whose problems all have m <= NARROW_MAX_ROWS.
__host__ __device__ constexpr bool bn_narrow(int bn) { return bn == 16 || bn == 32 || bn == 64; }

// Shared memory plan for tile width BN (host and device): stages of A (16 KB) and B (BN x 128 B) tiles, the two
// staging buffers and the 2*STAGES mbarriers. The v2 widths keep their v2 stage counts (6, 4, 4: the launcher's
// smem sizes stay valid); the others take as many stages as fit. The dynamic shared memory base is 1024-byte
// aligned (it is the start of the block's window; the kernel traps if not), which the 128B swizzle needs.
__host__ __device__ constexpr int a_tile_bytes() { return BM * BK * 2; }
__host__ __device__ constexpr int b_tile_bytes(int bn) { return bn * BK * 2; }
// Epilogue shared memory: Stg/Bulk: the two 17 KB staging buffers; Off: the whole-tile output buffer OUT
// (sm90/epilogue.cuh) plus its two mbarriers.
__host__ __device__ constexpr int epi_smem_bytes(int bn, Epi e, Store s) {
    return s == Store::Off ? out_bytes_for(bn, e) + 16 : 2 * STAGING_BYTES;
}
// Stages: Stg/Bulk keep v3's counts (the v2 widths their v2 counts: 6 at 128, 4 at 192 and 256); Off takes as many
// as fit next to OUT, at most 6.
__host__ __device__ constexpr int stages_fit(int bn, int epi_bytes) {
    return (SMEM_LIMIT - epi_bytes - 128) / (a_tile_bytes() + b_tile_bytes(bn)) > 6
               ? 6
               : (SMEM_LIMIT - epi_bytes - 128) / (a_tile_bytes() + b_tile_bytes(bn));
}
__host__ __device__ constexpr int stages_for(int bn, Epi e = Epi::Bf16, Store s = Store::Stg) {
    return s == Store::Off ? stages_fit(bn, epi_smem_bytes(bn, e, s))
           : bn == 128     ? 6
           : (bn == 192 || bn == 256) ? 4
                                      : stages_fit(bn, 2 * STAGING_BYTES);
}
__host__ __device__ constexpr int smem_bytes(int bn, Epi e = Epi::Bf16, Store s = Store::Stg) {
    return stages_for(bn, e, s) * (a_tile_bytes() + b_tile_bytes(bn)) + epi_smem_bytes(bn, e, s) +
           2 * stages_for(bn, e, s) * 8;
}
// The store path and silu of the exported entry points (v4): the offloaded epilogue for f32 output at the widths
// whose whole f32 tile fits next to 4-5 stages (128..160) and for SwiGLU (its bf16 tile is at most 32 KB);
// v3's inline epilogue elsewhere (bf16 output, f32 at 192..256).
__host__ __device__ constexpr Store exported_store(int bn, Epi e) {
    return (e == Epi::SwiGlu || (e == Epi::F32 && bn <= 160)) ? Store::Off : Store::Stg;
}
__host__ __device__ constexpr Silu exported_silu(Epi e) { return e == Epi::SwiGlu ? Silu::Fast : Silu::Exact; }
// The narrow widths' most rows: a launch of them has m <= 64 in every problem, so consumer warpgroup 0 alone computes.
constexpr int NARROW_MAX_ROWS = 64;
// v6: the narrow widths' plan (the kernel gemm_sm90_narrow below has the design).
__host__ __device__ constexpr int narrow_ks(int bn) { return bn >= 128 ? 1 : 128 / bn; }
constexpr int NARROW_MAX_STAGES = 16;
// The stage area (1024-aligned), then the two staging buffers, then 2 * NARROW_MAX_STAGES mbarriers.
constexpr int NARROW_AREA = ((SMEM_LIMIT - 2 * STAGING_BYTES - 2 * NARROW_MAX_STAGES * 8) / 1024) * 1024;
__host__ __device__ constexpr int narrow_smem_bytes() {
    return NARROW_AREA + 2 * STAGING_BYTES + 2 * NARROW_MAX_STAGES * 8;
}
__host__ __device__ constexpr int narrow_stride(int bn, int a_rows) { return narrow_ks(bn) * (a_rows + bn) * BK * 2; }
__host__ __device__ constexpr int narrow_stages(int bn, int a_rows) {
    return NARROW_AREA / narrow_stride(bn, a_rows) > NARROW_MAX_STAGES ? NARROW_MAX_STAGES
                                                                       : NARROW_AREA / narrow_stride(bn, a_rows);
}
// v9, the normed entries: the A rows made once per problem into a slot of 8 rows x 128 bytes per k-block at the
// start of the area (NORMED_MAX_K: every model's hidden size we run), the stages of B after it.
constexpr int NORMED_ROWS = 8;
constexpr int NORMED_MAX_K = 4096;
__host__ __device__ constexpr int normed_a_bytes(int k) { return (k + BK - 1) / BK * NORMED_ROWS * BK * 2; }
__host__ __device__ constexpr int normed_stages(int bn, int k) {
    return (NARROW_AREA - normed_a_bytes(k)) / (narrow_ks(bn) * b_tile_bytes(bn)) > NARROW_MAX_STAGES
               ? NARROW_MAX_STAGES
               : (NARROW_AREA - normed_a_bytes(k)) / (narrow_ks(bn) * b_tile_bytes(bn));
}
static_assert(normed_stages(16, NORMED_MAX_K) >= 4 && normed_stages(128, NORMED_MAX_K) >= 4,
              "the normed plan keeps stages of B at the widest k");
static_assert(narrow_smem_bytes() + 8 <= SMEM_LIMIT, "the v6 narrow plan fits, and the normed entries' mbarrier");
static_assert(narrow_stages(16, 64) >= 2 && narrow_stages(32, 64) >= 2 && narrow_stages(64, 64) >= 2 &&
                  narrow_stages(128, 64) >= 2,
              "at least two stages at every A box (the release of stage s - 1 waits for stage s)");
static_assert(narrow_stages(16, 8) == 8 && narrow_stages(32, 8) == 9 && narrow_stages(64, 8) == 10 &&
                  narrow_stages(128, 8) == 11,
              "the one-row stage counts the notes state");
static_assert(narrow_ks(16) * b_tile_bytes(16) == 16384 && narrow_ks(32) * b_tile_bytes(32) == 16384 &&
                  narrow_ks(64) * b_tile_bytes(64) == 16384,
              "16 KB of B per stage");

__host__ __device__ constexpr int exported_smem_bytes(int bn, Epi e) {
    return bn_narrow(bn) ? narrow_smem_bytes() : smem_bytes(bn, e, exported_store(bn, e));
}
static_assert(smem_bytes(128) == 231520 && smem_bytes(192) == 198720 && smem_bytes(256) == 231488,
              "the v2 widths keep their v2 shared memory sizes (Stg)");
static_assert(exported_smem_bytes(128, Epi::F32) <= 231520 && exported_smem_bytes(128, Epi::SwiGlu) <= 231520 &&
                  exported_smem_bytes(256, Epi::SwiGlu) <= 231488,
              "a launcher that still passes the v2 sizes gives the v4 entries enough shared memory");
static_assert(smem_bytes(144) <= SMEM_LIMIT && smem_bytes(152) <= SMEM_LIMIT && smem_bytes(160) <= SMEM_LIMIT &&
                  smem_bytes(208) <= SMEM_LIMIT && smem_bytes(224) <= SMEM_LIMIT,
              "fits the 227 KB of dynamic shared memory per block");
static_assert(smem_bytes(128, Epi::F32, Store::Off) <= SMEM_LIMIT && smem_bytes(160, Epi::F32, Store::Off) <= SMEM_LIMIT &&
                  smem_bytes(192, Epi::Bf16, Store::Off) <= SMEM_LIMIT &&
                  smem_bytes(256, Epi::SwiGlu, Store::Off) <= SMEM_LIMIT,
              "the offloaded plans fit");
static_assert(stages_for(128, Epi::F32, Store::Off) == 5 && stages_for(152, Epi::F32, Store::Off) == 4 &&
                  stages_for(160, Epi::F32, Store::Off) == 4 && stages_for(256, Epi::SwiGlu, Store::Off) == 4 &&
                  stages_for(128, Epi::SwiGlu, Store::Off) == 6,
              "the stage counts the notes state");
static_assert(PRODUCER_REGS * 128 + CONSUMER_REGS * 256 <= 65536, "register file");
constexpr int STORER_THREADS = 96;  // Off: warps 9-11
constexpr int STORER_BARRIER = 3;   // Off: named barrier of the storer warps (1, 2: the consumer warpgroups)

// Per-CTA phase record of the profiled variant (PROF): 8 x u64 per CTA, written by consumer warpgroup 0's thread 0.
//   [0] %globaltimer at entry (ns)   [1] %globaltimer at exit    [2] clock64 cycles entry -> exit
//   [3] cycles waiting for the first stage of each tile (sum)    [4] cycles of the k-loops (sum, from the first
//   stage's arrival to the last wgmma's completion)              [5] cycles of the epilogues (sum)
//   [6] tiles (with rows for warpgroup 0)                        [7] k-blocks of those tiles (sum)
//   Off only, written by storer thread 0: [8] %globaltimer when it has issued its last stores.
constexpr int PROF_WORDS = 9;

__device__ __forceinline__ uint64_t global_timer() {
    uint64_t t;
    asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(t));
    return t;
}

// S: how the epilogue stores (Stg, the exported kernels; Bulk, v2's, harness only).
// CL: 1, or 2 for the 2-CTA cluster variant (the kernel must then carry __cluster_dims__(2, 1, 1) and the B map a
// box of {64, BN/2}): the two CTAs compute consecutive tiles of the list and, when those share a B tile, each loads
// one half of it multicast to both (sm90/cluster.cuh). Same tiles, same bytes as CL = 1.
// PROF: record per-CTA phase times into prof[blockIdx.x * PROF_WORDS ..] (harness only; prof unused otherwise).
// SL: silu of the SwiGLU epilogue (Off only; Stg and Bulk always use the exact one).
template <int BN, Epi E, Store S = Store::Stg, int CL = 1, bool PROF = false, Silu SL = Silu::Exact, int ROPE_HD = 0>
__device__ __forceinline__ void gemm_sm90(const TmaMap& a_map, const TmaMap& b_map, const GemmSm90Params& P,
                                          unsigned long long* prof = nullptr, const GemmSm90Rope* rp = nullptr) {
    static_assert(bn_supported(BN), "tile widths with a wgmma wrapper and an entry point");
    static_assert(E != Epi::SwiGlu || BN % 128 == 0, "SwiGLU tiles hold whole 64-gate + 64-up blocks");
    static_assert(CL == 1 || CL == 2, "clusters of 1 or 2 CTAs");
    static_assert(S != Store::Off || CL == 1, "the offloaded epilogue is for single-CTA launches");
    static_assert(S == Store::Off || SL == Silu::Exact, "the inline epilogues use the exact silu");
    static_assert(!bn_narrow(BN), "the narrow widths run gemm_sm90_narrow");
    static_assert(ROPE_HD == 0 || (E == Epi::Bf16 && S == Store::Stg && CL == 1 && BN % ROPE_HD == 0),
                  "v12, RoPE: bf16 output through the staging epilogue, head-aligned tiles");
    constexpr bool OFF = S == Store::Off;
    constexpr int STAGES = stages_for(BN, E, S);
    constexpr int EPI_BYTES = epi_smem_bytes(BN, E, S) - (OFF ? 16 : 0);  // staging buffers, or OUT
    constexpr uint32_t A_BYTES = a_tile_bytes();
    constexpr uint32_t B_BYTES = b_tile_bytes(BN);
    constexpr uint32_t B_HALF = B_BYTES / 2;  // CL = 2: B is loaded as two boxes of BN/2 rows
    static_assert(A_BYTES % 1024 == 0 && B_BYTES % 1024 == 0 && (CL == 1 || B_HALF % 1024 == 0),
                  "every tile (and half B tile) 1024-byte aligned (128B swizzle)");
    constexpr int PLAN_BYTES = smem_bytes(BN, E, S);
    static_assert(PLAN_BYTES <= SMEM_LIMIT, "shared memory plan");

    extern __shared__ __align__(1024) unsigned char smem_raw[];
    const uint32_t base = smem_u32(smem_raw);
    if (base & 1023u) __trap();  // the 128B swizzle needs 1024-byte aligned tiles
    {
        // A launch with less dynamic shared memory than this plan (e.g. a launcher still using v3's sizes for the
        // f32 widths 144-160, which v4 enlarged) traps instead of overrunning the block's window.
        uint32_t dyn;
        asm("mov.u32 %0, %%dynamic_smem_size;\n" : "=r"(dyn));
        if (dyn < (uint32_t)PLAN_BYTES) __trap();
    }
    const uint32_t a_smem = base;                            // STAGES x A tile
    const uint32_t b_smem = a_smem + STAGES * A_BYTES;       // STAGES x B tile
    const uint32_t staging = b_smem + STAGES * B_BYTES;      // Stg/Bulk: 2 x STAGING_BYTES; Off: OUT (1024-aligned)
    const uint32_t full_bar = staging + EPI_BYTES;           // STAGES x 8 bytes
    const uint32_t empty_bar = full_bar + STAGES * 8;        // STAGES x 8 bytes
    const uint32_t out_free = empty_bar + STAGES * 8;        // Off: OUT may be written (and holds C if accumulating)
    const uint32_t out_full = out_free + 8;                  // Off: OUT holds the finished tile

    if (PROF && threadIdx.x == 0) {
        // Entry times go straight to the record (no register held across the kernel for them).
        prof[(size_t)blockIdx.x * PROF_WORDS + 0] = global_timer();
        prof[(size_t)blockIdx.x * PROF_WORDS + 2] = clock64();
    }

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
        if constexpr (OFF) {
            mbar_init(out_free, 1);  // storer thread 0, once per tile
            mbar_init(out_full, 2);  // one thread per consumer warpgroup, once per tile
        }
        mbar_fence_init();
    }
    if constexpr (CL == 2) {
        cluster_sync();  // the peer's barriers are initialised before any multicast or remote arrive
    } else {
        __syncthreads();
    }
    // Programmatic dependent launch: the set-up above (no global memory) overlaps the previous kernel's tail.
    pdl_entry();

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
            const uint32_t a_tx = A_BYTES;  // the whole A tile each stage
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
                    mbar_arrive_expect_tx(full, a_tx + B_BYTES);
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
        } else if constexpr (OFF) {
            if (threadIdx.x >= 256 + 32) {
                // ---------------- storer (warps 9-11; sm90/epilogue.cuh, "The offloaded epilogue") ----------------
                const int stid = threadIdx.x - (256 + 32);
                constexpr int OUT_BYTES = E == Epi::F32 ? 4 : 2;
                constexpr int BN_OUT = E == Epi::SwiGlu ? BN / 2 : BN;
                const bool load_c = E == Epi::F32 && P.accumulate != 0;
                const int n_out = E == Epi::SwiGlu ? P.n / 2 : P.n;
                Tile t;
                bool mc, peer_busy;
                uint32_t ph = 0;
                bool first = true;
                while (next_tile(t, mc, peer_busy)) {
                    const GemmSm90Problem& pr = P.problems[t.p];
                    const int row0 = t.m_tile * BM;
                    const int rows = min(BM, pr.m - row0);
                    const int col0 = t.n_tile * BN_OUT;
                    const int cols = min(BN_OUT, n_out - col0);
                    const long long ldc_bytes = (long long)pr.ldc * OUT_BYTES;
                    char* const c_tile =
                        reinterpret_cast<char*>(pr.c) + (long long)row0 * ldc_bytes + (long long)col0 * OUT_BYTES;
                    // Every storer read of OUT (previous tile) is done before OUT is refilled or handed back.
                    if (!first) named_barrier_sync(STORER_BARRIER, STORER_THREADS);
                    if (load_c) {
                        storer_copy<BN, E, STORER_THREADS>(staging, stid, c_tile, ldc_bytes, rows, cols, true);
                        cp_async_wait_all();
                        named_barrier_sync(STORER_BARRIER, STORER_THREADS);
                    }
                    if (stid == 0) mbar_arrive(out_free);
                    mbar_wait(out_full, ph);
                    storer_copy<BN, E, STORER_THREADS>(staging, stid, c_tile, ldc_bytes, rows, cols, false,
                                                       E == Epi::F32 ? P.mirror_k : 0ull);
                    ph ^= 1;
                    first = false;
                }
                // PROF: when the last stores were issued (a storer waiting for OUT shows up as the consumers' wait
                // for out_free in their epilogue time). Nothing is held across the loop for it (40 registers).
                if (PROF && stid == 0) prof[(size_t)blockIdx.x * PROF_WORDS + 8] = global_timer();
            }
        }
    } else {
        // ---------------- consumers ----------------
        setmaxnreg_inc<CONSUMER_REGS>();
        const int wtid = threadIdx.x % 128;
        const bool lane0 = (threadIdx.x & 31) == 0;
        const bool prof_thread = PROF && threadIdx.x == 0;
        const uint64_t a_desc0 = wgmma_desc_k128(a_smem + wg * 64 * 128);  // this warpgroup's 64 rows
        const uint64_t b_desc0 = wgmma_desc_k128(b_smem);
        const uint32_t buf = staging + wg * STAGING_BYTES;
        const bool accumulate = P.accumulate != 0;
        // Accumulating: the k-block after whose issue the tile's C rows are prefetched into L2 (a few k-blocks before
        // the end, so that the lines are still there when the epilogue reads them).
        const int pf_kb = k_blocks > 6 ? k_blocks - 6 : 0;
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

        // PROF: the sums go straight to this CTA's record (zeroed by the host), so that no register is held across
        // the tile loop for them.
        unsigned long long* const prof_rec = PROF ? prof + (size_t)blockIdx.x * PROF_WORDS : nullptr;
        Tile t;
        bool mc, peer_busy;
        int s = 0;
        uint32_t phase = 0;
        uint32_t out_phase = 0;  // Off: parity of this tile's out_free / out_full phases
        while (next_tile(t, mc, peer_busy)) {
            const GemmSm90Problem& pr = P.problems[t.p];
            const int row0 = t.m_tile * BM + wg * 64;  // first row of this warpgroup within the problem
            const int rows = pr.m - row0;              // rows of this warpgroup to store (may be <= 0)
            constexpr int OUT_BYTES = E == Epi::F32 ? 4 : 2;
            char* const c_base = reinterpret_cast<char*>(pr.c);
            const long long ldc_bytes = (long long)pr.ldc * OUT_BYTES;
            // Warp-uniform for the compiler (see wg above): the MMA path below is then not a divergent path.
            const bool active = __shfl_sync(0xffffffffu, (int)(rows > 0), 0) != 0;
            if (active) {
                uint32_t c0 = 0, c1 = 0, c2 = 0;  // 32-bit cycle counts: a tile is far shorter than 2^32 cycles
                if (prof_thread) c0 = (uint32_t)clock64();
                for (int kb = 0; kb < k_blocks; ++kb) {
                    mbar_wait(full_bar + 8 * s, phase);
                    if (prof_thread && kb == 0) c1 = (uint32_t)clock64();
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
                    if (!OFF && E == Epi::F32 && accumulate && kb == pf_kb) {
                        prefetch_c_rows<BN>(c_base, ldc_bytes, row0, rows, t.n_tile * BN, P.n, wtid);
                    }
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
                if (prof_thread) c2 = (uint32_t)clock64();
                if constexpr (OFF) {
                    // OUT is ours once the storer has drained the previous tile (and, accumulating, loaded C).
                    mbar_wait(out_free, out_phase);
                    epilogue_to_out<BN, E, SL>(acc, staging, wg, wtid, accumulate);
                    named_barrier_sync(1 + wg, 128);
                    if (wtid == 0) mbar_arrive(out_full);
                    out_phase ^= 1;
                } else {
                    if constexpr (ROPE_HD > 0) {
                        // v12: the problem's q and k pairs rotated before the epilogue rounds and stores them
                        if ((rp->rotate_mask >> t.p) & 1ull) rope_rows<BN, ROPE_HD>(acc, *rp, row0, rows, t.n_tile * BN, wtid);
                    }
                    epilogue<BN, E, S>(acc, buf, wtid, 1 + wg, c_base, ldc_bytes, row0, rows, t.n_tile * BN,
                                       E == Epi::SwiGlu ? P.n / 2 : P.n, accumulate,
                                       E == Epi::F32 ? P.mirror_k : 0ull);
                }
                if (prof_thread) {
                    const uint32_t c3 = (uint32_t)clock64();
                    prof_rec[3] += (uint32_t)(c1 - c0);
                    prof_rec[4] += (uint32_t)(c2 - c1);
                    prof_rec[5] += (uint32_t)(c3 - c2);
                    prof_rec[6] += 1;
                    prof_rec[7] += (uint64_t)k_blocks;
                }
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
                if constexpr (OFF) {
                    // Nothing to write, but the tile's handover still needs this warpgroup (see epilogue.cuh).
                    mbar_wait(out_free, out_phase);
                    if (wtid == 0) mbar_arrive(out_full);
                    out_phase ^= 1;
                }
            }
        }
        // The staging buffers must outlive the bulk copies reading them.
        if (S == Store::Bulk && wtid < 64) bulk_wait_all();
        if (prof_thread) {
            prof_rec[1] = global_timer();
            prof_rec[2] = clock64() - prof_rec[2];
        }
    }
    if constexpr (CL == 2) {
        // No CTA leaves while its peer may still arrive on its barriers or multicast into its shared memory.
        __syncwarp();
        cluster_sync();
    }
}

// ---------------------------------------------------------------------------------------------------------------
// v6: the narrow (decode) widths with several k-blocks per pipeline stage (the exported bn16/32/64 entries).
//
// v5 ran these widths with one k-block of 64 per stage; on the H200 each k-block cost ~170 ns per CTA (barrier
// round trip, two TMA issues, 4 tiny wgmma, wait, release) while bringing only 2-4 KB of B: down (128 k-blocks) took
// 22.7 us, o (32) 8.8 us. v6 puts NARROW_KS(BN) = 128 / BN k-blocks in a stage (8 at BN 16, 4 at 32, 2 at 64: 16 KB
// of B per stage at every width), one full barrier expecting all of the stage's bytes, 2 * KS TMA boxes per stage,
// and one wgmma batch of 4 * KS k16 steps per stage (commit, wait for the previous stage's batch, release it).
// A stage's A part holds KS slots of a_rows * 128 bytes (a_rows = gemm_sm90_decode_a_rows(max m), 8..64 rows: the
// A box), so the layout is runtime: stage stride = KS * (a_rows + BN) * 128, stages = min(NARROW_MAX_STAGES,
// NARROW_AREA / stride) (8 / 9 / 10 at BN 16 / 32 / 64 for one row; at least 2 always). The wgmma reads 64 A rows
// from a slot: rows past the box read the following slots of the same stage (or its B part), which have landed
// with the stage; they feed only accumulator rows >= max m, which are never stored (a wgmma output row depends only
// on its own A row). Only consumer warpgroup 0 computes (every problem has m <= 64): warpgroup 1 leaves at once and
// the empty barriers count warpgroup 0's 4 warps.
// Numerics: unchanged. Element (r, c) is acc = sum over k-blocks 0, 1, .. in order, 4 k16 wgmma each, chained in
// order into the same registers, scale-d 0 only on the tile's first k16; then the same epilogue operation. A stage
// only groups consecutive k-blocks; the last stage of a tile holds k_blocks - KS * (stages - 1) of them (no box past
// k_blocks is loaded, none of its wgmma issued, and the barrier expects exactly the boxes issued; inside the last
// k-block TMA zero-fills k >= K and counts the whole box, as in every width).
// v9: the A rows of a normed entry for problem p, made by consumer warpgroup 0 (wtid 0..127) into the k-block slots
// at `a_full` (8 rows x 128 bytes each, the 128B-swizzled layout TMA writes): row r < m is rms_norm_f32_few's output
// for x row x_row[p] + r -- the same columns per thread (wtid + 128 j), fmaf chain, xor butterfly, warp sums in
// order, rsqrtf(total / k + eps) and bf16(w * (x * s)) -- so its bytes are those rms_norm writes for the unnormed
// entries to load; rows m..7 and columns past k are zero (they feed only accumulator rows and k16 steps whose
// products are not stored or are zero). A row's x and w are loaded together, before anything waits on them. Ends
// with the writes made visible to wgmma (the async proxy) and, if `done` is nonzero, thread 0's arrival on that
// mbarrier (the producer holds back the B stream until then: behind it these few loads would queue for microseconds).
__device__ __forceinline__ void make_normed_rows(uint32_t a_full, const GemmSm90NormRows& nr, int p, int m, int k,
                                                 int k_blocks, int wtid, float* sums, uint32_t done) {
    constexpr int CACHED = NORMED_MAX_K / 128;
    // the previous problem's wgmma have finished in every warp before the slots are overwritten
    named_barrier_sync(1, 128);
    const __nv_bfloat16* wr = nr.w + (size_t)nr.layer[p] * k;
    for (int r = 0; r < m; ++r) {
        const float* xr = nr.x + (size_t)(nr.x_row[p] + r) * nr.x_ld;
        float xv[CACHED], wv[CACHED];
#pragma unroll
        for (int j = 0; j < CACHED; ++j) {
            const int c = wtid + j * 128;
            xv[j] = c < k ? xr[c] : 0.0f;
            wv[j] = c < k ? __bfloat162float(wr[c]) : 0.0f;
        }
        if (r == 0) {
            for (uint32_t o = 16u * wtid; o < (uint32_t)k_blocks * NORMED_ROWS * BK * 2; o += 16u * 128u) {
                asm volatile("st.shared.v4.u32 [%0], {%1, %1, %1, %1};\n" ::"r"(a_full + o), "r"(0u) : "memory");
            }
        }
        float ss = 0.0f;
#pragma unroll
        for (int j = 0; j < CACHED; ++j) {
            if (wtid + j * 128 < k) ss = fmaf(xv[j], xv[j], ss);
        }
        for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
        if ((wtid & 31) == 0) sums[wtid >> 5] = ss;
        named_barrier_sync(1, 128);  // also orders the zero stores above before the row's stores below
        if (wtid == 0) {
            float total = 0.0f;
            for (int i = 0; i < 4; ++i) total += sums[i];
            sums[4] = rsqrtf(total / (float)k + nr.eps);
        }
        named_barrier_sync(1, 128);
        const float sc = sums[4];
#pragma unroll
        for (int j = 0; j < CACHED; ++j) {
            const int c = wtid + j * 128;
            if (c < k) {
                const __nv_bfloat16 y = __float2bfloat16(wv[j] * (xv[j] * sc));
                // slot c / 64, row r, 16-byte chunk (c % 64) / 8 xor r (the 128B swizzle), element c % 8
                const uint32_t at = a_full + (uint32_t)(c / BK) * (NORMED_ROWS * BK * 2) + r * 128 +
                                    ((((c % BK) >> 3) ^ r) << 4) + (c & 7) * 2;
                asm volatile("st.shared.u16 [%0], %1;\n" ::"r"(at), "h"(*reinterpret_cast<const unsigned short*>(&y))
                             : "memory");
            }
        }
        named_barrier_sync(1, 128);  // sums[] is reused by the next row
    }
    fence_proxy_async_shared();
    named_barrier_sync(1, 128);
    if (done != 0u && wtid == 0) mbar_arrive(done);
}

template <int BN, Epi E, Silu SL = Silu::Exact, bool NORM = false>
__device__ __forceinline__ void gemm_sm90_narrow(const TmaMap& a_map, const TmaMap& b_map, const GemmSm90Params& P,
                                                 const GemmSm90NormRows* nr = nullptr) {
    static_assert((bn_narrow(BN) && E != Epi::SwiGlu) || (BN == 128 && E == Epi::SwiGlu),
                  "the narrow widths (bf16, f32) and the narrow SwiGLU tile (128 B rows: 64 gate + 64 up)");
    static_assert(E == Epi::SwiGlu || SL == Silu::Exact, "silu only in SwiGLU");
    constexpr int KS = narrow_ks(BN);
    constexpr uint32_t B_BYTES = b_tile_bytes(BN);
    static_assert(B_BYTES % 1024 == 0, "B slots 1024-byte aligned (128B swizzle)");

    extern __shared__ __align__(1024) unsigned char smem_raw[];
    const uint32_t base = smem_u32(smem_raw);
    if (base & 1023u) __trap();
    {
        uint32_t dyn;
        asm("mov.u32 %0, %%dynamic_smem_size;\n" : "=r"(dyn));
        if (dyn < (uint32_t)narrow_smem_bytes() + (NORM ? 8u : 0u)) __trap();  // normed: one more mbarrier
    }
    const uint32_t staging = base + NARROW_AREA;
    const uint32_t full_bar = staging + 2 * STAGING_BYTES;
    const uint32_t empty_bar = full_bar + NARROW_MAX_STAGES * 8;
    // normed (v9): the first problem's rows are made; the producer then streams B past its first stage
    const uint32_t normed_bar = empty_bar + NARROW_MAX_STAGES * 8;

    // The plan of this launch (the same in every thread): the A box rows from the problems' m (the launcher built
    // the A map with the same number), the stage stride and count. A problem of more than 64 rows traps.
    int max_m = 0;
    for (int p = 0; p < P.count; ++p) max_m = max(max_m, P.problems[p].m);
    if (max_m > NARROW_MAX_ROWS) __trap();
    const int a_rows = gemm_sm90_decode_a_rows(max_m);
    // normed (v9): no A in the stages, the made rows in front of them
    if (NORM && (max_m > NORMED_ROWS || P.k > NORMED_MAX_K)) __trap();
    const uint32_t a_full = base;
    const uint32_t ring = NORM ? base + normed_a_bytes(P.k) : base;
    const uint32_t a_slot = NORM ? 0u : (uint32_t)a_rows * BK * 2;  // 1024-byte multiple: 8..64 rows of 128 bytes
    const uint32_t stride = KS * (a_slot + B_BYTES);
    const int stages = NORM ? normed_stages(BN, P.k) : narrow_stages(BN, a_rows);

    const int wg = __shfl_sync(0xffffffffu, (int)threadIdx.x / 128, 0);
    const int tiles_n = (P.n + BN - 1) / BN;
    const int k_blocks = (P.k + BK - 1) / BK;
    const int k_stages = (k_blocks + KS - 1) / KS;

    if (threadIdx.x == 256) {
        tma_prefetch_map(&a_map);
        tma_prefetch_map(&b_map);
        for (int s = 0; s < NARROW_MAX_STAGES; ++s) {
            mbar_init(full_bar + 8 * s, 1);
            mbar_init(empty_bar + 8 * s, 4);  // the 4 warps of consumer warpgroup 0
        }
        if (NORM) mbar_init(normed_bar, 1);
        mbar_fence_init();
    }
    __syncthreads();
    // Programmatic dependent launch: the set-up above (no global memory) overlaps the previous kernel's tail.
    pdl_entry();

    TileWalk<BM, GemmSm90Params> walk(P, tiles_n, blockIdx.x, gridDim.x);
    // v10: where k is whole k-blocks and a stage holds several, the launcher's maps are 3-D ({64, rows, k / 64}) and a
    // stage is one box per operand
    const bool boxes3 = KS > 1 && P.k % BK == 0;
    if (wg == 2) {
        // ---------------- producer: per stage, up to KS pairs of boxes on one full barrier ----------------
        setmaxnreg_dec<PRODUCER_REGS>();
        if (threadIdx.x == 256) {
            Tile t;
            int s = 0;
            uint32_t phase = 0;
            bool first_tile = true;
            while (walk.advance(t)) {
                const int a_row = P.problems[t.p].a_row;  // m <= 64: one row tile, m_tile 0
                const int b_row = P.problems[t.p].b_row + t.n_tile * BN;
                for (int st = 0; st < k_stages; ++st) {
                    const int kb0 = st * KS;
                    const int nkb = min(KS, k_blocks - kb0);
                    const uint32_t full = full_bar + 8 * s;
                    const uint32_t stage = ring + (uint32_t)s * stride;
                    mbar_wait(empty_bar + 8 * s, phase ^ 1);
                    if (boxes3) {
                        // v10: one 3-D box per operand per stage (KS k-blocks; past k_blocks zero-filled, counted)
                        if (NORM && st == 1 && first_tile) mbar_wait(normed_bar, 0);
                        mbar_arrive_expect_tx(full, (uint32_t)KS * (a_slot + B_BYTES));
                        if (!NORM) tma_load_3d(stage, &a_map, full, 0, a_row, kb0);
                        tma_load_3d(stage + KS * a_slot, &b_map, full, 0, b_row, kb0);
                    } else {
                        mbar_arrive_expect_tx(full, (uint32_t)nkb * (a_slot + B_BYTES));
                        if (NORM) {
                            // the launch's first stage goes out with the norm's loads, the rest after its rows are made
                            if (st == 1 && first_tile) mbar_wait(normed_bar, 0);
                            for (int j = 0; j < nkb; ++j) {
                                tma_load_2d(stage + j * B_BYTES, &b_map, full, (kb0 + j) * BK, b_row);
                            }
                        } else if (nkb == KS) {
#pragma unroll
                            for (int j = 0; j < KS; ++j) {
                                tma_load_2d(stage + j * a_slot, &a_map, full, (kb0 + j) * BK, a_row);
                                tma_load_2d(stage + KS * a_slot + j * B_BYTES, &b_map, full, (kb0 + j) * BK, b_row);
                            }
                        } else {
                            // The tile's last stage, partial: only the boxes of k-blocks < k_blocks.
                            for (int j = 0; j < nkb; ++j) {
                                tma_load_2d(stage + j * a_slot, &a_map, full, (kb0 + j) * BK, a_row);
                                tma_load_2d(stage + KS * a_slot + j * B_BYTES, &b_map, full, (kb0 + j) * BK, b_row);
                            }
                        }
                    }
                    if (++s == stages) {
                        s = 0;
                        phase ^= 1;
                    }
                }
                if (NORM && first_tile && k_stages == 1) mbar_wait(normed_bar, 0);  // (never waited above)
                first_tile = false;
            }
        }
    } else {
        setmaxnreg_inc<CONSUMER_REGS>();
        if (wg != 0) return;  // every problem has m <= 64: warpgroup 1 has no row to compute
        // ---------------- consumer warpgroup 0 ----------------
        const int wtid = threadIdx.x % 128;
        const bool lane0 = (threadIdx.x & 31) == 0;
        const uint64_t desc0 = wgmma_desc_k128(base);
        const bool accumulate = P.accumulate != 0;
        const int pf_st = (k_blocks > 6 ? k_blocks - 6 : 0) / KS;  // accumulating: when C is prefetched into L2

        float acc[BN / 2];
#pragma unroll
        for (int i = 0; i < BN / 2; ++i) acc[i] = 0.0f;

        Tile t;
        int s = 0;
        uint32_t phase = 0;
        int normed_p = -1;  // the problem whose rows the A slots hold
        // the norm's five floats in the staging buffer (free between tiles: make_normed_rows starts with a barrier
        // after every thread's epilogue), not static shared memory, which would move the 1024-aligned window
        float* const norm_sums = reinterpret_cast<float*>(smem_raw + NARROW_AREA);
        while (walk.advance(t)) {
            const GemmSm90Problem& pr = P.problems[t.p];
            const int rows = pr.m;  // > 0: the walk skips problems without rows
            if constexpr (NORM) {
                if (t.p != normed_p) {
                    make_normed_rows(a_full, *nr, t.p, rows, P.k, k_blocks, wtid, norm_sums,
                                     normed_p < 0 ? normed_bar : 0u);
                    normed_p = t.p;
                }
            }
            constexpr int OUT_BYTES = E == Epi::F32 ? 4 : 2;
            char* const c_base = reinterpret_cast<char*>(pr.c);
            const long long ldc_bytes = (long long)pr.ldc * OUT_BYTES;
            for (int st = 0; st < k_stages; ++st) {
                // Warp-uniform for the compiler (a shuffle, as `wg`): the branch on it is then no divergent path
                // around the wgmma (which ptxas would serialise).
                const int nkb = __shfl_sync(0xffffffffu, min(KS, k_blocks - st * KS), 0);
                mbar_wait(full_bar + 8 * s, phase);
                const uint32_t stage = (ring - base) + (uint32_t)s * stride;
                fence_operand(acc);
                wgmma_fence();
                // Descriptors of the stage's first A and B slot; +32 bytes (2 in descriptor units) per k16 step
                // inside the 128-byte swizzled row (see wgmma.cuh), + one slot per k-block. Normed: A's slots are
                // the made rows', one per k-block of the whole k.
                const uint64_t da0 =
                    NORM ? desc0 + ((uint32_t)(st * KS) * (NORMED_ROWS * BK * 2) >> 4) : desc0 + (stage >> 4);
                const uint64_t db0 = desc0 + ((stage + KS * a_slot) >> 4);
                const uint32_t a_step = NORM ? (NORMED_ROWS * BK * 2) >> 4 : a_slot >> 4;
                if (nkb == KS) {
#pragma unroll
                    for (int j = 0; j < KS; ++j) {
#pragma unroll
                        for (int kk = 0; kk < BK / 16; ++kk) {
                            wgmma_m64k16<BN>(acc, da0 + j * a_step + 2 * kk, db0 + j * (B_BYTES >> 4) + 2 * kk,
                                             (st | j | kk) != 0);
                        }
                    }
                } else {
                    // The tile's last stage, holding nkb < KS k-blocks (k_blocks not a multiple of KS).
                    for (int j = 0; j < nkb; ++j) {
#pragma unroll
                        for (int kk = 0; kk < BK / 16; ++kk) {
                            wgmma_m64k16<BN>(acc, da0 + j * a_step + 2 * kk, db0 + j * (B_BYTES >> 4) + 2 * kk,
                                             (st | j | kk) != 0);
                        }
                    }
                }
                wgmma_commit();
                fence_operand(acc);
                if (E == Epi::F32 && accumulate && st == pf_st) {
                    prefetch_c_rows<BN>(c_base, ldc_bytes, 0, rows, t.n_tile * BN, P.n, wtid);
                }
                // The batch of the previous stage has completed: its stage may be refilled.
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
            epilogue<BN, E, Store::Stg, 0, SL>(acc, staging, wtid, 1, c_base, ldc_bytes, 0, rows, t.n_tile * BN,
                                               E == Epi::SwiGlu ? P.n / 2 : P.n, accumulate,
                                               E == Epi::F32 ? P.mirror_k : 0ull);
        }
    }
}

}  // namespace sm90

// The dynamic shared memory of the exported entry point of (epilogue, BN), in bytes (host and device; the Rust
// launcher mirrors it). Set cudaFuncAttributeMaxDynamicSharedMemorySize to it and launch with it (any larger value
// up to 232448 works too). The table is in docs/log/gemm_sm90.md and cuda/dev/README.md.
__host__ __device__ constexpr int gemm_sm90_smem_bytes(int epi, int bn) {
    return sm90::exported_smem_bytes(bn, (sm90::Epi)epi);
}

// ----------------------------------------------------------------------------
// CUDA kernels

// Each entry point: its width's exported store path and silu (v4: Off for f32 at 128..160 and for SwiGLU).
#define GEMM_SM90_ENTRY(NAME, BN, EPI)                                                                            \
    extern "C" __global__ void __launch_bounds__(sm90::THREADS, 1)                                                \
        NAME(const __grid_constant__ sm90::TmaMap a_map, const __grid_constant__ sm90::TmaMap b_map,              \
             const __grid_constant__ GemmSm90Params params) {                                                     \
        sm90::gemm_sm90<BN, EPI, sm90::exported_store(BN, EPI), 1, false, sm90::exported_silu(EPI)>(a_map, b_map, \
                                                                                                  params);        \
    }

// The narrow (decode) widths, v5: 64 A rows per stage, the inline (Stg) epilogue, exact numerics of the others.
#define GEMM_SM90_NARROW_ENTRY(NAME, BN, EPI)                                                                     \
    extern "C" __global__ void __launch_bounds__(sm90::THREADS, 1)                                                \
        NAME(const __grid_constant__ sm90::TmaMap a_map, const __grid_constant__ sm90::TmaMap b_map,              \
             const __grid_constant__ GemmSm90Params params) {                                                     \
        sm90::gemm_sm90_narrow<BN, EPI>(a_map, b_map, params);                                                     \
    }

// v12, the bf16 widths with a prefill's RoPE in the epilogue (whole segments in place, sm90/rope_rows.cuh): the
// head-aligned widths of head dims 64 and 128. The bytes of the entry of the same width + rope_bf16 in place.
#define GEMM_SM90_ROPE_ENTRY(NAME, BN, HD)                                                                         \
    extern "C" __global__ void __launch_bounds__(sm90::THREADS, 1)                                                \
        NAME(const __grid_constant__ sm90::TmaMap a_map, const __grid_constant__ sm90::TmaMap b_map,              \
             const __grid_constant__ GemmSm90Params params, const __grid_constant__ GemmSm90Rope rope) {           \
        sm90::gemm_sm90<BN, sm90::Epi::Bf16, sm90::Store::Stg, 1, false, sm90::Silu::Exact, HD>(a_map, b_map,     \
                                                                                              params, nullptr,   \
                                                                                              &rope);            \
    }
GEMM_SM90_ROPE_ENTRY(gemm_sm90_nt_bf16_bf16_bf16_bn128_rope_hd64, 128, 64)
GEMM_SM90_ROPE_ENTRY(gemm_sm90_nt_bf16_bf16_bf16_bn192_rope_hd64, 192, 64)
GEMM_SM90_ROPE_ENTRY(gemm_sm90_nt_bf16_bf16_bf16_bn256_rope_hd64, 256, 64)
GEMM_SM90_ROPE_ENTRY(gemm_sm90_nt_bf16_bf16_bf16_bn128_rope_hd128, 128, 128)
GEMM_SM90_ROPE_ENTRY(gemm_sm90_nt_bf16_bf16_bf16_bn256_rope_hd128, 256, 128)

// v6: the narrow SwiGLU tile (launches whose problems all have m <= 64; gemm_sm90_decode_swiglu_narrow picks it):
// 128 interleaved B rows (64 outputs) per tile, one k-block per stage (16 KB of B), the exported SwiGLU entries'
// fast silu (the same bytes as theirs).
extern "C" __global__ void __launch_bounds__(sm90::THREADS, 1)
    gemm_sm90_nt_bf16_bf16_swiglu_bn128_decode(const __grid_constant__ sm90::TmaMap a_map,
                                               const __grid_constant__ sm90::TmaMap b_map,
                                               const __grid_constant__ GemmSm90Params params) {
    sm90::gemm_sm90_narrow<128, sm90::Epi::SwiGlu, sm90::Silu::Fast>(a_map, b_map, params);
}
// v9, the normed entries (decode steps of at most 8 rows a problem, k <= 4096): the A rows made from the f32 rows by
// rms_norm_f32_few's arithmetic (GemmSm90NormRows) instead of loaded; no A map. The bytes of rms_norm_f32_few + the
// entry of the same width.
#define GEMM_SM90_NORMED_ENTRY(NAME, BN, EPI, SL)                                                                   \
    extern "C" __global__ void __launch_bounds__(sm90::THREADS, 1)                                                \
        NAME(const __grid_constant__ sm90::TmaMap b_map, const __grid_constant__ GemmSm90Params params,            \
             const __grid_constant__ GemmSm90NormRows norm) {                                                     \
        sm90::gemm_sm90_narrow<BN, EPI, SL, true>(b_map, b_map, params, &norm);                                    \
    }
GEMM_SM90_NORMED_ENTRY(gemm_sm90_nt_bf16_bf16_bf16_bn16_normed, 16, sm90::Epi::Bf16, sm90::Silu::Exact)
GEMM_SM90_NORMED_ENTRY(gemm_sm90_nt_bf16_bf16_bf16_bn32_normed, 32, sm90::Epi::Bf16, sm90::Silu::Exact)
GEMM_SM90_NORMED_ENTRY(gemm_sm90_nt_bf16_bf16_bf16_bn64_normed, 64, sm90::Epi::Bf16, sm90::Silu::Exact)
GEMM_SM90_NORMED_ENTRY(gemm_sm90_nt_bf16_bf16_swiglu_bn128_decode_normed, 128, sm90::Epi::SwiGlu, sm90::Silu::Fast)
GEMM_SM90_NARROW_ENTRY(gemm_sm90_nt_bf16_bf16_bf16_bn16, 16, sm90::Epi::Bf16)
GEMM_SM90_NARROW_ENTRY(gemm_sm90_nt_bf16_bf16_bf16_bn32, 32, sm90::Epi::Bf16)
GEMM_SM90_NARROW_ENTRY(gemm_sm90_nt_bf16_bf16_bf16_bn64, 64, sm90::Epi::Bf16)
GEMM_SM90_NARROW_ENTRY(gemm_sm90_nt_bf16_bf16_f32_bn16, 16, sm90::Epi::F32)
GEMM_SM90_NARROW_ENTRY(gemm_sm90_nt_bf16_bf16_f32_bn32, 32, sm90::Epi::F32)
GEMM_SM90_NARROW_ENTRY(gemm_sm90_nt_bf16_bf16_f32_bn64, 64, sm90::Epi::F32)
GEMM_SM90_ENTRY(gemm_sm90_nt_bf16_bf16_bf16_bn128, 128, sm90::Epi::Bf16)
GEMM_SM90_ENTRY(gemm_sm90_nt_bf16_bf16_bf16_bn144, 144, sm90::Epi::Bf16)
GEMM_SM90_ENTRY(gemm_sm90_nt_bf16_bf16_bf16_bn152, 152, sm90::Epi::Bf16)
GEMM_SM90_ENTRY(gemm_sm90_nt_bf16_bf16_bf16_bn160, 160, sm90::Epi::Bf16)
GEMM_SM90_ENTRY(gemm_sm90_nt_bf16_bf16_bf16_bn192, 192, sm90::Epi::Bf16)
GEMM_SM90_ENTRY(gemm_sm90_nt_bf16_bf16_bf16_bn208, 208, sm90::Epi::Bf16)
GEMM_SM90_ENTRY(gemm_sm90_nt_bf16_bf16_bf16_bn224, 224, sm90::Epi::Bf16)
GEMM_SM90_ENTRY(gemm_sm90_nt_bf16_bf16_bf16_bn256, 256, sm90::Epi::Bf16)
GEMM_SM90_ENTRY(gemm_sm90_nt_bf16_bf16_f32_bn128, 128, sm90::Epi::F32)
GEMM_SM90_ENTRY(gemm_sm90_nt_bf16_bf16_f32_bn144, 144, sm90::Epi::F32)
GEMM_SM90_ENTRY(gemm_sm90_nt_bf16_bf16_f32_bn152, 152, sm90::Epi::F32)
GEMM_SM90_ENTRY(gemm_sm90_nt_bf16_bf16_f32_bn160, 160, sm90::Epi::F32)
GEMM_SM90_ENTRY(gemm_sm90_nt_bf16_bf16_f32_bn192, 192, sm90::Epi::F32)
GEMM_SM90_ENTRY(gemm_sm90_nt_bf16_bf16_f32_bn208, 208, sm90::Epi::F32)
GEMM_SM90_ENTRY(gemm_sm90_nt_bf16_bf16_f32_bn224, 224, sm90::Epi::F32)
GEMM_SM90_ENTRY(gemm_sm90_nt_bf16_bf16_f32_bn256, 256, sm90::Epi::F32)
GEMM_SM90_ENTRY(gemm_sm90_nt_bf16_bf16_swiglu_bn128, 128, sm90::Epi::SwiGlu)
GEMM_SM90_ENTRY(gemm_sm90_nt_bf16_bf16_swiglu_bn256, 256, sm90::Epi::SwiGlu)
