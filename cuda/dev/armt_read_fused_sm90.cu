/*
Development harness of the fused ARMT read (cuda/armt_read_fused_sm90.cu): h += φ(u)·A / (φ(u)·z + ε) in one launch,
against a CPU double-precision reference and against the unfused sequence it replaces (dpfp_f32 + the 3xTF32 φ·A
of gemm_tf32x3_sm90.cu + armt_read_apply_f32), then timed against that sequence at the Llama-3.2-1B (16 cells x 1152
rows, d = 2048) and LLaMA-160M (12 x 640, d = 768) step shapes (d_mem 64, nu 3, D = 384). Standalone (no Rust):

    nvcc -O3 -lineinfo -gencode=arch=compute_90a,code=sm_90a -o armt_read_fused_dev cuda/dev/armt_read_fused_sm90.cu -lcuda

Flags: --quick (checks only), --skip-checks (timing only; the timed shapes are still checked once), --reps N.
Output: one line per check section, one per timed run, the verdict, then the summary table (last). Exits 1 on any
failed check, 2 on a usage or CUDA error. See cuda/dev/README.md.
*/
#include "../armt_read_fused_sm90.cu"
#include "../gemm_tf32x3_sm90.cu"
#include "../dpfp.cu"
#include "../armt_read.cu"

#include <cuda.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#define CUDA_CHECK(x)                                                                                       \
    do {                                                                                                    \
        cudaError_t e_ = (x);                                                                               \
        if (e_ != cudaSuccess) {                                                                            \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));      \
            exit(2);                                                                                        \
        }                                                                                                   \
    } while (0)
#define CU_CHECK(x)                                                                                         \
    do {                                                                                                    \
        CUresult r_ = (x);                                                                                  \
        if (r_ != CUDA_SUCCESS) {                                                                           \
            const char* s_ = nullptr;                                                                       \
            cuGetErrorString(r_, &s_);                                                                      \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #x, s_ ? s_ : "?");              \
            exit(2);                                                                                        \
        }                                                                                                   \
    } while (0)

static_assert(sizeof(CUtensorMap) == sizeof(sm90::TmaMap), "the kernel's TmaMap is a CUtensorMap");

using read_fused::Split;

static struct {
    bool quick = false, skip_checks = false, trace = false;
    int reps = 20;
} opt;
static int g_sms = 0, g_checks = 0, g_failures = 0;
static const double TOL = 1e-5;  // ||h - ref|| / ||ref||, the f32 bound of the project's checks

static void record(bool ok, const std::string& what, const char* detail = "") {
    ++g_checks;
    if (!ok) ++g_failures;
    if (!ok || getenv("READ_FUSED_VERBOSE")) printf("  %s %s %s\n", ok ? "ok  " : "FAIL", what.c_str(), detail);
}

// ----------------------------------------------------------------------------------------------------------------
// Inputs

static uint64_t splitmix(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}
static float normal(uint64_t& s) {
    s = splitmix(s);
    const double u1 = ((s >> 11) + 1) * (1.0 / 9007199254740993.0);
    s = splitmix(s);
    const double u2 = (s >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

// One launch's data: `cells` cells, cell c has rows[c] rows at u row u_row[c] and hidden row h_row[c] (one spare row
// between cells in both: NaN in u, a sentinel in h that must not change), state c. A ~ N(0, 30^2), z = 5|N| + 1,
// u, h ~ N(0, 1): the read term is O(1) against h.
struct Problem {
    std::string name;
    int d = 0, d_mem = 64, nu = 3, cells = 0;
    std::vector<int> rows, u_row, h_row;
    int u_rows = 0, h_rows = 0;
    int dk() const { return 2 * nu * d_mem; }
    std::vector<float> u, a, z, h0;                 // host
    float *du = nullptr, *da = nullptr, *dz = nullptr, *dh = nullptr, *dphi = nullptr, *dnum = nullptr;
    double flop() const {
        double r = 0;
        for (int x : rows) r += x;
        return 2.0 * r * dk() * d;
    }
};

static const float SENTINEL = 12345.0f;

static void make(Problem& p, uint64_t seed) {
    p.cells = (int)p.rows.size();
    p.u_row.clear();
    p.h_row.clear();
    int ur = 0, hr = 0;
    for (int c = 0; c < p.cells; ++c) {
        p.u_row.push_back(ur);
        p.h_row.push_back(hr);
        ur += p.rows[c] + 1;
        hr += p.rows[c] + 1;
    }
    p.u_rows = ur;
    p.h_rows = hr;
    const int dk = p.dk();
    p.u.assign((size_t)p.u_rows * p.d_mem, NAN);
    p.h0.assign((size_t)p.h_rows * p.d, SENTINEL);
    p.a.resize((size_t)p.cells * dk * p.d);
    p.z.resize((size_t)p.cells * dk);
    uint64_t s = seed;
    for (int c = 0; c < p.cells; ++c) {
        for (size_t i = 0; i < (size_t)p.rows[c] * p.d_mem; ++i) p.u[(size_t)p.u_row[c] * p.d_mem + i] = normal(s);
        for (size_t i = 0; i < (size_t)p.rows[c] * p.d; ++i) p.h0[(size_t)p.h_row[c] * p.d + i] = normal(s);
    }
    for (auto& x : p.a) x = 30.0f * normal(s);
    for (auto& x : p.z) x = 5.0f * fabsf(normal(s)) + 1.0f;
    CUDA_CHECK(cudaMalloc(&p.du, p.u.size() * 4));
    CUDA_CHECK(cudaMalloc(&p.da, p.a.size() * 4));
    CUDA_CHECK(cudaMalloc(&p.dz, p.z.size() * 4));
    CUDA_CHECK(cudaMalloc(&p.dh, p.h0.size() * 4));
    CUDA_CHECK(cudaMalloc(&p.dphi, (size_t)p.u_rows * dk * 4));
    CUDA_CHECK(cudaMalloc(&p.dnum, (size_t)p.u_rows * p.d * 4));
    CUDA_CHECK(cudaMemcpy(p.du, p.u.data(), p.u.size() * 4, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(p.da, p.a.data(), p.a.size() * 4, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(p.dz, p.z.data(), p.z.size() * 4, cudaMemcpyHostToDevice));
}

static void reset_h(const Problem& p) {
    CUDA_CHECK(cudaMemcpy(p.dh, p.h0.data(), p.h0.size() * 4, cudaMemcpyHostToDevice));
}

static void release(Problem& p) {
    for (float* x : {p.du, p.da, p.dz, p.dh, p.dphi, p.dnum}) CUDA_CHECK(cudaFree(x));
}

// The reference of one row (double): h + φ·A / (φ·z + ε), φ as reference::dpfp (f32 products, as the kernels).
static void reference_row(const Problem& p, int c, int r, std::vector<double>& out) {
    const int dm = p.d_mem, w = 2 * dm, dk = p.dk(), d = p.d;
    const float* u = &p.u[(size_t)(p.u_row[c] + r) * dm];
    std::vector<float> x(w), phi(dk);
    for (int i = 0; i < dm; ++i) {
        x[i] = std::max(u[i], 0.0f);
        x[dm + i] = std::max(-u[i], 0.0f);
    }
    for (int j = 1; j <= p.nu; ++j)
        for (int i = 0; i < w; ++i) phi[(j - 1) * w + i] = x[i] * x[(i + w - j % w) % w];
    double den = 0;
    for (int f = 0; f < dk; ++f) den += (double)phi[f] * p.z[(size_t)c * dk + f];
    den += 1e-5;
    out.assign(d, 0.0);
    const float* a = &p.a[(size_t)c * dk * d];
    for (int f = 0; f < dk; ++f) {
        if (phi[f] == 0.0f) continue;
        const double q = phi[f];
        for (int n = 0; n < d; ++n) out[n] += q * a[(size_t)f * d + n];
    }
    const float* h = &p.h0[(size_t)(p.h_row[c] + r) * d];
    for (int n = 0; n < d; ++n) out[n] = h[n] + out[n] / den;
}

// ----------------------------------------------------------------------------------------------------------------
// Launches

static void tensor_map(CUtensorMap* map, const float* base, long long rows, long long cols, long long ld, int box_cols,
                       int box_rows, bool swizzle) {
    const cuuint64_t dims[2] = {(cuuint64_t)cols, (cuuint64_t)rows};
    const cuuint64_t strides[1] = {(cuuint64_t)ld * 4};
    const cuuint32_t box[2] = {(cuuint32_t)box_cols, (cuuint32_t)box_rows};
    const cuuint32_t estr[2] = {1, 1};
    CU_CHECK(cuTensorMapEncodeTiled(map, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 2, (void*)base, dims, strides, box, estr,
                                    CU_TENSOR_MAP_INTERLEAVE_NONE,
                                    swizzle ? CU_TENSOR_MAP_SWIZZLE_128B : CU_TENSOR_MAP_SWIZZLE_NONE,
                                    CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE));
}

// The fused read over cells `which` (all when empty), optionally only row `one_row` of each, with `grid` CTAs
// (0: min(SMs, tiles)), at column tile width `tbn` (128, or the decode launches' 32).
static std::function<void()> fused(const Problem& p, Split split, int grid = 0, std::vector<int> which = {},
                                   int one_row = -1, int tbn = 128) {
    if (which.empty())
        for (int c = 0; c < p.cells; ++c) which.push_back(c);
    const bool narrow = tbn == 32;
    const void* fn = split == Split::Tf32x3
                         ? (narrow ? (const void*)armt_read_fused_sm90_n32_f32 : (const void*)armt_read_fused_sm90_f32)
                         : (narrow ? (const void*)armt_read_fused_sm90_tf32bf16_n32_f32
                                   : (const void*)armt_read_fused_sm90_tf32bf16_f32);
    const int smem = read_fused::smem_bytes_for(tbn);
    CUDA_CHECK(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    CUtensorMap um, am;
    tensor_map(&um, p.du, p.u_rows, p.d_mem, p.d_mem, p.d_mem + read_fused::U_PAD, read_fused::U_BOX_ROWS, false);
    tensor_map(&am, p.da, (long long)p.cells * p.dk(), p.d, p.d, tbn, read_fused::A_BOX_ROWS, false);
    ReadFusedParams prm;
    memset(&prm, 0, sizeof prm);
    prm.count = (int)which.size();
    prm.n = p.d;
    prm.d_mem = p.d_mem;
    prm.nu = p.nu;
    long long tiles = 0;
    for (size_t j = 0; j < which.size(); ++j) {
        const int c = which[j];
        const int r0 = one_row >= 0 ? one_row : 0;
        ReadFusedProblem& q = prm.problems[j];
        q.h = (unsigned long long)(p.dh + (size_t)(p.h_row[c] + r0) * p.d);
        q.z = (unsigned long long)(p.dz + (size_t)c * p.dk());
        q.u_row = p.u_row[c] + r0;
        q.a_row = c * p.dk();
        q.m = one_row >= 0 ? 1 : p.rows[c];
        q.h_ld = p.d;
        tiles += (q.m + 127) / 128;
    }
    tiles *= (p.d + tbn - 1) / tbn;
    const char* why = read_fused_check(&prm, p.d_mem, p.d);
    if (why) {
        printf("  FAIL: launch contract: %s\n", why);
        ++g_failures;
        return [] {};
    }
    const int g = grid > 0 ? grid : (int)std::min<long long>(g_sms, std::max<long long>(tiles, 1));
    sm90::TmaMap u_map, a_map;
    memcpy(&u_map, &um, sizeof um);
    memcpy(&a_map, &am, sizeof am);
    return [fn, u_map, a_map, prm, g, smem]() {
        void* args[] = {(void*)&u_map, (void*)&a_map, (void*)&prm};
        CUDA_CHECK(cudaLaunchKernel(fn, dim3(g), dim3(read_fused::THREADS), args, smem, 0));
    };
}

// The unfused sequence of the engine today: dpfp_f32, gemm_sm90_nn_f32_f32_f32_tf32x3 (φ·A), armt_read_apply_f32.
// part: 0 all three, 1 dpfp only, 2 φ·A only, 3 apply only.
static std::function<void()> unfused(const Problem& p, int part = 0) {
    Spans sp;
    memset(&sp, 0, sizeof sp);
    sp.count = p.cells;
    int max_rows = 0;
    for (int c = 0; c < p.cells; ++c) {
        sp.spans[c].in_row = p.u_row[c];
        sp.spans[c].out_row = p.h_row[c];
        sp.spans[c].rows = p.rows[c];
        sp.spans[c].state = c;
        max_rows = std::max(max_rows, p.rows[c]);
    }
    // dpfp spans: u rows -> the same rows of phi (the engine's in_scratch)
    Spans dsp = sp;
    for (int c = 0; c < p.cells; ++c) dsp.spans[c].out_row = p.u_row[c];
    static bool attr = false;
    if (!attr) {
        CUDA_CHECK(cudaFuncSetAttribute((const void*)gemm_sm90_nn_f32_f32_f32_tf32x3,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, tf32x3::smem_bytes()));
        attr = true;
    }
    const int dk = p.dk();
    CUtensorMap am, bm;
    tensor_map(&am, p.dphi, p.u_rows, dk, dk, tf32x3::A_BOX_COLS, tf32x3::A_BOX_ROWS_NN, true);
    tensor_map(&bm, p.da, (long long)p.cells * dk, p.d, p.d, tf32x3::B_BOX_COLS, tf32x3::B_BOX_ROWS, false);
    GemmTf32x3Params g;
    memset(&g, 0, sizeof g);
    g.count = p.cells;
    g.n = p.d;
    g.k = dk;
    g.accumulate = 0;
    long long tiles = 0;
    for (int c = 0; c < p.cells; ++c) {
        g.problems[c].c = (unsigned long long)(p.dnum + (size_t)p.u_row[c] * p.d);
        g.problems[c].a_row = p.u_row[c];
        g.problems[c].b_row = c * dk;
        g.problems[c].m = p.rows[c];
        g.problems[c].ldc = p.d;
        tiles += (p.rows[c] + 127) / 128;
    }
    tiles *= (p.d + 127) / 128;
    const char* why = gemm_tf32x3_check(&g, 0, dk, p.d, dk, p.d);
    if (why) {
        printf("  FAIL: tf32x3 contract: %s\n", why);
        ++g_failures;
        return [] {};
    }
    sm90::TmaMap a_map, b_map;
    memcpy(&a_map, &am, sizeof am);
    memcpy(&b_map, &bm, sizeof bm);
    const int grid = (int)std::min<long long>(g_sms, std::max<long long>(tiles, 1));
    const int dblocks = std::min(16384, (max_rows * dk + 255) / 256);
    const Problem* pp = &p;
    return [=]() {
        if (part == 0 || part == 1)
            dpfp_f32<<<dim3(dblocks, pp->cells), DPFP_THREADS>>>(dsp, pp->du, pp->d_mem, 0, pp->dphi, dk, pp->d_mem,
                                                                 pp->nu);
        if (part == 0 || part == 2) {
            void* args[] = {(void*)&a_map, (void*)&b_map, (void*)&g};
            CUDA_CHECK(cudaLaunchKernel((const void*)gemm_sm90_nn_f32_f32_f32_tf32x3, dim3(grid), dim3(tf32x3::THREADS),
                                        args, tf32x3::smem_bytes(), 0));
        }
        if (part == 0 || part == 3)
            armt_read_apply_f32<<<dim3(max_rows, pp->cells), READ_THREADS>>>(sp, pp->dnum, pp->dphi, pp->dz, pp->dh,
                                                                              pp->d, pp->d, dk);
        CUDA_CHECK(cudaGetLastError());
    };
}

static std::vector<float> download_h(const Problem& p) {
    std::vector<float> h(p.h0.size());
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy(h.data(), p.dh, h.size() * 4, cudaMemcpyDeviceToHost));
    return h;
}

// ----------------------------------------------------------------------------------------------------------------
// Checks

struct Err {
    double rel = 0;
    long long bad = 0, stray = 0;
};

// h (after a launch) against the double reference on the rows `sample` of each cell (every row when `every`),
// non-finite values, and the sentinel rows between cells.
static Err against_reference(const Problem& p, const std::vector<float>& h, int stride) {
    Err e;
    double e2 = 0, r2 = 0;
    std::vector<double> ref;
    for (int c = 0; c < p.cells; ++c) {
        for (int r = 0; r < p.rows[c]; ++r) {
            if (stride > 1 && r % stride != 0 && r != p.rows[c] - 1) continue;
            reference_row(p, c, r, ref);
            const float* got = &h[(size_t)(p.h_row[c] + r) * p.d];
            for (int n = 0; n < p.d; ++n) {
                if (!std::isfinite(got[n])) ++e.bad;
                const double df = got[n] - ref[n];
                e2 += df * df;
                r2 += ref[n] * ref[n];
            }
        }
        const float* spare = &h[(size_t)(p.h_row[c] + p.rows[c]) * p.d];
        for (int n = 0; n < p.d; ++n) e.stray += spare[n] != SENTINEL;
    }
    e.rel = sqrt(e2 / std::max(r2, 1e-300));
    return e;
}

static double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
    double e2 = 0, r2 = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        if (a[i] == SENTINEL) continue;
        e2 += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        r2 += (double)b[i] * b[i];
    }
    return sqrt(e2 / std::max(r2, 1e-300));
}

static const char* split_name(Split s) { return s == Split::Tf32x3 ? "fused tf32x3" : "fused tf32+bf16"; }

static void judge(const Problem& p, const Err& e, const std::string& what) {
    char detail[160];
    snprintf(detail, sizeof detail, "rel err %.2e (bound %.0e), non-finite %lld, stray %lld", e.rel, TOL, e.bad,
             e.stray);
    record(e.rel <= TOL && e.bad == 0 && e.stray == 0, p.name + " " + what, detail);
}

// Small shapes, every row against the double reference, both splits and the unfused sequence.
static void test_small() {
    printf("[small] every row vs a CPU double reference: d in {256, 200}, d_mem in {64, 32}, cells of 130/1/77/129 "
           "rows\n");
    struct S {
        int d, d_mem;
        std::vector<int> rows;
    };
    for (const S& s : {S{256, 64, {130, 1, 77}}, S{200, 32, {129, 5, 256}}}) {
        Problem p;
        p.name = "small d=" + std::to_string(s.d) + " d_mem=" + std::to_string(s.d_mem);
        p.d = s.d;
        p.d_mem = s.d_mem;
        p.rows = s.rows;
        make(p, 7 + s.d);
        double worst = 0;
        for (Split sp : {Split::Tf32x3, Split::Tf32Bf16}) {
            reset_h(p);
            fused(p, sp)();
            const Err e = against_reference(p, download_h(p), 1);
            judge(p, e, split_name(sp));
            worst = std::max(worst, e.rel);
        }
        reset_h(p);
        unfused(p)();
        const Err e = against_reference(p, download_h(p), 1);
        judge(p, e, "unfused");
        printf("  %s: largest fused rel err %.2e, unfused %.2e\n", p.name.c_str(), worst, e.rel);
        release(p);
    }
}

// The model shapes: sampled rows vs the reference, fused vs unfused over every element, bitwise grid / grouping / row.
static void test_model(Problem& p) {
    reset_h(p);
    unfused(p)();
    const std::vector<float> hu = download_h(p);
    const Err eu = against_reference(p, hu, 61);
    judge(p, eu, "unfused (sampled rows)");
    for (Split sp : {Split::Tf32x3, Split::Tf32Bf16}) {
        reset_h(p);
        fused(p, sp)();
        const std::vector<float> hf = download_h(p);
        const Err e = against_reference(p, hf, 61);
        judge(p, e, std::string(split_name(sp)) + " (sampled rows)");
        printf("  %-16s %-16s rel err vs reference %.2e (unfused %.2e); vs unfused, every element %.2e\n",
               p.name.c_str(), split_name(sp), e.rel, eu.rel, rel_diff(hf, hu));
        // bitwise: grid 7, one cell alone, one row alone
        reset_h(p);
        fused(p, sp, 7)();
        const std::vector<float> h7 = download_h(p);
        record(memcmp(h7.data(), hf.data(), hf.size() * 4) == 0,
               p.name + " " + split_name(sp) + ": grid 7 == grid #SMs (bitwise)");
        const int c = p.cells / 2;
        reset_h(p);
        fused(p, sp, 0, {c})();
        const std::vector<float> ha = download_h(p);
        const size_t off = (size_t)p.h_row[c] * p.d, len = (size_t)p.rows[c] * p.d;
        record(memcmp(&ha[off], &hf[off], len * 4) == 0, p.name + " " + split_name(sp) + ": cell alone == grouped");
        const int r = std::min(p.rows[c] - 1, 201);
        reset_h(p);
        fused(p, sp, 0, {c}, r)();
        const std::vector<float> hr = download_h(p);
        const size_t ro = (size_t)(p.h_row[c] + r) * p.d;
        record(memcmp(&hr[ro], &hf[ro], (size_t)p.d * 4) == 0,
               p.name + " " + split_name(sp) + ": row " + std::to_string(r) + " alone == in its span");
    }
}

// ----------------------------------------------------------------------------------------------------------------
// Speed

static void* g_flush = nullptr;
static const size_t FLUSH_BYTES = 128ull << 20;

static std::vector<double> time_interleaved(const std::vector<std::function<void()>>& fns, int reps) {
    const size_t F = fns.size();
    for (const auto& f : fns)
        for (int i = 0; i < 2; ++i) f();
    std::vector<cudaEvent_t> ev(2 * reps * F);
    for (auto& e : ev) CUDA_CHECK(cudaEventCreate(&e));
    for (int r = 0; r < reps; ++r) {
        for (size_t j = 0; j < F; ++j) {
            CUDA_CHECK(cudaMemsetAsync(g_flush, (int)((r + j) & 0xFF), FLUSH_BYTES, 0));
            CUDA_CHECK(cudaEventRecord(ev[2 * (r * F + j)], 0));
            fns[j]();
            CUDA_CHECK(cudaEventRecord(ev[2 * (r * F + j) + 1], 0));
        }
    }
    CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<double> med(F);
    for (size_t j = 0; j < F; ++j) {
        std::vector<float> t(reps);
        for (int r = 0; r < reps; ++r)
            CUDA_CHECK(cudaEventElapsedTime(&t[r], ev[2 * (r * F + j)], ev[2 * (r * F + j) + 1]));
        std::sort(t.begin(), t.end());
        med[j] = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
    }
    for (auto& e : ev) CUDA_CHECK(cudaEventDestroy(e));
    return med;
}

struct Row {
    std::string shape, who;
    double ms, tflops, step_ms;
};
static std::vector<Row> g_rows;

// step_ms: the engine's step time at this shape (docs/BENCHMARKS.md), for the share column.
static void bench(Problem& p, double step_ms, double predicted_ms) {
    std::vector<std::function<void()>> fns = {unfused(p, 0), unfused(p, 1), unfused(p, 2),           unfused(p, 3),
                                              fused(p, Split::Tf32x3),     fused(p, Split::Tf32Bf16)};
    const char* who[] = {"unfused: all three", "  dpfp", "  phi.A tf32x3", "  apply", "fused tf32x3", "fused tf32+bf16"};
    reset_h(p);
    const std::vector<double> t = time_interleaved(fns, opt.reps);
    for (size_t j = 0; j < fns.size(); ++j) {
        g_rows.push_back({p.name, who[j], t[j], p.flop() / (t[j] * 1e-3) / 1e12, step_ms});
        printf("  %-16s %-20s %8.3f ms %7.1f TFLOP/s%s\n", p.name.c_str(), who[j], t[j], g_rows.back().tflops,
               j == 4 ? (" (predicted " + std::to_string(predicted_ms).substr(0, 5) + " ms)").c_str() : "");
    }
    fflush(stdout);
}

#ifdef READ_FUSED_TRACE
// --trace: one launch's CTA-0 timeline (cycles from the end of its set-up; READ_TRACE's slots in the kernel), A warm
// (the launch repeated) and after an L2 flush; a CTA with several tiles leaves its last tile's stamps.
static void trace_launch(const std::string& what, const std::function<void()>& launch, int kbs) {
    for (int cold = 0; cold < 2; ++cold) {
        for (int i = 0; i < 10; ++i) launch();
        if (cold) CUDA_CHECK(cudaMemset(g_flush, 7, FLUSH_BYTES));
        long long zero[256] = {0}, t[256];
        CUDA_CHECK(cudaMemcpyToSymbol(read_fused::g_read_fused_trace, zero, sizeof zero));
        cudaEvent_t e0, e1;
        CUDA_CHECK(cudaEventCreate(&e0));
        CUDA_CHECK(cudaEventCreate(&e1));
        CUDA_CHECK(cudaEventRecord(e0));
        launch();
        CUDA_CHECK(cudaEventRecord(e1));
        CUDA_CHECK(cudaDeviceSynchronize());
        float ms = 0;
        CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
        CUDA_CHECK(cudaMemcpyFromSymbol(t, read_fused::g_read_fused_trace, sizeof t));
        auto at = [&](int slot) { return t[slot] ? (long long)(t[slot] - t[0]) : -1LL; };
        printf("[trace] %s, %s: event %.2f us; pdl %lld, u issued %lld, u landed %lld, features 0 %lld, epilogue %lld .. %lld\n",
               what.c_str(), cold ? "L2 flushed" : "warm", ms * 1000.0f, at(1), at(2), at(3), at(4), at(5), at(6));
        printf("  kb   A issued  A landed  converted  MMA issue  MMA done\n");
        for (int kb = 0; kb < kbs; ++kb)
            printf("  %2d %9lld %9lld %10lld %10lld %9lld\n", kb, at(10 + kb), at(40 + kb), at(70 + kb), at(100 + kb),
                   at(130 + kb));
        CUDA_CHECK(cudaEventDestroy(e0));
        CUDA_CHECK(cudaEventDestroy(e1));
    }
}

// The engine's decode read: one row, 32-column tiles.
static void trace_decode(int d) {
    Problem p;
    p.name = "decode";
    p.d = d;
    p.rows = {4};
    make(p, 77);
    reset_h(p);
    trace_launch("decode d " + std::to_string(d), fused(p, Split::Tf32Bf16, 0, {}, 2, 32), p.dk() / 32);
    release(p);
}

// A prefill read: four 1152-row cells at d = 2048 (576 tiles of 128 x 128 on the persistent grid; CTA 0's last tile).
static void trace_prefill() {
    Problem p;
    p.name = "prefill";
    p.d = 2048;
    p.rows.assign(4, 1152);
    make(p, 78);
    reset_h(p);
    const int tiles = 4 * 9 * 16;
    trace_launch("prefill 4 x 1152, d 2048 (CTA 0's last of " + std::to_string((tiles + g_sms - 1) / g_sms) +
                     " tiles)",
                 fused(p, Split::Tf32Bf16), p.dk() / 32);
    release(p);
}
#endif

int main(int argc, char** argv) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--quick") opt.quick = true;
        else if (a == "--skip-checks") opt.skip_checks = true;
        else if (a == "--reps" && i + 1 < argc) opt.reps = std::max(1, atoi(argv[++i]));
        else if (a == "--trace") opt.trace = true;
        else {
            printf("armt_read_fused_dev [--quick | --skip-checks] [--reps N] [--trace (built with -DREAD_FUSED_TRACE)]\n");
            return a == "--help" || a == "-h" ? 0 : 2;
        }
    }
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    g_sms = prop.multiProcessorCount;
    printf("device: %s, %d SMs, cc %d.%d; fused read smem %d bytes, tile %dx%d, %d stages; tf32x3 smem %d\n", prop.name,
           g_sms, prop.major, prop.minor, read_fused::smem_bytes(), read_fused::BM, read_fused::BN, read_fused::STAGES,
           tf32x3::smem_bytes());
    if (prop.major != 9) {
        printf("needs an sm_90 GPU (H100/H200)\n");
        return 2;
    }
    CUDA_CHECK(cudaMalloc(&g_flush, FLUSH_BYTES));
    if (opt.trace) {
#ifdef READ_FUSED_TRACE
        trace_decode(576);
        trace_decode(2048);
        trace_prefill();
        return 0;
#else
        printf("--trace needs the harness built with -DREAD_FUSED_TRACE\n");
        return 2;
#endif
    }
    if (!opt.skip_checks) test_small();

    // The step shapes (docs/BENCHMARKS.md step profile: 1B 4.932 ms, 160M 0.654 ms per step); predictions from
    // docs/log/armt_read_fused_sm90.md.
    Problem b1, m160;
    b1.name = "1B 16x1152";
    b1.d = 2048;
    b1.rows.assign(16, 1152);
    m160.name = "160M 12x640";
    m160.d = 768;
    m160.rows.assign(12, 640);
    make(b1, 1001);
    make(m160, 1002);
    printf("[model] the step shapes: sampled rows (every 61st and each cell's last) vs the double reference, fused vs "
           "unfused everywhere, bitwise grid 7 / cell alone / row alone\n");
    test_model(b1);
    test_model(m160);
    if (!opt.quick) {
        printf("[speed] median of %d, interleaved, L2 flushed before each run (h is updated in place every run)\n",
               opt.reps);
        bench(b1, 4.932, 0.33);
        bench(m160, 0.654, 0.060);
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    printf("%s: %d checks, %d failed; %.0f s\n", g_failures ? "FAILED" : "PASSED", g_checks, g_failures, secs);
    if (!g_rows.empty()) {
        printf("\n%-16s %-20s %9s %8s %10s %12s\n", "shape", "kernel", "ms", "TFLOP/s", "vs unfused", "% of step");
        double base = 0;
        for (const Row& r : g_rows) {
            if (r.who == "unfused: all three") base = r.ms;
            printf("%-16s %-20s %9.3f %8.1f %9.2fx %11.1f%%\n", r.shape.c_str(), r.who.c_str(), r.ms, r.tflops,
                   base / r.ms, 100.0 * r.ms / r.step_ms);
        }
    }
    release(b1);
    release(m160);
    return g_failures ? 1 : 0;
}
