#!/usr/bin/env bash
# Decode tiles v6 (branch decode-v6, gemm_sm90 v6: docs/log/gemm_sm90.md §13): run on the GPU host from the
# repository root of a bundle of the branch (`cargo xtask bundle --gpu`: dist/dbrmt, dist/run.sh,
# dist/tests/<crate>__<test>), with DBRMT_REPO_ROOT=$PWD. Logs and JSON lines go to $OUT; a short table is printed
# last. Expected ~3 minutes on an H200 (v5's script took ~2.5); every part is under `timeout` (sum of the limits
# ~10 minutes, only reached if every part hangs; a failing part prints where it stopped).
#   1. Checks. gpu_gemm: every ignored test, among them gemm_sm90_bytes_do_not_depend_on_the_tile_width (one
#      problem set at all 11 tile widths bitwise, v6: with A boxes of 8/16/32/64 rows, k = 64, 200, 576, 584 (partial
#      last stages of the multi-k-block narrow stages) and SwiGLU at its narrow tile + 128 + 256; and decode rows alone
#      bitwise the same rows of a 1152-row segment, now also gate/up: IF THAT FAILS THE v6 NARROW KERNELS ARE INVALID,
#      run with DBRMT_DECODE_TILES=off) and the merged-row checks (a row alone at a narrow width, SwiGLU included, vs
#      the same row in a 130-row group at a wide one). gpu_armt: the memory kernels (the fused read's column tiles,
#      unchanged in v6). `dbrmt selftest` (every kernel check, the width and decode checks included). gpu_engine and
#      (time permitting) gpu_requests: the engine's decode-vs-prefill and many-requests-as-alone bitwise tests.
#   2. `dbrmt bench requests --requests 1 --tokens 4096 --decode 128 --no-serial` with the decode tiles (default)
#      and with DBRMT_DECODE_TILES=off; `BENCH_FILTER=decode dist/run.sh bench OUT matrix` with the decode tiles.
#   3. If ncu is on the host: kernel durations of the same decode window as docs/log/device/
#      2026-12-01-h200-s5-call2.sh and the v5 run (450 launches after 4000, 1 request, 4K prompt), per kernel
#      (§13 predicts, per layer per token: q/k/v bn32 ~5.6 us (v5 8.4), o bn16 ~4.6 (8.8), down bn16 ~10.9 (22.7),
#      memory q bn16 ~4.3 (8.0), gate/up swiglu_bn128_decode ~19 (22.0 at bn256); the fused read unchanged, 14.0).
set -uo pipefail
R=$PWD
OUT=${OUT:-$R/decode-v6-out}
mkdir -p "$OUT"
export DBRMT_REPO_ROOT=$R
summary=()
t0=$SECONDS
note() { summary+=("[$((SECONDS - t0))s] $1"); echo "### $1"; }
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.sm --format=csv,noheader 2>/dev/null

# name, executable, timeout, filter (empty: every ignored test)
gpu_test() {
  local name=$1 exe=dist/tests/$2 limit=$3 filter=${4:-}
  if [ ! -x "$exe" ]; then note "$name: $exe missing"; return; fi
  if timeout "$limit" "$exe" --ignored --test-threads=1 $filter > "$OUT/t-$name.log" 2>&1; then
    note "$name ok: $(grep -E '^test result' "$OUT/t-$name.log" | tail -1)"
  else
    note "$name FAILED (rc $?)"; grep -E "panicked|differ|FAIL|mismatch" -A2 "$OUT/t-$name.log" | head -12
  fi
}
gpu_test gpu_gemm dbrmt-kernels__gpu_gemm 120
grep -E "BN \[|decode rows" "$OUT/t-gpu_gemm.log" | head -30
gpu_test gpu_armt dbrmt-kernels__gpu_armt 60
grep -E "column tiles|alone vs in its span" "$OUT/t-gpu_armt.log" | head -8
if (cd /tmp && timeout 60 "$R/dist/dbrmt" selftest > "$OUT/selftest.log" 2>&1); then
  note "selftest: $(tail -1 "$OUT/selftest.log")"
else
  note "selftest FAILED: $(tail -1 "$OUT/selftest.log")"; grep FAIL "$OUT/selftest.log" | head -8
fi
grep -E "BN \[|decode rows|column tiles" "$OUT/selftest.log" | head -30
# the engine's own decode-vs-prefill bitwise tests (decoded tokens = the whole text's bits; many requests as alone),
# now through the narrow tiles; gpu_requests only if the run is still short
gpu_test gpu_engine dbrmt-runtime__gpu_engine 45
if [ $((SECONDS - t0)) -lt 100 ]; then gpu_test gpu_requests dbrmt-runtime__gpu_requests 60
else note "gpu_requests skipped (time)"; fi
echo "### checks took $((SECONDS - t0)) s"

timeout 45 dist/dbrmt bench requests --requests 1 --tokens 4096 --decode 128 --no-serial \
  --out "$OUT/requests-tiles.jsonl" 2> "$OUT/b-tiles.log"
note "bench decode 1 x 4K + 128, decode tiles on, rc $?"
DBRMT_DECODE_TILES=off timeout 45 dist/dbrmt bench requests --requests 1 --tokens 4096 --decode 128 --no-serial \
  --out "$OUT/requests-off.jsonl" 2> "$OUT/b-off.log"
note "bench decode 1 x 4K + 128, DBRMT_DECODE_TILES=off, rc $?"
grep -h "bench:" "$OUT"/b-tiles.log "$OUT"/b-off.log
BENCH_FILTER=decode timeout 90 dist/run.sh bench "$OUT/matrix" matrix 2> "$OUT/matrix.log"
note "matrix decode rows rc $?"

NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
if [ -n "$NCU" ]; then
  # as docs/log/device/2026-12-01-h200-s5-call2.sh (its ncu-decode-1b.csv is the v4 baseline of the same window)
  timeout 90 $NCU --clock-control none --metrics gpu__time_duration.sum --launch-skip 4000 --launch-count 450 --csv \
    --log-file "$OUT/ncu-decode.csv" dist/dbrmt bench requests --requests 1 --tokens 4096 --decode 64 --no-serial \
    --out /tmp/decode-v6-ncu.jsonl > "$OUT/ncu.log" 2>&1
  note "ncu decode rc $? ($NCU)"
  # v6's open question (docs/log/gemm_sm90.md §13, "Risk"): is a narrow stage's time the barriers or the chained
  # wgmma? The warp states of a few bn16 launches (o / down: f32 accumulate) answer it; skipped when short of time.
  if [ $((SECONDS - t0)) -lt 200 ]; then
    timeout 60 $NCU --clock-control none --kernel-name regex:gemm_sm90_nt_bf16_bf16_f32_bn16 --launch-skip 100 \
      --launch-count 2 --section WarpStateStats --section SchedulerStats --section LaunchStats \
      dist/dbrmt bench requests --requests 1 --tokens 4096 --decode 16 --no-serial \
      --out /tmp/decode-v6-ncu2.jsonl > "$OUT/ncu-stalls.log" 2>&1
    note "ncu warp states of bn16 rc $?"
    grep -E "gemm_sm90|Stall|Warp Cycles|Issued|Eligible|No Eligible|Active Warps" "$OUT/ncu-stalls.log" | head -40
  else
    note "ncu warp states skipped (time)"
  fi
else
  note "ncu not on this host: no per-kernel times"
fi

echo "===== decode tiles v6 (gemm_sm90 v6; $((SECONDS - t0)) s in all)"
python3 - "$OUT" <<'PY'
import csv, json, os, sys
from collections import defaultdict
out = sys.argv[1]
def rows(path):
    try:
        return [json.loads(l) for l in open(path) if l.strip()]
    except OSError:
        return []
for name, path in [("decode tiles on ", "requests-tiles.jsonl"), ("DBRMT_DECODE_TILES=off", "requests-off.jsonl")]:
    for d in [r for r in rows(os.path.join(out, path)) if r.get("mode") == "decode"]:
        print(f'1B bench requests, 1 x 4K + 128, {name}: {d["tokens_per_s"]:7.0f} tokens/s, '
              f'{d["ms"] / max(d["steps"], 1):.3f} ms/step (target >= 800 tokens/s)')
for r in rows(os.path.join(out, "matrix", "dbrmt.jsonl")):
    if r.get("kind") == "decode":
        print(f'matrix {r["row"]:<20} {r["tokens_per_s"]:7.0f} tokens/s, {r["ms_per_token"]:.3f} ms/token '
              f'(v5: 1b 520 in bench requests)')
path = os.path.join(out, "ncu-decode.csv")
if os.path.exists(path):
    rows = [r for r in csv.reader(open(path)) if len(r) > 10]
    if rows:
        h, rows = rows[0], rows[1:]
        ki, mi, vi, gi = (h.index(x) for x in ("Kernel Name", "Metric Name", "Metric Value", "Grid Size"))
        ui = h.index("Metric Unit") if "Metric Unit" in h else None
        t, grid = defaultdict(list), {}
        for r in rows:
            if r[mi] != "gpu__time_duration.sum":
                continue
            v = float(r[vi].replace(",", ""))
            u = r[ui] if ui is not None else "ns"
            v = v / 1000 if u in ("ns", "nsecond") else (v if u in ("us", "usecond") else v * 1000)
            k = r[ki].split("(")[0][:60]
            t[k].append(v)
            grid[k] = r[gi]
        tot = sum(sum(v) for v in t.values())
        print(f"ncu: {sum(len(v) for v in t.values())} kernels, {tot:.0f} us of kernel time "
              f"(v4 s5-call2 and v5: the same window)")
        for k, v in sorted(t.items(), key=lambda x: -sum(x[1])):
            print(f"  {k:<44} grid {grid[k]:<14} {len(v):4d} x {sum(v) / len(v):7.2f} us = {sum(v):8.1f} us")
PY
echo "===== summary"; printf '%s\n' "${summary[@]}"
