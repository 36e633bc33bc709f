/*
Persistent tile scheduler of the v2 grouped GEMM. Why a header of its own: the tile order is what makes a cell's bits
independent of its neighbours in the launch, and what gives the L2 its reuse; it is stated once here.

The global tile list: problems in launch order; inside problem p, its tiles_m(p) = ceil(m_p / BM) row tiles times
tiles_n = ceil(n / BN) column tiles, numbered with the row tile fastest:
    local = n_tile * tiles_m(p) + m_tile.
So the few row tiles of a cell that share one B (weight) tile run back to back on neighbouring CTAs and read it
from L2, and a wave of CTAs sweeps a cell's columns left to right while its A rows stay in L2.
CTA b of a grid of G takes global tiles b, b + G, b + 2G, ... (a static stride: no atomics, no dependence on
timing). The producer thread and every consumer thread of a CTA run the same walk, so they agree on the tile
sequence (and on the k-block count, which is the same for every tile of a launch) without talking to each other.
Bits: a tile's result depends only on its own A rows, B rows and k (the MMA order over k is fixed), never on which
CTA runs it, on G, or on the other problems of the launch. Problems with m = 0 have no tiles.
*/
#pragma once

#include <stdint.h>

namespace sm90 {

struct Tile {
    int p;       // problem
    int m_tile;  // row tile within the problem (rows m_tile*BM ..)
    int n_tile;  // column tile (columns n_tile*BN ..)
};

// `Params` has `count` and `problems[i].m`.
template <int BM, typename Params>
struct TileWalk {
    const Params& P;
    int tiles_n;
    int next;     // next global tile index of this CTA (advance)
    int stride;   // grid size (advance)
    int p;        // current problem
    int base;     // global index of problem p's first tile
    int tiles_m;  // row tiles of problem p
    int tiles_p;  // tiles of problem p
    bool done;    // the list is exhausted

    __device__ __forceinline__ TileWalk(const Params& params, int tiles_n_, int first, int stride_)
        : P(params), tiles_n(tiles_n_), next(first), stride(stride_), p(-1), base(0), tiles_m(0), tiles_p(0),
          done(false) {}

    // Global tile g, or false past the end of the list. Successive calls must not decrease g (the cursor over
    // the problems only moves forward).
    __device__ __forceinline__ bool locate(int g, Tile& t) {
        if (done) return false;
        while (g >= base + tiles_p) {
            base += tiles_p;
            if (++p >= P.count) {
                done = true;
                return false;
            }
            const int m = P.problems[p].m;
            tiles_m = m > 0 ? (m + BM - 1) / BM : 0;
            tiles_p = tiles_m * tiles_n;
        }
        const int local = g - base;
        t.p = p;
        t.n_tile = local / tiles_m;
        t.m_tile = local - t.n_tile * tiles_m;
        return true;
    }

    // The next tile of this CTA (global tiles first, first + stride, ...), or false when the list is exhausted.
    __device__ __forceinline__ bool advance(Tile& t) {
        const bool ok = locate(next, t);
        next += stride;
        return ok;
    }
};

// The 2-CTA cluster variant walks *pairs* of consecutive global tiles (2j, 2j+1): cluster c of C takes pairs
// j = c, c + C, ...; CTA rank r of the cluster computes tile 2j + r. Both CTAs see the same pair sequence, so their
// pipelines stay in step. The pair shares B (multicast) when both tiles exist and lie in the same problem and
// column; at a column or problem boundary each CTA loads its own B. The tile order, and so every tile's bits, are
// those of TileWalk.
template <int BM, typename Params>
struct PairWalk {
    TileWalk<BM, Params> w;
    int j, stride;
    __device__ __forceinline__ PairWalk(const Params& params, int tiles_n, int cluster, int clusters)
        : w(params, tiles_n, 0, 0), j(cluster), stride(clusters) {}

    // Tiles 2j and 2j+1 of the next pair; false when tile 2j is past the list. has1: tile 2j+1 exists.
    __device__ __forceinline__ bool advance(Tile& t0, Tile& t1, bool& has1) {
        if (!w.locate(2 * j, t0)) return false;
        has1 = w.locate(2 * j + 1, t1);
        j += stride;
        return true;
    }
};

}  // namespace sm90
