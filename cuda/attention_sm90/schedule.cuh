/*
Work list of the sm_90a attention kernel (cuda/attention_sm90.cu). Why a header of its own: the order in which items
are handed to CTAs is what balances the causal triangle and keeps K/V in L2, and it must never reach the bits; both
are stated here.

Terms (R = heads / kv_heads, P = 64 / R):
  - a warpgroup tile is 64 rows of the packed M dimension: P consecutive query positions times the R query heads
    of one KV head (row = position_offset * R + head_offset; rows R*P .. 63 are padding). Warpgroup block b of a
    segment is positions b*P .. b*P + P - 1, aligned at position 0 of the segment whatever the span's pos.
  - an item is (span s, KV head g, level c): the CTA's NWG consumer warpgroups (3 or 2) take blocks NWG*c .. NWG*c +
    NWG - 1 (positions NWG*c*P .. NWG*(c + 1)*P - 1); a span has items at levels c_lo = floor(pos / (NWG*P)) .. c_hi =
    floor((pos + rows - 1) / (NWG*P)).
Order (v2):
  - L2 sections: when the launch's K+V is larger than SECTIONS_ABOVE, the spans are cut into equal sections of m
    consecutive spans of about SECTION_BYTES of K+V (one section otherwise, or when sections are off). Sections
    come one after the other, so that the items that run at the same time read the K/V of a few spans (~10 MB),
    not of the whole launch (v1: 37.7 MB at the 1B step, 132 MB at the 3B step, against a 50 MB L2 that Q and O
    stream through).
  - inside a section: level c descending (an item's key-tile count, hence its cost, grows with c: longest first),
    then span in launch order, then KV head.
  - CTA b of a grid of G takes the items of index kG + b (k even) and kG + G - 1 - b (k odd), k = 0, 1, ... (static
    snake: no atomics, no timing dependence; the snake evens out the "first of every round is the largest" bias of
    a plain stride).
  Every role of a CTA (producer warp, V-fixup warp, each consumer warp) runs the same walk and so agrees on the item
  sequence and on every item's tile counts without talking.
Walk cost: a whole warp walks (lane i holds spans i and i + 32 in registers); a level is one pair of ballots, the
next level one warp max-reduction, so an advance over G items costs a few levels (v1 stepped one span at a time
with dependent shared-memory loads: 1.5-3.5 k clocks per item).
Bits: an item's results depend only on its span's rows, its KV head and its level, never on which CTA runs it,
on G, on the section size, or on the other spans of the launch.
*/
#pragma once

#include "../common/params.h"

namespace attn90 {

// Sections are used when the launch's K+V exceeds SECTIONS_ABOVE (FA3 assumes 32 MB of L2 for K and V); they are
// then equal runs of consecutive spans of about SECTION_BYTES of K+V each. The sizes are a balance: smaller
// sections keep less K/V in flight, but the longest-first order only holds inside a section, so the static
// assignment's imbalance grows (a model of the assignment, docs/log/attention_sm90.md §6: 1-5 % at these sizes,
// up to 25 % with some small sections).
constexpr long long SECTIONS_ABOVE = 32ll << 20;
constexpr long long SECTION_BYTES = 12ll << 20;

struct Walk {
    // This lane's spans: lane and lane + 32 (lo > hi: empty or absent), and their sections.
    int lo0, hi0, lo1, hi1, sec0, sec1;
    int nsec;      // sections
    int kv;        // KV heads (items per (level, span))
    int sig;       // current section
    int c;         // current level (< 0: exhausted)
    int r;         // rank of the current item inside (sig, c)
    int cnt;       // items of (sig, c)
    uint32_t mlo, mhi;  // spans active at (sig, c)
    int s, g;      // the current item's span and KV head
    int k;         // items this CTA has taken
    int b, G;      // this CTA and the grid

    // Must be called by all 32 lanes of a warp (ballots and reductions); every result is warp-uniform.
    // pos = each span's position (dynamic ones resolved, in shared memory); item_p = NWG*P (positions per item);
    // hd_bytes4 = hd * 4 (K+V bytes per key and KV head).
    template <bool SECTIONS>
    __device__ __forceinline__ void init(const Spans& spans, const int* pos, int kv_, int item_p, int hd_bytes4) {
        const int lane = (int)threadIdx.x & 31;
        const int count = min(spans.count, DBRMT_MAX_GROUPS);
        kv = kv_;
        lo0 = 1, hi0 = 0, lo1 = 1, hi1 = 0;
        unsigned units = 0;  // K/V rows of this lane's spans, in units of 64 (a sum that fits 32 bits)
        if (lane < count) {
            const RowSpan& sp = spans.spans[lane];
            if (sp.rows > 0) {
                const int p = pos[lane];
                lo0 = p / item_p;
                hi0 = (p + sp.rows - 1) / item_p;
                units += (unsigned)((p + sp.rows + 63) / 64);
            }
        }
        if (lane + 32 < count) {
            const RowSpan& sp = spans.spans[lane + 32];
            if (sp.rows > 0) {
                const int p = pos[lane + 32];
                lo1 = p / item_p;
                hi1 = (p + sp.rows - 1) / item_p;
                units += (unsigned)((p + sp.rows + 63) / 64);
            }
        }
        int m = DBRMT_MAX_GROUPS;
        if constexpr (SECTIONS) {
            const long long total = (long long)__reduce_add_sync(0xffffffffu, units) * 64 * kv * hd_bytes4;
            if (total > SECTIONS_ABOVE) {
                const int nsec_want = (int)((total + SECTION_BYTES - 1) / SECTION_BYTES);
                m = max(1, (count + nsec_want - 1) / nsec_want);  // equal sections of consecutive spans
            }
        }
        sec0 = lane / m;
        sec1 = (lane + 32) / m;
        nsec = count > 0 ? (count - 1) / m + 1 : 0;
        b = (int)blockIdx.x;
        G = (int)gridDim.x;
        k = 0;
        s = g = 0;
        sig = 0;
        c = -1;
        for (; sig < nsec; ++sig) {
            c = top();
            if (c >= 0) break;
        }
        r = 0;
        if (c >= 0) level_masks();
    }

    // The highest level of section sig (-1: no item).
    __device__ __forceinline__ int top() const {
        const int a = (sec0 == sig && lo0 <= hi0) ? hi0 : -1;
        const int d = (sec1 == sig && lo1 <= hi1) ? hi1 : -1;
        return __reduce_max_sync(0xffffffffu, max(a, d));
    }

    // The highest level of section sig below c (-1: none).
    __device__ __forceinline__ int below(int level) const {
        const int a = (sec0 == sig && lo0 <= hi0 && lo0 < level) ? min(hi0, level - 1) : -1;
        const int d = (sec1 == sig && lo1 <= hi1 && lo1 < level) ? min(hi1, level - 1) : -1;
        return __reduce_max_sync(0xffffffffu, max(a, d));
    }

    __device__ __forceinline__ void level_masks() {
        mlo = __ballot_sync(0xffffffffu, sec0 == sig && lo0 <= c && c <= hi0);
        mhi = __ballot_sync(0xffffffffu, sec1 == sig && lo1 <= c && c <= hi1);
        cnt = (__popc(mlo) + __popc(mhi)) * kv;
    }

    // Index of the j-th (0-based) set bit of x (j < popc(x)); warp-uniform.
    __device__ __forceinline__ static int nth_bit(uint32_t x, int j) {
        const int lane = (int)threadIdx.x & 31;
        const bool hit = ((x >> lane) & 1u) && __popc(x & ((1u << lane) - 1u)) == j;
        return __ffs(__ballot_sync(0xffffffffu, hit)) - 1;
    }

    // Moves n >= 0 items forward; false once the list is exhausted.
    __device__ __forceinline__ bool advance(int n) {
        if (c < 0) return false;
        while (r + n >= cnt) {
            n -= cnt - r;
            r = 0;
            c = below(c);
            while (c < 0 && ++sig < nsec) c = top();
            if (c < 0) return false;
            level_masks();
        }
        r += n;
        const int j = r / kv;
        g = r - j * kv;
        const int plo = __popc(mlo);
        s = j < plo ? nth_bit(mlo, j) : 32 + nth_bit(mhi, j - plo);
        return true;
    }

    // This CTA's next item (snake order over rounds of G items).
    __device__ __forceinline__ bool next() {
        const int n = k == 0 ? b : ((k & 1) ? 2 * (G - b) - 1 : 2 * b + 1);
        ++k;
        return advance(n);
    }

    // Level of the current item.
    __device__ __forceinline__ int level() const { return c; }
};

}  // namespace attn90
