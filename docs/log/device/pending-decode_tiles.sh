#!/usr/bin/env bash
# Decode tiles (branch decode-tiles, gemm_sm90 v5): run on the GPU host from the repository root of a bundle of the
# branch (`cargo xtask bundle --gpu`: dist/dbrmt, dist/run.sh, dist/tests/<crate>__<test>), with
# DBRMT_REPO_ROOT=$PWD. Logs and JSON lines go to $OUT; a short table is printed last. Expected ~2-3 minutes on an
# H200; every part is under `timeout` (checks 330 s, benches 300 s at most; a failing part prints where it stopped).
#   1. Checks. gpu_gemm: every ignored test, among them gemm_sm90_bytes_do_not_depend_on_the_tile_width (one
#      problem set at all 11 tile widths bitwise, and decode rows alone bitwise the same rows of a 1152-row segment:
#      IF THAT FAILS THE DECODE TILES ARE INVALID, run with DBRMT_DECODE_TILES=off) and the merged-row checks (a row
#      alone, now at a narrow width, vs the same row in a 130-row group at a wide one). gpu_armt: the memory kernels,
#      among them armt_read_fused_sm90_bytes_do_not_depend_on_the_column_tile (the fused read at 32, 64 and 128
#      columns bitwise, and a decoded row vs its 1152-row cell: if it fails, the same switch). `dbrmt selftest`
#      (every kernel check, the width and decode checks included). gpu_engine and (time permitting) gpu_requests:
#      the engine's decode-vs-prefill and many-requests-as-alone bitwise tests, now through the narrow tiles.
#   2. `dbrmt bench requests --requests 1 --tokens 4096 --decode 128 --no-serial` with the decode tiles (default)
#      and with DBRMT_DECODE_TILES=off; `BENCH_FILTER=decode dist/run.sh bench OUT matrix` (the matrix's decode rows,
#      smollm2-135m and llama-3.2-1b, 4K prompt + 256 tokens) with the decode tiles.
#   3. If ncu is on the host: kernel durations of the same decode window as docs/log/device/
#      2026-12-01-h200-s5-call2.sh (450 launches after 4000, 1 request, 4K prompt), to compare per kernel with its
#      ncu-decode-1b.csv (the per-kernel numbers docs/log/gemm_sm90.md §12 predicts: q/k/v BN 32 ~4.6 us, o BN 16
#      ~3.6, down BN 16 ~9.9, memory q BN 16 ~2.6, the fused read at 32 columns ~6).
set -uo pipefail
R=$PWD
OUT=${OUT:-$R/decode-tiles-out}
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
gpu_test gpu_gemm dbrmt-kernels__gpu_gemm 150
grep -E "BN \[|decode rows" "$OUT/t-gpu_gemm.log" | head -20
gpu_test gpu_armt dbrmt-kernels__gpu_armt 90
grep -E "column tiles|alone vs in its span" "$OUT/t-gpu_armt.log" | head -8
if (cd /tmp && timeout 90 "$R/dist/dbrmt" selftest > "$OUT/selftest.log" 2>&1); then
  note "selftest: $(tail -1 "$OUT/selftest.log")"
else
  note "selftest FAILED: $(tail -1 "$OUT/selftest.log")"; grep FAIL "$OUT/selftest.log" | head -8
fi
grep -E "BN \[|decode rows|column tiles" "$OUT/selftest.log" | head -24
# the engine's own decode-vs-prefill bitwise tests (decoded tokens = the whole text's bits; many requests as alone),
# now through the narrow tiles; gpu_requests only if the run is still short
gpu_test gpu_engine dbrmt-runtime__gpu_engine 60
if [ $((SECONDS - t0)) -lt 120 ]; then gpu_test gpu_requests dbrmt-runtime__gpu_requests 90
else note "gpu_requests skipped (time)"; fi
echo "### checks took $((SECONDS - t0)) s"

timeout 60 dist/dbrmt bench requests --requests 1 --tokens 4096 --decode 128 --no-serial \
  --out "$OUT/requests-tiles.jsonl" 2> "$OUT/b-tiles.log"
note "bench decode 1 x 4K + 128, decode tiles on, rc $?"
DBRMT_DECODE_TILES=off timeout 60 dist/dbrmt bench requests --requests 1 --tokens 4096 --decode 128 --no-serial \
  --out "$OUT/requests-off.jsonl" 2> "$OUT/b-off.log"
note "bench decode 1 x 4K + 128, DBRMT_DECODE_TILES=off, rc $?"
grep -h "bench:" "$OUT"/b-tiles.log "$OUT"/b-off.log
BENCH_FILTER=decode timeout 120 dist/run.sh bench "$OUT/matrix" matrix 2> "$OUT/matrix.log"
note "matrix decode rows rc $?"

NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
if [ -n "$NCU" ]; then
  # as docs/log/device/2026-12-01-h200-s5-call2.sh (its ncu-decode-1b.csv is the v4 baseline of the same window)
  timeout 120 $NCU --clock-control none --metrics gpu__time_duration.sum --launch-skip 4000 --launch-count 450 --csv \
    --log-file "$OUT/ncu-decode.csv" dist/dbrmt bench requests --requests 1 --tokens 4096 --decode 64 --no-serial \
    --out /tmp/decode-tiles-ncu.jsonl > "$OUT/ncu.log" 2>&1
  note "ncu decode rc $? ($NCU)"
else
  note "ncu not on this host: no per-kernel times"
fi

echo "===== decode tiles (gemm_sm90 v5; $((SECONDS - t0)) s in all)"
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
              f'(call8 before: smollm2 390, 1b 374)')
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
              f"(v4, s5-call2: the same window)")
        for k, v in sorted(t.items(), key=lambda x: -sum(x[1])):
            print(f"  {k:<44} grid {grid[k]:<14} {len(v):4d} x {sum(v) / len(v):7.2f} us = {sum(v):8.1f} us")
PY
echo "===== summary"; printf '%s\n' "${summary[@]}"
