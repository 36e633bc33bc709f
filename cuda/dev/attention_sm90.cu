/*
Development harness of the sm_90a tensor-core attention (cuda/attention_sm90.cu): correctness against CPU and GPU
references, the two bitwise requirements (a span alone == inside a grouped launch; a decode row == the same query
inside the whole span), stray-write and unwritten checks, and timing against the SIMT kernel (cuda/attention.cu).
Standalone (no Rust): built on the GPU host with

    nvcc -O3 -lineinfo -gencode=arch=compute_90a,code=sm_90a -o attention_sm90_dev cuda/dev/attention_sm90.cu -lcuda

See cuda/dev/README.md for the flags and what it prints. Exits non-zero on any failed check.

Besides the production entries it instantiates three dev variants of the same kernel template (same bytes, checked
bitwise in [group] and [sections]): no pingpong, no L2 sections (the A/B columns of the speed table), and the
profiling build (per-CTA phase counters: [profile]).
*/
#include "../attention.cu"
#include "../attention_sm90.cu"

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
#include <unistd.h>
#include <vector>

typedef __nv_bfloat16 bf16;

// Dev variants of the kernel (not in the production cubin): <hd, consumer warpgroups, pingpong, sections, profile>.
template <int HD, int NWG, bool PP, bool SEC, bool PROF>
__global__ void __launch_bounds__(attn90::Roles<NWG>::THREADS, 1)
    attn_dev(const __grid_constant__ sm90::TmaMap q_map, const __grid_constant__ sm90::TmaMap kv_map,
             const __grid_constant__ Spans spans, const __grid_constant__ AttnSm90Params params,
             unsigned long long* prof) {
    attn90::attention_sm90<HD, NWG, PP, SEC, PROF>(q_map, kv_map, spans, params, prof);
}

// V_ALT: the other count of consumer warpgroups than the launcher's rule picks (attn90::consumer_wgs) at hd 64 (2
// where production runs 3, 3 where it runs 2; at hd 128 production's 2); V_PROFALT: its profiling build.
enum Variant { V_PROD = 0, V_NOPP, V_NOSEC, V_PROF, V_ALT, V_PROFALT, V_COUNT };
static const char* variant_name(int v) {
    static const char* n[] = {"production", "no pingpong", "no sections", "profiling", "other warpgroup count",
                              "profiling, other warpgroup count"};
    return n[v];
}
// Consumer warpgroups of a variant for head dim hd and R = H / KV query heads per KV head.
static int variant_wgs(int v, int hd, int r) {
    const int prod = attn90::consumer_wgs(hd, r);
    return (v == V_ALT || v == V_PROFALT) && hd == 64 ? 5 - prod : prod;
}

// ----------------------------------------------------------------------------------------------------------------
// Error checks

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

// ----------------------------------------------------------------------------------------------------------------
// Options and bookkeeping

struct Options {
    bool quick = false;     // correctness only
    bool checks = true;     // false: --skip-checks (timing only: under ncu the first launch is then the shape's)
    std::string filter;     // substring of the timed shape names
    int reps = 25;          // timed repetitions (median)
    int grid = 0;           // 0: number of SMs
    bool simt = true;       // time the SIMT kernel too
    bool variants = true;   // time the no-pingpong and no-sections variants (A/B) and run the profile
} opt;

static int g_sms = 0;
static int g_failures = 0;
static int g_checks = 0;

static void record(bool ok, const std::string& what) {
    ++g_checks;
    if (!ok) {
        ++g_failures;
        printf("  FAIL: %s\n", what.c_str());
    } else if (getenv("ATTN_SM90_VERBOSE")) {
        printf("  ok    %s\n", what.c_str());
    }
    fflush(stdout);
}

// Waits for the device with a time limit: a deadlocked kernel ends the process (the context goes with it) instead
// of hanging the batch this harness runs in.
static void sync_or_die(const char* what, double seconds = 30.0) {
    cudaEvent_t ev;
    CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventRecord(ev, 0));
    const auto t0 = std::chrono::steady_clock::now();
    for (;;) {
        const cudaError_t e = cudaEventQuery(ev);
        if (e == cudaSuccess) break;
        if (e != cudaErrorNotReady) {
            fprintf(stderr, "device error after %s: %s\n", what, cudaGetErrorString(e));
            fflush(stdout);
            exit(2);
        }
        if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > seconds) {
            printf("TIMEOUT: %s did not finish in %.0f s (deadlock?)\n", what, seconds);
            fflush(stdout);
            _exit(3);
        }
        usleep(200);
    }
    CUDA_CHECK(cudaEventDestroy(ev));
}

// ----------------------------------------------------------------------------------------------------------------
// Inputs

__host__ __device__ inline uint64_t splitmix(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

// A standard normal sample for index i (Box-Muller on a hash).
__host__ __device__ inline float normal_at(uint64_t seed, uint64_t i) {
    const uint64_t h = splitmix(seed ^ splitmix(i));
    const float u1 = (float)((h >> 40) + 1) * (1.0f / 16777216.0f);  // (0, 1]
    const float u2 = (float)(h & 0xFFFFFF) * (1.0f / 16777216.0f);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.283185307f * u2);
}

constexpr uint16_t POISON_BF16 = 0x7FDE;  // a NaN (the project's output poison)
constexpr uint16_t NAN_BF16 = 0x7FC1;     // a NaN for input rows that must never reach a stored result

// qkv row r of a buffer: row_info[r] = (segment content id << 32) | row inside the segment, or -1 for a gap row
// (NaN). Element (row, col) of segment content `sid` is the same in every buffer, so a decode copy of a segment holds
// exactly the rows of the whole segment. Columns past `width` (the qkv_ld padding) are NaN. q columns are scaled by
// qscale (a larger qscale gives peakier softmax rows and more running-max updates).
__global__ void fill_qkv(bf16* qkv, long long rows, int ld, int width, int q_width, const long long* row_info,
                         uint64_t seed, float qscale) {
    const long long total = rows * (long long)ld;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        const long long r = e / ld;
        const int c = (int)(e % ld);
        const long long info = row_info[r];
        uint16_t bits = NAN_BF16;
        if (info >= 0 && c < width) {
            const uint64_t sid = (uint64_t)(info >> 32), rr = (uint64_t)(info & 0xFFFFFFFF);
            const float scale = c < q_width ? qscale : 1.0f;
            bf16 v = __float2bfloat16_rn(normal_at(seed ^ (sid * 0x1234567ull), rr * (uint64_t)width + c) * scale);
            if (__bfloat162float(v) == 0.0f) v = __float2bfloat16_rn(0.0078125f);  // never zero
            bits = __bfloat16_as_ushort(v);
        }
        reinterpret_cast<uint16_t*>(qkv)[e] = bits;
    }
}

__global__ void fill_u16(uint16_t* p, long long n, uint16_t v) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        p[i] = v;
}

// ----------------------------------------------------------------------------------------------------------------
// GPU reference: one warp per query row. Scores in f32 (fma over hd from the bf16 inputs), softmax and the
// weighted sum of V in double; written as f32 to ref[(out_row + t) * ref_ld + h * hd + d].

__global__ void reference_attention(const bf16* qkv, int qkv_ld, int H, int KV, int hd, int in_row, int pos, int rows,
                                    int out_row, float* ref, int ref_ld, float scale) {
    extern __shared__ float ref_smem[];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int t = blockIdx.x * 4 + warp;
    const int h = blockIdx.y;
    const int kv_len = pos + rows;
    float* qs = ref_smem + warp * 128;
    float* sc = ref_smem + 4 * 128 + (size_t)warp * kv_len;
    if (t >= rows) return;
    const int qp = pos + t;  // query position: keys 0 ..= qp
    const int g = h / (H / KV);
    const bf16* qrow = qkv + (size_t)(in_row + qp) * qkv_ld + (size_t)h * hd;
    for (int d = lane; d < hd; d += 32) qs[d] = __bfloat162float(qrow[d]);
    __syncwarp();
    const bf16* kbase = qkv + (size_t)in_row * qkv_ld + (size_t)(H + g) * hd;
    const bf16* vbase = qkv + (size_t)in_row * qkv_ld + (size_t)(H + KV + g) * hd;
    float mx = -INFINITY;
    for (int j = lane; j <= qp; j += 32) {
        const uint4* kr = reinterpret_cast<const uint4*>(kbase + (size_t)j * qkv_ld);
        float acc = 0.0f;
        for (int c = 0; c < hd / 8; ++c) {
            const uint4 u = kr[c];
            const bf16* e = reinterpret_cast<const bf16*>(&u);
#pragma unroll
            for (int k = 0; k < 8; ++k) acc = fmaf(qs[8 * c + k], __bfloat162float(e[k]), acc);
        }
        sc[j] = acc;
        mx = fmaxf(mx, acc);
    }
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    double sum = 0.0;
    for (int j = lane; j <= qp; j += 32) {
        const double p = exp(((double)sc[j] - (double)mx) * (double)scale);
        sc[j] = (float)p;
        sum += p;
    }
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    __syncwarp();
    double acc[4] = {0, 0, 0, 0};
    for (int j = 0; j <= qp; ++j) {
        const double p = sc[j];
        const bf16* vr = vbase + (size_t)j * qkv_ld;
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            const int d = lane + 32 * k;
            if (d < hd) acc[k] += p * (double)__bfloat162float(vr[d]);
        }
    }
    float* orow = ref + (size_t)(out_row + t) * ref_ld + (size_t)h * hd;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        const int d = lane + 32 * k;
        if (d < hd) orow[d] = (float)(acc[k] / sum);
    }
}

// ----------------------------------------------------------------------------------------------------------------
// A launch setup: spans, buffers, layout

struct SpanDesc {
    int rows, pos;
    int sid;  // segment content id (-1: the span's index)
};

struct Setup {
    std::string name;
    int H = 0, KV = 0, hd = 0;
    std::vector<SpanDesc> spans;
    int qkv_pad = 0, out_pad = 0;  // extra columns: NaN in qkv (a multiple of hd), poisoned in out (of 8)
    int seg_gap = 0, out_gap = 0;  // NaN qkv rows after every segment; poisoned output rows between spans
    float qscale = 1.0f;
    bool share_input = false;  // every span reads the same qkv segment (same in_row): the L2 working-set probe
    uint64_t seed = 1;
    // derived by layout()
    int qkv_ld = 0, out_ld = 0, width = 0, q_width = 0;
    std::vector<int> in_row, out_row;
    long long qkv_rows = 0, out_rows = 0;
    // device
    bf16* qkv = nullptr;
    bf16* out = nullptr;
    float scale() const { return 1.0f / sqrtf((float)hd); }
    int count() const { return (int)spans.size(); }
};

static void layout(Setup& s) {
    s.width = (s.H + 2 * s.KV) * s.hd;
    s.q_width = s.H * s.hd;
    s.qkv_ld = s.width + s.qkv_pad;
    s.out_ld = s.q_width + s.out_pad;
    s.in_row.clear();
    s.out_row.clear();
    long long r = 0, o = s.out_gap;
    for (const SpanDesc& d : s.spans) {
        if (s.share_input) {
            s.in_row.push_back(0);
            r = std::max(r, (long long)(d.pos + d.rows + s.seg_gap));
        } else {
            s.in_row.push_back((int)r);
            r += d.pos + d.rows + s.seg_gap;
        }
        s.out_row.push_back((int)o);
        o += d.rows + s.out_gap;
    }
    s.qkv_rows = std::max(r, 1LL);
    s.out_rows = std::max(o, 1LL);
}

static void alloc(Setup& s) {
    layout(s);
    std::vector<long long> info(s.qkv_rows, -1);
    for (int i = 0; i < s.count(); ++i) {
        const SpanDesc& d = s.spans[i];
        const long long sid = s.share_input ? 0 : (d.sid >= 0 ? d.sid : i);
        for (int r = 0; r < d.pos + d.rows; ++r) info[s.in_row[i] + r] = (sid << 32) | r;
    }
    long long* dinfo;
    CUDA_CHECK(cudaMalloc(&dinfo, info.size() * sizeof(long long)));
    CUDA_CHECK(cudaMemcpy(dinfo, info.data(), info.size() * sizeof(long long), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMalloc(&s.qkv, (size_t)s.qkv_rows * s.qkv_ld * 2));
    CUDA_CHECK(cudaMalloc(&s.out, (size_t)s.out_rows * s.out_ld * 2));
    fill_qkv<<<2048, 256>>>(s.qkv, s.qkv_rows, s.qkv_ld, s.width, s.q_width, dinfo, s.seed, s.qscale);
    CUDA_CHECK(cudaGetLastError());
    sync_or_die("fill_qkv");
    CUDA_CHECK(cudaFree(dinfo));
}

static void release(Setup& s) {
    CUDA_CHECK(cudaFree(s.qkv));
    CUDA_CHECK(cudaFree(s.out));
    s.qkv = nullptr;
    s.out = nullptr;
}

static void poison(const Setup& s, bf16* out) {
    fill_u16<<<1024, 256>>>(reinterpret_cast<uint16_t*>(out), s.out_rows * s.out_ld, POISON_BF16);
    CUDA_CHECK(cudaGetLastError());
}

static Spans make_spans(const Setup& s, const std::vector<int>& which) {
    Spans sp;
    memset(&sp, 0, sizeof sp);
    sp.count = (int)which.size();
    for (size_t j = 0; j < which.size(); ++j) {
        const int i = which[j];
        RowSpan& r = sp.spans[j];
        r.in_row = s.in_row[i];
        r.out_row = s.out_row[i];
        r.rows = s.spans[i].rows;
        r.pos = s.spans[i].pos;
    }
    return sp;
}

static std::vector<int> all_spans(const Setup& s) {
    std::vector<int> v;
    for (int i = 0; i < s.count(); ++i) v.push_back(i);
    return v;
}

// ----------------------------------------------------------------------------------------------------------------
// Launches (the host side of the launch contract: what the Rust launcher will do)

typedef void (*Sm90Fn)(const sm90::TmaMap, const sm90::TmaMap, const Spans, const AttnSm90Params);

static CUtensorMap q_tensor_map(const bf16* qkv, long long rows, int qkv_ld, int H, int KV, int hd) {
    const int R = H / KV, BP = 64 / R;
    CUtensorMap m;
    const cuuint64_t dims[3] = {(cuuint64_t)hd, (cuuint64_t)H, (cuuint64_t)rows};
    const cuuint64_t strides[2] = {(cuuint64_t)hd * 2, (cuuint64_t)qkv_ld * 2};
    const cuuint32_t box[3] = {64, (cuuint32_t)R, (cuuint32_t)BP};
    const cuuint32_t estr[3] = {1, 1, 1};
    CU_CHECK(cuTensorMapEncodeTiled(&m, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, (void*)qkv, dims, strides, box, estr,
                                    CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                    CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE));
    return m;
}

static CUtensorMap kv_tensor_map(const bf16* qkv, long long rows, int qkv_ld, int H, int KV, int hd) {
    CUtensorMap m;
    const cuuint64_t dims[2] = {(cuuint64_t)2 * KV * hd, (cuuint64_t)rows};
    const cuuint64_t strides[1] = {(cuuint64_t)qkv_ld * 2};
    const cuuint32_t box[2] = {64, (cuuint32_t)attn90::BN};
    const cuuint32_t estr[2] = {1, 1};
    CU_CHECK(cuTensorMapEncodeTiled(&m, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, (void*)(qkv + (size_t)H * hd), dims,
                                    strides, box, estr, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                    CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE));
    return m;
}

typedef void (*DevFn)(const sm90::TmaMap, const sm90::TmaMap, const Spans, const AttnSm90Params,
                      unsigned long long*);

// A dev variant's kernel at (hd, NWG); the harness's variants are instantiated at every count production may use.
template <int HD, int NWG>
static const void* dev_fn(int v) {
    switch (v) {
        case V_NOPP: return (const void*)attn_dev<HD, NWG, false, true, false>;
        case V_NOSEC: return (const void*)attn_dev<HD, NWG, true, false, false>;
        case V_PROF:
        case V_PROFALT: return (const void*)attn_dev<HD, NWG, true, true, true>;
        default: return (const void*)attn_dev<HD, NWG, true, true, false>;
    }
}

static const void* variant_fn(int v, int hd, int r) {
    if (v == V_PROD) {
        if (hd == 128) return (const void*)attention_sm90_causal_bf16_hd128;
        return attn90::consumer_wgs(hd, r) == 3 ? (const void*)attention_sm90_causal_bf16_hd64
                                                : (const void*)attention_sm90_causal_bf16_hd64_wg2;
    }
    if (hd == 128) return dev_fn<128, 2>(v);
    return variant_wgs(v, hd, r) == 3 ? dev_fn<64, 3>(v) : dev_fn<64, 2>(v);
}

struct Sm90Launch {
    const void* fn;
    bool dev;  // a dev variant: one more parameter (the profile buffer)
    sm90::TmaMap q, kv;
    Spans spans;
    AttnSm90Params p;
    unsigned long long* prof = nullptr;
    int grid, smem, threads;
    void operator()() const {
        void* args[] = {(void*)&q, (void*)&kv, (void*)&spans, (void*)&p, (void*)&prof};
        CUDA_CHECK(cudaLaunchKernel(fn, dim3(grid), dim3(threads), args, smem, 0));
    }
};

static Sm90Launch sm90_launch(const Setup& s, bf16* out, const std::vector<int>& which, int grid = 0,
                              int variant = V_PROD) {
    Sm90Launch L;
    L.fn = variant_fn(variant, s.hd, s.H / s.KV);
    L.dev = variant != V_PROD;
    L.smem = attn90::smem_bytes(s.hd);
    L.threads = 128 * (variant_wgs(variant, s.hd, s.H / s.KV) + 1);
    L.grid = grid > 0 ? grid : (opt.grid > 0 ? opt.grid : g_sms);
    const CUtensorMap q = q_tensor_map(s.qkv, s.qkv_rows, s.qkv_ld, s.H, s.KV, s.hd);
    const CUtensorMap kv = kv_tensor_map(s.qkv, s.qkv_rows, s.qkv_ld, s.H, s.KV, s.hd);
    memcpy(&L.q, &q, sizeof q);
    memcpy(&L.kv, &kv, sizeof kv);
    L.spans = make_spans(s, which);
    L.p.out = (unsigned long long)out;
    L.p.out_ld = s.out_ld;
    L.p.heads = s.H;
    L.p.kv_heads = s.KV;
    L.p.scale = s.scale();
    static std::vector<const void*> attr_set;  // functions whose shared-memory limit is raised
    if (std::find(attr_set.begin(), attr_set.end(), L.fn) == attr_set.end()) {
        CUDA_CHECK(cudaFuncSetAttribute(L.fn, cudaFuncAttributeMaxDynamicSharedMemorySize, L.smem));
        attr_set.push_back(L.fn);
    }
    return L;
}

struct SimtLaunch {
    void (*fn)(const Spans, const bf16*, int, bf16*, int, int, int, float);
    Spans spans;
    const bf16* qkv;
    bf16* out;
    int qkv_ld, out_ld, H, KV;
    float scale;
    dim3 grid;
    void operator()() const {
        fn<<<grid, ATT_THREADS>>>(spans, qkv, qkv_ld, out, out_ld, H, KV, scale);
        CUDA_CHECK(cudaGetLastError());
    }
};

static SimtLaunch simt_launch(const Setup& s, bf16* out) {
    SimtLaunch L;
    L.fn = s.hd == 64 ? attention_causal_bf16_hd64 : attention_causal_bf16_hd128;
    L.spans = make_spans(s, all_spans(s));
    L.qkv = s.qkv;
    L.out = out;
    L.qkv_ld = s.qkv_ld;
    L.out_ld = s.out_ld;
    L.H = s.H;
    L.KV = s.KV;
    L.scale = s.scale();
    int max_rows = 1;
    for (const SpanDesc& d : s.spans) max_rows = std::max(max_rows, d.rows);
    L.grid = dim3(CEIL_DIV(max_rows, ATT_BQ), s.H, s.count());
    return L;
}

// ----------------------------------------------------------------------------------------------------------------
// References and checks

// f32 reference [out_rows][H * hd] (row = output row), on the GPU.
static std::vector<float> gpu_reference(const Setup& s) {
    const int ld = s.H * s.hd;
    float* d;
    CUDA_CHECK(cudaMalloc(&d, (size_t)s.out_rows * ld * sizeof(float)));
    CUDA_CHECK(cudaMemset(d, 0, (size_t)s.out_rows * ld * sizeof(float)));
    int max_kv = 1;
    for (const SpanDesc& sp : s.spans) max_kv = std::max(max_kv, sp.pos + sp.rows);
    const int smem = (4 * 128 + 4 * max_kv) * (int)sizeof(float);
    CUDA_CHECK(cudaFuncSetAttribute((const void*)reference_attention, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    std::max(smem, 48 * 1024)));
    for (int i = 0; i < s.count(); ++i) {
        const SpanDesc& sp = s.spans[i];
        if (sp.rows == 0) continue;
        const int kv_smem = (4 * 128 + 4 * (sp.pos + sp.rows)) * (int)sizeof(float);
        reference_attention<<<dim3(CEIL_DIV(sp.rows, 4), s.H), 128, kv_smem>>>(
            s.qkv, s.qkv_ld, s.H, s.KV, s.hd, s.in_row[i], sp.pos, sp.rows, s.out_row[i], d, ld, s.scale());
        CUDA_CHECK(cudaGetLastError());
    }
    sync_or_die("reference_attention", 600);
    std::vector<float> h((size_t)s.out_rows * ld);
    CUDA_CHECK(cudaMemcpy(h.data(), d, h.size() * sizeof(float), cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaFree(d));
    return h;
}

static inline double bf16_to_double(uint16_t b) {
    const uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return (double)f;
}

// CPU reference in double (small setups only): the same layout as gpu_reference.
static std::vector<float> cpu_reference(const Setup& s) {
    std::vector<uint16_t> q((size_t)s.qkv_rows * s.qkv_ld);
    CUDA_CHECK(cudaMemcpy(q.data(), s.qkv, q.size() * 2, cudaMemcpyDeviceToHost));
    const int ld = s.H * s.hd, R = s.H / s.KV;
    std::vector<float> ref((size_t)s.out_rows * ld, 0.0f);
    for (int i = 0; i < s.count(); ++i) {
        const SpanDesc& sp = s.spans[i];
        for (int t = 0; t < sp.rows; ++t) {
            const int qp = sp.pos + t;
            for (int h = 0; h < s.H; ++h) {
                const int g = h / R;
                const uint16_t* qr = &q[(size_t)(s.in_row[i] + qp) * s.qkv_ld + (size_t)h * s.hd];
                std::vector<double> sc(qp + 1);
                double mx = -INFINITY;
                for (int j = 0; j <= qp; ++j) {
                    const uint16_t* kr = &q[(size_t)(s.in_row[i] + j) * s.qkv_ld + (size_t)(s.H + g) * s.hd];
                    double a = 0;
                    for (int d = 0; d < s.hd; ++d) a += bf16_to_double(qr[d]) * bf16_to_double(kr[d]);
                    sc[j] = a * s.scale();
                    mx = std::max(mx, sc[j]);
                }
                double sum = 0;
                for (int j = 0; j <= qp; ++j) {
                    sc[j] = exp(sc[j] - mx);
                    sum += sc[j];
                }
                for (int d = 0; d < s.hd; ++d) {
                    double a = 0;
                    for (int j = 0; j <= qp; ++j)
                        a += sc[j] *
                             bf16_to_double(q[(size_t)(s.in_row[i] + j) * s.qkv_ld + (size_t)(s.H + s.KV + g) * s.hd + d]);
                    ref[(size_t)(s.out_row[i] + t) * ld + (size_t)h * s.hd + d] = (float)(a / sum);
                }
            }
        }
    }
    return ref;
}

static std::vector<uint16_t> download(const Setup& s, const bf16* out) {
    std::vector<uint16_t> h((size_t)s.out_rows * s.out_ld);
    CUDA_CHECK(cudaMemcpy(h.data(), out, h.size() * 2, cudaMemcpyDeviceToHost));
    return h;
}

struct CheckResult {
    double rel = 0;
    long long bad = 0;    // in-span elements still poison or not finite
    long long stray = 0;  // out-of-span elements no longer poison
};

// Every output row: in-span rows (of the spans in `which`) must be written and finite, compared with ref; every
// other element (gaps, padding columns, rows of spans not launched) must still be the poison.
static CheckResult check_output(const Setup& s, const std::vector<uint16_t>& out, const std::vector<float>* ref,
                                const std::vector<int>& which) {
    std::vector<char> in_span(s.out_rows, 0);
    for (int i : which)
        for (int t = 0; t < s.spans[i].rows; ++t) in_span[s.out_row[i] + t] = 1;
    const int ld = s.H * s.hd;
    double e2 = 0, r2 = 0;
    CheckResult res;
    for (long long r = 0; r < s.out_rows; ++r) {
        const uint16_t* row = &out[(size_t)r * s.out_ld];
        for (int c = 0; c < s.out_ld; ++c) {
            if (in_span[r] && c < ld) {
                const double v = bf16_to_double(row[c]);
                if (row[c] == POISON_BF16 || !std::isfinite(v)) {
                    ++res.bad;
                    continue;
                }
                if (ref) {
                    const double w = (*ref)[(size_t)r * ld + c];
                    e2 += (v - w) * (v - w);
                    r2 += w * w;
                }
            } else if (row[c] != POISON_BF16) {
                ++res.stray;
            }
        }
    }
    res.rel = r2 > 0 ? sqrt(e2 / r2) : sqrt(e2);
    return res;
}

static const double TOL = 8e-3;
static double g_max_rel = 0;

static bool judge(const CheckResult& r, const std::string& what, bool with_ref = true) {
    if (with_ref) g_max_rel = std::max(g_max_rel, r.rel);
    const bool ok = (!with_ref || r.rel <= TOL) && r.bad == 0 && r.stray == 0;
    char buf[512];
    if (with_ref)
        snprintf(buf, sizeof buf, "%s: rel err %.3e (bound %.1e), unwritten/non-finite %lld, stray writes %lld",
                 what.c_str(), r.rel, TOL, r.bad, r.stray);
    else
        snprintf(buf, sizeof buf, "%s: unwritten/non-finite %lld, stray writes %lld", what.c_str(), r.bad, r.stray);
    record(ok, buf);
    return ok;
}

// The output rows of span i of setup a (buffer ha) equal rows [first, first + n) of span j of setup b (buffer hb).
static bool same_rows(const Setup& a, const std::vector<uint16_t>& ha, int i, const Setup& b,
                      const std::vector<uint16_t>& hb, int j, int first, int n, long long* diffs) {
    const int ld = a.H * a.hd;
    long long d = 0;
    for (int t = 0; t < n; ++t) {
        const uint16_t* ra = &ha[(size_t)(a.out_row[i] + t) * a.out_ld];
        const uint16_t* rb = &hb[(size_t)(b.out_row[j] + first + t) * b.out_ld];
        for (int c = 0; c < ld; ++c) d += ra[c] != rb[c];
    }
    if (diffs) *diffs = d;
    return d == 0;
}

static std::string cfg_name(const Setup& s) {
    char b[64];
    snprintf(b, sizeof b, "%d/%d hd%d", s.H, s.KV, s.hd);
    return b;
}

// ----------------------------------------------------------------------------------------------------------------
// Correctness sections

struct Cfg {
    int H, KV, hd;
};

// [cpu] small launches against a CPU double reference: every packing ratio (R = 1, 3, 4, 8; padding rows at R = 3),
// short spans, decode spans over a cache, NaN gap rows after every segment, padded strides.
static void test_cpu() {
    printf("[cpu] small launches vs a CPU double reference\n");
    const Cfg cfgs[] = {{8, 2, 64}, {9, 3, 64}, {12, 12, 64}, {16, 2, 64}, {6, 2, 128}, {4, 1, 128}, {4, 4, 128}};
    for (const Cfg& c : cfgs) {
        Setup s;
        s.H = c.H;
        s.KV = c.KV;
        s.hd = c.hd;
        s.spans = {{1, 0, -1}, {7, 0, -1}, {70, 0, -1}, {200, 0, -1}, {3, 130, -1}, {1, 255, -1}, {0, 0, -1},
                   {20, 40, -1}};
        s.qkv_pad = c.hd;  // a whole NaN head: the q map's nested strides stay multiples of hd
        s.out_pad = 8;
        s.seg_gap = 5;
        s.out_gap = 2;
        s.seed = 17 + c.H * 3 + c.hd;
        alloc(s);
        const std::vector<float> ref = cpu_reference(s);
        poison(s, s.out);
        sm90_launch(s, s.out, all_spans(s))();
        sync_or_die("attention_sm90 [cpu]");
        judge(check_output(s, download(s, s.out), &ref, all_spans(s)), "cpu-ref " + cfg_name(s));
        release(s);
    }
}

// The mixed 16-span launch (and an empty span) of one configuration.
static Setup mixed_setup(const Cfg& c, float qscale, uint64_t seed) {
    Setup s;
    s.H = c.H;
    s.KV = c.KV;
    s.hd = c.hd;
    const int rows[] = {1152, 1, 7, 63, 64, 65, 127, 128, 129, 300, 428, 640, 1000, 1151, 17, 900};
    for (int r : rows) s.spans.push_back({r, 0, -1});
    s.spans.insert(s.spans.begin() + 9, SpanDesc{0, 0, -1});
    s.qkv_pad = c.hd;  // a whole NaN head: the q map's nested strides stay multiples of hd
    s.out_pad = 8;
    s.seg_gap = 3;
    s.out_gap = 1;
    s.qscale = qscale;
    s.seed = seed;
    return s;
}

static unsigned long long* g_prof = nullptr;  // profile records: grid x (up to) 4 x attn90::PF_N
static size_t g_prof_grid = 0;

static unsigned long long* prof_buffer(int grid) {
    if ((size_t)grid > g_prof_grid) {
        if (g_prof) CUDA_CHECK(cudaFree(g_prof));
        CUDA_CHECK(cudaMalloc(&g_prof, (size_t)grid * 4 * attn90::PF_N * sizeof(unsigned long long)));
        g_prof_grid = grid;
    }
    CUDA_CHECK(cudaMemset(g_prof, 0, (size_t)grid * 4 * attn90::PF_N * sizeof(unsigned long long)));
    return g_prof;
}

// The dev variants (no pingpong, no sections, profiling, the other warpgroup count) write the same bytes as the
// production kernel.
static void check_variants(const Setup& s, const std::vector<uint16_t>& expect, const std::string& name) {
    for (int v : {V_NOPP, V_NOSEC, V_PROF, V_ALT, V_PROFALT}) {
        poison(s, s.out);
        Sm90Launch L = sm90_launch(s, s.out, all_spans(s), 0, v);
        if (v == V_PROF || v == V_PROFALT) L.prof = prof_buffer(L.grid);
        L();
        sync_or_die("attention_sm90 [variant]");
        record(download(s, s.out) == expect, "bitwise " + name + ": " + variant_name(v) + " == production");
    }
}

// [sections] a launch whose K/V (21 spans of ~1152 rows, 32/8 hd 64 and 24/8 hd 128: 47 / 94 MB) turns the L2
// sections on (schedule.cuh), against the GPU reference; bitwise: grid 7 == grid #SMs, the variants, spans alone ==
// grouped.
static void test_sections() {
    printf("[sections] launches large enough for L2 sections vs a GPU reference; bitwise variants, grids, alone\n");
    const Cfg cfgs[] = {{32, 8, 64}, {24, 8, 128}};
    int k = 0;
    for (const Cfg& c : cfgs) {
        Setup s;
        s.H = c.H;
        s.KV = c.KV;
        s.hd = c.hd;
        for (int i = 0; i < 20; ++i) s.spans.push_back({i == 7 ? 1000 : 1152, 0, -1});
        s.spans.push_back({3, 1500, -1});  // a decode-like span in a late section
        s.seg_gap = 2;
        s.out_gap = 1;
        s.seed = 3000 + (k++);
        alloc(s);
        const std::string name = cfg_name(s) + " x21";
        const std::vector<float> ref = gpu_reference(s);
        poison(s, s.out);
        sm90_launch(s, s.out, all_spans(s))();
        sync_or_die("attention_sm90 [sections]");
        const std::vector<uint16_t> grouped = download(s, s.out);
        judge(check_output(s, grouped, &ref, all_spans(s)), "sections " + name);
        poison(s, s.out);
        sm90_launch(s, s.out, all_spans(s), 7)();
        sync_or_die("attention_sm90 [sections, grid 7]");
        record(download(s, s.out) == grouped, "bitwise " + name + ": grid 7 == grid #SMs");
        check_variants(s, grouped, name);
        for (int i : {0, 7, 19, 20}) {
            poison(s, s.out);
            sm90_launch(s, s.out, {i})();
            sync_or_die("attention_sm90 [sections alone]");
            const std::vector<uint16_t> alone = download(s, s.out);
            long long d = 0;
            const bool same = same_rows(s, alone, i, s, grouped, i, 0, s.spans[i].rows, &d);
            record(same, "bitwise " + name + ": span " + std::to_string(i) + " alone == grouped (" +
                             std::to_string(d) + " elements differ)");
        }
        release(s);
    }
}

// [group] the mixed launch against the GPU reference; bitwise: the whole launch with grid = #SMs == grid 7 == grid 1,
// and spans 0, 1, 2, 5, 13, 16 launched alone == inside the launch.
static void test_grouped() {
    printf("[group] 17-span launches (rows 0..1152) vs a GPU reference; bitwise alone == grouped, any grid\n");
    const Cfg cfgs[] = {{32, 8, 64}, {9, 3, 64}, {12, 12, 64}, {16, 2, 64}, {24, 8, 128}, {32, 8, 128}};
    int k = 0;
    for (const Cfg& c : cfgs) {
        for (float qs : {1.0f, 4.0f}) {
            if (qs != 1.0f && !(c.H == 32 && c.KV == 8)) continue;  // peaky rows: the two 32/8 configurations
            Setup s = mixed_setup(c, qs, 1000 + (k++));
            alloc(s);
            const std::string name = cfg_name(s) + (qs != 1.0f ? " qscale 4" : "");
            const std::vector<float> ref = gpu_reference(s);
            poison(s, s.out);
            sm90_launch(s, s.out, all_spans(s))();
            sync_or_die("attention_sm90 [group]");
            const std::vector<uint16_t> grouped = download(s, s.out);
            judge(check_output(s, grouped, &ref, all_spans(s)), "grouped " + name);
            for (int grid : {7, 1}) {
                poison(s, s.out);
                sm90_launch(s, s.out, all_spans(s), grid)();
                sync_or_die("attention_sm90 [group, small grid]");
                record(download(s, s.out) == grouped, "bitwise " + name + ": grid " + std::to_string(grid) + " == grid #SMs");
            }
            check_variants(s, grouped, name);
            for (int i : {0, 1, 2, 5, 13, 16}) {
                poison(s, s.out);
                sm90_launch(s, s.out, {i})();
                sync_or_die("attention_sm90 [alone]");
                const std::vector<uint16_t> alone = download(s, s.out);
                long long d = 0;
                const bool same = same_rows(s, alone, i, s, grouped, i, 0, s.spans[i].rows, &d);
                judge(check_output(s, alone, nullptr, {i}), name + " span " + std::to_string(i) + " alone", false);
                record(same, "bitwise " + name + ": span " + std::to_string(i) + " (rows " +
                                 std::to_string(s.spans[i].rows) + ") alone == grouped (" + std::to_string(d) +
                                 " elements differ)");
            }
            release(s);
        }
    }
}

// [decode] decode == prefill, byte for byte: a whole span of 4224 rows, then in one launch every (pos, rows) case
// over its own copy of the segment's first pos + rows rows followed by 128 NaN rows (a cache whose rows past the
// last key are garbage), each case's rows compared with the same queries inside the whole span. Also a few cases
// launched alone, and the cases against the GPU reference.
static void test_decode() {
    printf("[decode] pos > 0 spans (1, 2, 7 rows; chunks) == the same queries inside the whole span, bitwise\n");
    const Cfg cfgs[] = {{32, 8, 64}, {9, 3, 64}, {12, 12, 64}, {24, 8, 128}, {32, 8, 128}};
    const int N = 4224;
    int k = 0;
    for (const Cfg& c : cfgs) {
        Setup whole;
        whole.H = c.H;
        whole.KV = c.KV;
        whole.hd = c.hd;
        whole.spans = {{N, 0, 7}};
        whole.seg_gap = 128;
        whole.seed = 5000 + (k++);
        alloc(whole);
        poison(whole, whole.out);
        sm90_launch(whole, whole.out, {0})();
        sync_or_die("attention_sm90 [decode whole]");
        const std::vector<uint16_t> hw = download(whole, whole.out);
        const std::string name = cfg_name(whole);
        if (c.H == 32 || c.H == 9) {  // the whole span against the reference too (1 x 4224)
            const std::vector<float> ref = gpu_reference(whole);
            judge(check_output(whole, hw, &ref, {0}), "whole span 4224 " + name);
        } else {
            judge(check_output(whole, hw, nullptr, {0}), "whole span 4224 " + name, false);
        }

        Setup dec;
        dec.H = c.H;
        dec.KV = c.KV;
        dec.hd = c.hd;
        dec.seg_gap = 128;  // NaN rows after every case's last key: the tail tile's garbage
        dec.out_gap = 1;
        dec.seed = whole.seed;
        for (int pos : {1, 63, 64, 127, 128, 1023, 4095})
            for (int rows : {1, 2, 7}) dec.spans.push_back({rows, pos, 7});
        const SpanDesc extra[] = {{300, 500, 7}, {129, 1000, 7}, {5, 0, 7}, {1, 2048, 7}, {1, 4223, 7}, {64, 4160, 7}};
        for (const SpanDesc& e : extra) dec.spans.push_back(e);
        alloc(dec);
        poison(dec, dec.out);
        sm90_launch(dec, dec.out, all_spans(dec))();
        sync_or_die("attention_sm90 [decode cases]");
        const std::vector<uint16_t> hd = download(dec, dec.out);
        judge(check_output(dec, hd, nullptr, all_spans(dec)), "decode cases " + name, false);
        int failed = 0;
        for (int i = 0; i < dec.count(); ++i) {
            long long d = 0;
            const SpanDesc& sp = dec.spans[i];
            const bool same = same_rows(dec, hd, i, whole, hw, 0, sp.pos, sp.rows, &d);
            if (!same) ++failed;
            char what[160];
            snprintf(what, sizeof what, "bitwise %s: pos %d rows %d (grouped, %d cases) == whole span (%lld differ)",
                     name.c_str(), sp.pos, sp.rows, dec.count(), d);
            record(same, what);
        }
        for (int i : {0, 6, 17}) {  // (1, 1), (64, 1), (1023, 7) alone
            poison(dec, dec.out);
            sm90_launch(dec, dec.out, {i})();
            sync_or_die("attention_sm90 [decode alone]");
            const std::vector<uint16_t> ha = download(dec, dec.out);
            long long d = 0;
            const SpanDesc& sp = dec.spans[i];
            char what[160];
            const bool same = same_rows(dec, ha, i, whole, hw, 0, sp.pos, sp.rows, &d);
            snprintf(what, sizeof what, "bitwise %s: pos %d rows %d alone == whole span (%lld differ)", name.c_str(),
                     sp.pos, sp.rows, d);
            record(same, what);
            judge(check_output(dec, ha, nullptr, {i}), name + " decode case alone", false);
        }
        const std::vector<float> ref = gpu_reference(dec);
        judge(check_output(dec, hd, &ref, all_spans(dec)), "decode cases vs reference " + name);
        if (failed) printf("  %d of %d decode cases differ from the whole span (%s)\n", failed, dec.count(), name.c_str());
        release(dec);
        release(whole);
    }
}

// ----------------------------------------------------------------------------------------------------------------
// Speed

static void* g_flush = nullptr;
static const size_t FLUSH_BYTES = 128ull << 20;  // > the 50 MB L2 of an H100/H200
static double g_clock_mhz = 0;                      // the device's maximum SM clock

template <class F>
static double time_ms(const F& launch, int reps) {
    for (int i = 0; i < 3; ++i) launch();
    sync_or_die("warm-up", 120);
    std::vector<cudaEvent_t> ev(2 * reps);
    for (auto& e : ev) CUDA_CHECK(cudaEventCreate(&e));
    for (int r = 0; r < reps; ++r) {
        CUDA_CHECK(cudaMemsetAsync(g_flush, r & 0xFF, FLUSH_BYTES, 0));  // L2 flush
        CUDA_CHECK(cudaEventRecord(ev[2 * r], 0));
        launch();
        CUDA_CHECK(cudaEventRecord(ev[2 * r + 1], 0));
    }
    sync_or_die("timed runs", 300);
    std::vector<float> t(reps);
    for (int r = 0; r < reps; ++r) CUDA_CHECK(cudaEventElapsedTime(&t[r], ev[2 * r], ev[2 * r + 1]));
    for (auto& e : ev) CUDA_CHECK(cudaEventDestroy(e));
    std::sort(t.begin(), t.end());
    return reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
}

// Back-to-back launches without a flush (how benches/python/sdpa_attention.py times SDPA: graph replays of n calls):
// the median over 5 batches of the time per launch in a batch of n.
template <class F>
static double time_b2b_ms(const F& launch, int n) {
    for (int i = 0; i < 3; ++i) launch();
    sync_or_die("warm-up", 120);
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    std::vector<float> t;
    for (int b = 0; b < 5; ++b) {
        CUDA_CHECK(cudaEventRecord(e0, 0));
        for (int i = 0; i < n; ++i) launch();
        CUDA_CHECK(cudaEventRecord(e1, 0));
        sync_or_die("b2b runs", 300);
        float ms;
        CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
        t.push_back(ms / n);
    }
    CUDA_CHECK(cudaEventDestroy(e0));
    CUDA_CHECK(cudaEventDestroy(e1));
    std::sort(t.begin(), t.end());
    return t[2];
}

struct Shape {
    std::string name;
    int H, KV, hd;
    int cells, rows, pos;  // cells spans of `rows` queries after `pos` cached rows
    double pred;           // version-2 prediction (TFLOP/s, or GB/s for decode); docs/log/attention_sm90.md §6
    bool shared = false;   // every span reads the same segment (the L2 probe)
};

static std::vector<Shape> shapes() {
    return {
        {"1B step 16x1152", 32, 8, 64, 16, 1152, 0, 330},
        {"1B step 8x1152", 32, 8, 64, 8, 1152, 0, 0},    // a two-stream half (session 20)
        {"1B step 16x2176", 32, 8, 64, 16, 2176, 0, 0},  // T = 2048: one stream, L2 sections (71 MB of K/V)
        {"1B step 16x4224", 32, 8, 64, 16, 4224, 0, 0},  // T = 4096
        {"160M step 12x640", 12, 12, 64, 12, 640, 0, 190},
        {"SmolLM2 step 30x1152", 9, 3, 64, 30, 1152, 0, 260},
        {"3B 1x4224", 24, 8, 128, 1, 4224, 0, 470},
        {"8B 1x4224", 32, 8, 128, 1, 4224, 0, 500},
        {"3B step 28x1152", 24, 8, 128, 28, 1152, 0, 430},
        {"1B decode 16x1@4223", 32, 8, 64, 16, 1, 4223, 2800},
        {"SmolLM2 decode 30x1@4223", 9, 3, 64, 30, 1, 4223, 2400},
        {"3B decode 28x1@4223", 24, 8, 128, 28, 1, 4223, 3200},
        {"1B decode 1x1@4223", 32, 8, 64, 1, 1, 4223, 290},
        // the decode bench's case (4K prompt, T = 1024: the new tokens open a segment, 1-3 key tiles): one layer's
        // launch, a lone span; its time is the kernel's fixed chain (the profile line says which phase), no prediction
        {"SmolLM2 decode 1x1@200", 9, 3, 64, 1, 1, 200, 0},
        {"1B decode 1x1@200", 32, 8, 64, 1, 1, 200, 0},
        {"1B step, shared K/V (L2)", 32, 8, 64, 16, 1152, 0, 0, true},
    };
}

// The work model of a launch: warpgroup tiles computed (with the pingpong rule), K/V tile pairs loaded, items.
struct Work {
    long long items = 0, wg_tiles = 0, loads = 0;
    double tma_bytes = 0, tensor_us = 0, mufu_us = 0;
};

static Work work_model(const Setup& s) {
    Work w;
    const int R = s.H / s.KV, BP = 64 / R;
    for (const SpanDesc& d : s.spans) {
        if (d.rows == 0) continue;
        const int kvl = d.pos + d.rows;
        for (int c = d.pos / (2 * BP); c <= (kvl - 1) / (2 * BP); ++c) {
            const int p00 = 2 * c * BP, p01 = p00 + BP;
            const bool a0 = p00 < kvl && p00 + BP > d.pos, a1 = p01 < kvl && p01 + BP > d.pos;
            const int kt0 = a0 ? (std::min(p00 + BP, kvl) - 1) / 128 + 1 : 0;
            const int kt1 = a1 ? (std::min(p01 + BP, kvl) - 1) / 128 + 1 : 0;
            const int kt = std::max(kt0, kt1);
            w.items += s.KV;
            w.loads += (long long)kt * s.KV;
            w.wg_tiles += (long long)(kt0 > 0 && kt1 > 0 ? 2 * kt : kt0 + kt1) * s.KV;
        }
    }
    const double clk = g_clock_mhz * 1e6;
    w.tma_bytes = (double)w.loads * 2 * 128 * s.hd * 2;
    w.tensor_us = (double)w.wg_tiles * (4.0 * 64 * 128 * s.hd / 4096) / g_sms / clk * 1e6;
    w.mufu_us = (double)w.wg_tiles * (64.0 * 128 / 16) / g_sms / clk * 1e6;
    return w;
}

// [profile] one run of the profiling variant (V_PROF or V_PROFALT): where the consumer warpgroups' and the producer's
// cycles go.
static std::string profile_line(const Setup& s, int variant = V_PROF) {
    Sm90Launch L = sm90_launch(s, s.out, all_spans(s), 0, variant);
    L.prof = prof_buffer(L.grid);
    L();
    L.prof = prof_buffer(L.grid);  // a second run: warm instruction caches and clocks
    L();
    sync_or_die("attention_sm90 [profile]");
    const int N = attn90::PF_N, nwg = variant_wgs(variant, s.hd, s.H / s.KV), roles = nwg + 1;
    std::vector<unsigned long long> h((size_t)L.grid * roles * N);
    CUDA_CHECK(cudaMemcpy(h.data(), L.prof, h.size() * 8, cudaMemcpyDeviceToHost));
    double c[N] = {}, pr[N] = {};
    double t0 = 1e300, t1 = 0, busy = 0, cyc = 0, ns = 0;
    int ctas = 0;
    for (int b = 0; b < L.grid; ++b) {
        const unsigned long long* w0 = &h[((size_t)b * roles + 0) * N];
        const unsigned long long* p = &h[((size_t)b * roles + nwg) * N];
        if (p[attn90::PF_T1] == 0) continue;
        double e = (double)p[attn90::PF_T1];
        for (int w = 0; w < nwg; ++w) {
            const unsigned long long* ww = &h[((size_t)b * roles + w) * N];
            for (int i = 0; i < N; ++i) c[i] += (double)ww[i];
            e = std::max(e, (double)ww[attn90::PF_T1]);
        }
        for (int i = 0; i < N; ++i) pr[i] += (double)p[i];
        const double a = (double)std::min(w0[attn90::PF_T0], p[attn90::PF_T0]);
        t0 = std::min(t0, a);
        t1 = std::max(t1, e);
        busy += e - a;
        cyc += (double)w0[attn90::PF_TOTAL];
        ns += (double)(w0[attn90::PF_T1] - w0[attn90::PF_T0]);
        ++ctas;
    }
    char buf[640];
    if (ctas == 0 || c[attn90::PF_TOTAL] == 0) return "no profile";
    const double tot = c[attn90::PF_TOTAL], tiles = std::max(1.0, c[attn90::PF_TILES]);
    auto pc = [&](int f) { return 100.0 * c[f] / tot; };
    snprintf(buf, sizeof buf,
             "WG: %5.0f clk/tile, %5.1f tiles/item | item %4.1f%% waitK %4.1f%% turn %4.1f%% issue %4.1f%% waitS "
             "%4.1f%% soft %4.1f%% waitV %4.1f%% waitPV %4.1f%% tail %4.1f%% epi %4.1f%% | prod: waitQ %4.1f%% "
             "waitKst %4.1f%% waitVst %4.1f%% | CTA busy %4.1f%% of %.1f us | %4.0f MHz",
             tot / tiles, tiles / std::max(1.0, c[attn90::PF_ITEMS]), pc(attn90::PF_ITEM), pc(attn90::PF_WAITK),
             pc(attn90::PF_TURN), pc(attn90::PF_ISSUE), pc(attn90::PF_WAITS), pc(attn90::PF_SOFT),
             pc(attn90::PF_WAITV), pc(attn90::PF_WAITPV), pc(attn90::PF_TAIL), pc(attn90::PF_EPI),
             100.0 * pr[attn90::PF_ITEM] / pr[attn90::PF_TOTAL], 100.0 * pr[attn90::PF_WAITK] / pr[attn90::PF_TOTAL],
             100.0 * pr[attn90::PF_WAITV] / pr[attn90::PF_TOTAL], 100.0 * busy / ctas / (t1 - t0), (t1 - t0) / 1e3,
             ns > 0 ? cyc / ns * 1e3 : 0.0);
    return buf;
}

struct Row {
    std::string name;
    int cells, rows, pos, H, KV, hd;
    bool decode;
    double ms, rate, b2b_ms, b2b_rate, pred, nopp_ms, nosec_ms, alt_ms, simt_ms, simt_rate, rel;
    int wgs;
    double clk_per_tile, l2_tbs;
    bool ok;
};
static std::vector<Row> g_rows;

static void bench_shape(const Shape& sh) {
    Setup s;
    s.name = sh.name;
    s.H = sh.H;
    s.KV = sh.KV;
    s.hd = sh.hd;
    s.share_input = sh.shared;
    for (int i = 0; i < sh.cells; ++i) s.spans.push_back({sh.rows, sh.pos, -1});
    s.seed = std::hash<std::string>()(sh.name) & 0xFFFF;
    alloc(s);
    const bool decode = sh.pos > 0;
    // FLOPs: QK^T and PV over the keys each query sees (causal; a whole span: 4 hd H rows^2 / 2 as the comparison
    // figures count it). Bytes (decode): K and V of every span's keys once, Q and O once.
    double flop = 0, bytes = 0;
    for (const SpanDesc& d : s.spans) {
        flop += decode ? 4.0 * s.hd * s.H * d.rows * (d.pos + (d.rows + 1) / 2.0)
                       : 4.0 * s.hd * s.H * (double)d.rows * d.rows / 2.0;
        bytes += 2.0 * (d.pos + d.rows) * s.KV * s.hd * 2 + 2.0 * d.rows * s.H * s.hd * 2;
    }
    auto rate = [&](double ms) {
        return ms > 0 ? (decode ? bytes / (ms * 1e-3) / 1e9 : flop / (ms * 1e-3) / 1e12) : 0;
    };
    const Sm90Launch L = sm90_launch(s, s.out, all_spans(s));
    const double t = time_ms(L, opt.reps);
    const double tb = time_b2b_ms(L, 20);
    double t_nopp = 0, t_nosec = 0, t_alt = 0;
    if (opt.variants && !decode) {
        t_nopp = time_ms(sm90_launch(s, s.out, all_spans(s), 0, V_NOPP), opt.reps);
        t_nosec = time_ms(sm90_launch(s, s.out, all_spans(s), 0, V_NOSEC), opt.reps);
    }
    // The other warpgroup count than the rule's at hd 64, decode shapes included: the A/B of session 21.
    const int wgs = attn90::consumer_wgs(s.hd, s.H / s.KV), alt_wgs = variant_wgs(V_ALT, s.hd, s.H / s.KV);
    if (opt.variants && s.hd == 64) t_alt = time_ms(sm90_launch(s, s.out, all_spans(s), 0, V_ALT), opt.reps);
    // Checked run: fresh poison, one launch, compare with the reference.
    poison(s, s.out);
    L();
    sync_or_die(("attention_sm90 " + sh.name).c_str());
    const std::vector<uint16_t> out = download(s, s.out);
    const std::vector<float> ref = gpu_reference(s);
    const CheckResult r = check_output(s, out, &ref, all_spans(s));
    const bool ok = judge(r, "timed " + sh.name + " " + cfg_name(s));
    double ts = 0;
    if (opt.simt && !sh.shared) {
        bf16* so;
        CUDA_CHECK(cudaMalloc(&so, (size_t)s.out_rows * s.out_ld * 2));
        const SimtLaunch S = simt_launch(s, so);
        ts = time_ms(S, std::max(3, opt.reps / 3));
        CUDA_CHECK(cudaFree(so));
    }
    const Work w = work_model(s);
    Row row;
    row.name = sh.name;
    row.cells = sh.cells;
    row.rows = sh.rows;
    row.pos = sh.pos;
    row.H = sh.H;
    row.KV = sh.KV;
    row.hd = sh.hd;
    row.decode = decode;
    row.ms = t;
    row.rate = rate(t);
    row.b2b_ms = tb;
    row.b2b_rate = rate(tb);
    row.pred = sh.pred;
    row.nopp_ms = t_nopp;
    row.nosec_ms = t_nosec;
    row.wgs = wgs;
    row.alt_ms = t_alt;
    row.simt_ms = ts;
    row.simt_rate = rate(ts);
    row.rel = r.rel;
    row.ok = ok;
    row.clk_per_tile = t * 1e-3 * g_clock_mhz * 1e6 * g_sms / std::max(1LL, w.wg_tiles);
    row.l2_tbs = w.tma_bytes / (t * 1e-3) / 1e12;
    g_rows.push_back(row);
    printf("  %-26s %-12s %8.4f ms %8.1f %s (b2b %8.4f ms %8.1f)", sh.name.c_str(), cfg_name(s).c_str(), t, row.rate,
           decode ? "GB/s   " : "TFLOP/s", tb, row.b2b_rate);
    if (t_nopp > 0) printf("  no-pp %.4f  no-sec %.4f", t_nopp, t_nosec);
    printf("  %dwg", wgs);
    if (t_alt > 0) printf(" (%dwg %.4f, %.1f)", alt_wgs, t_alt, rate(t_alt));
    if (ts > 0) printf("  (SIMT %.4f ms)", ts);
    printf("  err %.2e %s\n", r.rel, ok ? "" : "FAIL");
    printf("      model: %lld items, %lld WG tiles, %lld K/V tile pairs = %.0f MB (%.2f TB/s), tensor %.1f us, MUFU "
           "%.1f us at peak; %.0f clk per WG tile (SM time)\n",
           w.items, w.wg_tiles, w.loads, w.tma_bytes / 1e6, row.l2_tbs, w.tensor_us, w.mufu_us, row.clk_per_tile);
    if (opt.variants) {
        const std::string pl = profile_line(s);
        printf("      profile: %s\n", pl.c_str());
        if (s.hd == 64) {
            const std::string p2 = profile_line(s, V_PROFALT);
            printf("      profile %dwg: %s\n", alt_wgs, p2.c_str());
        }
    }
    fflush(stdout);
    release(s);
}

// ----------------------------------------------------------------------------------------------------------------

static void usage() {
    printf(
        "attention_sm90_dev [--quick] [--skip-checks] [--shape SUBSTR] [--reps N] [--grid N] [--no-simt]\n"
        "  --quick    correctness only (no timing)\n"
        "  --skip-checks  timing only (no correctness sections; the timed shapes are still checked)\n"
        "  --shape    time only the shapes whose name contains SUBSTR (e.g. '1B', 'decode', '4224')\n"
        "  --reps     timed repetitions per measurement (median; default 25; the SIMT kernel gets a third)\n"
        "  --grid     CTAs of our kernel (default: the number of SMs)\n"
        "  --no-simt  do not time the SIMT kernel\n"
        "  --no-variants  do not time the no-pingpong / no-sections variants nor run the profile\n");
}

int main(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                usage();
                exit(2);
            }
            return argv[++i];
        };
        if (a == "--quick") opt.quick = true;
        else if (a == "--skip-checks") opt.checks = false;
        else if (a == "--shape") opt.filter = next();
        else if (a == "--reps") opt.reps = std::max(1, atoi(next().c_str()));
        else if (a == "--grid") opt.grid = atoi(next().c_str());
        else if (a == "--no-simt") opt.simt = false;
        else if (a == "--no-variants") opt.variants = false;
        else {
            usage();
            return a == "--help" || a == "-h" ? 0 : 2;
        }
    }
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    g_sms = prop.multiProcessorCount;
    int clock_khz = 0;
    (void)cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0);
    g_clock_mhz = clock_khz > 0 ? clock_khz / 1e3 : 1830.0;
    printf("device: %s, %d SMs, cc %d.%d, %.0f MHz; smem/block optin %zu; kernel smem hd64 %d, hd128 %d bytes\n",
           prop.name, g_sms, prop.major, prop.minor, clock_khz / 1e3, prop.sharedMemPerBlockOptin,
           attn90::smem_bytes(64), attn90::smem_bytes(128));
    if (prop.major != 9) {
        printf("needs an sm_90 GPU (H100/H200)\n");
        return 2;
    }
    for (const void* f :
         {(const void*)attention_sm90_causal_bf16_hd64, (const void*)attention_sm90_causal_bf16_hd64_wg2,
          (const void*)attention_sm90_causal_bf16_hd128}) {
        cudaFuncAttributes fa;
        CUDA_CHECK(cudaFuncGetAttributes(&fa, f));
        printf("  sm90 kernel: %d registers (launch), %zu bytes local, %d max threads\n", fa.numRegs,
               fa.localSizeBytes, fa.maxThreadsPerBlock);
    }
    CUDA_CHECK(cudaMalloc(&g_flush, FLUSH_BYTES));

    if (opt.checks) {
        int c0 = g_checks, f0 = g_failures;
        test_cpu();
        printf("  cpu: %d checks, %d failed\n", g_checks - c0, g_failures - f0);
        c0 = g_checks, f0 = g_failures;
        test_grouped();
        printf("  group: %d checks, %d failed\n", g_checks - c0, g_failures - f0);
        c0 = g_checks, f0 = g_failures;
        test_sections();
        printf("  sections: %d checks, %d failed\n", g_checks - c0, g_failures - f0);
        c0 = g_checks, f0 = g_failures;
        test_decode();
        printf("  decode: %d checks, %d failed\n", g_checks - c0, g_failures - f0);
        printf("correctness: %d checks, %d failed; largest rel err %.2e (bound %.1e)\n", g_checks, g_failures,
               g_max_rel, TOL);
        fflush(stdout);
    }

    if (!opt.quick) {
        printf("[speed] median of %d after 3 warm-ups, L2 flushed (128 MB write) before each run; grid %d\n",
               opt.reps, opt.grid > 0 ? opt.grid : g_sms);
        for (const Shape& sh : shapes()) {
            if (!opt.filter.empty() && sh.name.find(opt.filter) == std::string::npos) continue;
            bench_shape(sh);
        }
    }

    printf("%s: %d checks, %d failed\n", g_failures ? "FAILED" : "PASSED", g_checks, g_failures);
    if (!g_rows.empty()) {
        printf("\nversion 2 (production: pingpong + L2 sections). ms: median of %d, L2 flushed; b2b: back-to-back, "
               "no flush (as benches/python/sdpa_attention.py times SDPA); pred: docs/log/attention_sm90.md s6; "
               "no-pp / no-sec / alt wg: the A/B variants (flushed; alt wg: the other count of consumer warpgroups, "
               "hd 64); wg: production's count; %%SDPA: rate / 349 TFLOP/s (SDPA flash, 1B step, this H200)\n",
               opt.reps);
        printf("%-26s %5s %5s %5s %6s %4s %9s %14s %14s %7s %6s %6s %9s %9s %9s %9s %9s %8s %9s %s\n", "shape",
               "spans", "rows", "pos", "H/KV", "hd", "ms", "rate", "b2b rate", "pred", "m/pred", "%SDPA", "no-pp ms",
               "no-sec ms", "alt wg ms", "clk/tile", "SIMT ms", "speedup", "rel err", "check");
        for (const Row& r : g_rows) {
            char hkv[16], rate[32], brate[32], sdpa[16], nopp[16], nosec[16], alt[16], pred[16], mp[16];
            snprintf(hkv, sizeof hkv, "%d/%d", r.H, r.KV);
            snprintf(rate, sizeof rate, "%8.1f %s", r.rate, r.decode ? "GB/s  " : "TFLOP/s");
            snprintf(brate, sizeof brate, "%8.1f %s", r.b2b_rate, r.decode ? "GB/s  " : "TFLOP/s");
            const bool is1b = r.name == "1B step 16x1152";
            if (is1b)
                snprintf(sdpa, sizeof sdpa, "%.0f%%", 100.0 * r.rate / 349.0);
            else
                snprintf(sdpa, sizeof sdpa, "-");
            snprintf(nopp, sizeof nopp, r.nopp_ms > 0 ? "%.4f" : "-", r.nopp_ms);
            snprintf(nosec, sizeof nosec, r.nosec_ms > 0 ? "%.4f" : "-", r.nosec_ms);
            snprintf(alt, sizeof alt, r.alt_ms > 0 ? "%.4f" : "-", r.alt_ms);
            snprintf(pred, sizeof pred, r.pred > 0 ? "%.0f" : "-", r.pred);
            snprintf(mp, sizeof mp, r.pred > 0 ? "%.2f" : "-", r.pred > 0 ? r.rate / r.pred : 0.0);
            printf("%-26s %5d %5d %5d %6s %4d %9.4f %14s %14s %7s %6s %6s %9s %9s %9s %9.0f %9.4f %7.1fx %9.2e %s\n",
                   r.name.c_str(), r.cells, r.rows, r.pos, hkv, r.hd, r.ms, rate, brate, pred, mp, sdpa, nopp, nosec,
                   alt, r.clk_per_tile, r.simt_ms, r.simt_ms > 0 ? r.simt_ms / r.ms : 0.0, r.rel, r.ok ? "ok" : "FAIL");
        }
    }
    return g_failures ? 1 : 0;
}
