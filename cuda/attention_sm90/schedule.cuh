/*
Work list of the sm_90a attention kernel (cuda/attention_sm90.cu). Why a header of its own: the order in which items
are handed to CTAs is what balances the causal triangle, and what must never reach the bits; both are stated here.

Terms (R = heads / kv_heads, P = 64 / R):
  - a warpgroup tile is 64 rows of the packed M dimension: P consecutive query positions times the R query heads
    of one KV head (row = position_offset * R + head_offset; rows R*P .. 63 are padding). Warpgroup block b of a
    segment is positions b*P .. b*P + P - 1, aligned at position 0 of the segment whatever the span's pos.
  - an item is (span s, KV head g, level c): the CTA's two consumer warpgroups take blocks 2c and 2c + 1 (positions
    2cP .. 2cP + 2P - 1); a span has items at levels c_lo = floor(pos / 2P) .. c_hi = floor((pos + rows - 1) / 2P).
Order: level c descending (an item's key-tile count, hence its cost, grows with c, so this is longest-first),
then span in launch order, then KV head. CTA b of a grid of G takes items b, b + G, b + 2G, ... (static: no atomics,
no timing dependence). Every role of a CTA (producer thread, V-fixup warp, both consumer warpgroups) runs the
same walk and so agrees on the item sequence and on every item's tile count without talking.
Bits: an item's results depend only on its span's rows, its KV head and its level, never on which CTA runs it,
on G, or on the other spans of the launch.
*/
#pragma once

namespace attn90 {

// lo[s], hi[s]: the levels of span s (lo > hi for an empty span); both arrays in shared memory.
struct ItemWalk {
    const int* lo;
    const int* hi;
    int count;  // spans
    int kv;     // KV heads (items per (level, span))
    int c;      // current level (< 0: the list is exhausted)
    int s;      // current span
    int g;      // current KV head

    __device__ __forceinline__ ItemWalk(const int* lo_, const int* hi_, int count_, int kv_)
        : lo(lo_), hi(hi_), count(count_), kv(kv_), c(-1), s(0), g(0) {
        for (int i = 0; i < count; ++i)
            if (lo[i] <= hi[i]) c = max(c, hi[i]);
    }

    // The highest level below c that holds an item, or -1.
    __device__ __forceinline__ int next_level(int level) const {
        int best = -1;
        for (int i = 0; i < count; ++i)
            if (lo[i] <= hi[i] && lo[i] <= level - 1) best = max(best, min(hi[i], level - 1));
        return best;
    }

    // Moves to the n-th item at or after the current position (n = 0: the current position if it is an item).
    // Returns false once the list is exhausted (and stays exhausted).
    __device__ __forceinline__ bool advance(int n) {
        while (c >= 0) {
            if (lo[s] <= c && c <= hi[s]) {
                const int avail = kv - g;
                if (n < avail) {
                    g += n;
                    return true;
                }
                n -= avail;
            }
            g = 0;
            if (++s == count) {
                s = 0;
                c = next_level(c);
            }
        }
        return false;
    }
};

}  // namespace attn90
