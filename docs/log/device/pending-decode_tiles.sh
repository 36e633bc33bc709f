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
#      (every kernel check, the width and decode checks included).
#   2. `dbrmt bench requests --requests 1 --tokens 4096 --decode 128 --no-serial` with the decode tiles (default)
#      and with DBRMT_DECODE_TILES=off; `BENCH_FILTER=decode dist/run.sh bench OUT matrix` (the matrix's decode rows,
#      smollm2-135m and llama-3.2-1b, 4K prompt + 256 tokens) with the decode tiles.
#   3. If ncu is on the host: the device time of the first 60 narrow launches of a 1B decode (the per-kernel
#      numbers docs/log/gemm_sm90.md §12 predicts: q/k/v BN 32 ~4.6 us, o BN 16 ~3.6, down BN 16 ~9.9, memory q
#      BN 16 ~2.6, the fused read at 32 columns ~6).
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

if command -v ncu > /dev/null; then
  timeout 60 ncu --kernel-name regex:'(gemm_sm90_nt_bf16_bf16_(bf16|f32)_bn(16|32|64)|armt_read_fused_sm90_n(32|64)_f32)$' \
    --launch-count 60 \
    --metrics gpu__time_duration.sum,launch__grid_size --csv --print-units base \
    dist/dbrmt bench requests --requests 1 --tokens 1024 --decode 4 --no-serial --out /dev/null \
    > "$OUT/ncu.csv" 2> "$OUT/ncu.log"
  note "ncu narrow GEMMs rc $?"
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
path = os.path.join(out, "ncu.csv")
if os.path.exists(path):
    lines = [l for l in open(path) if l.startswith('"')]
    t, grid = defaultdict(list), {}
    for r in csv.DictReader(lines):
        k = r.get("Kernel Name", "?")
        if r.get("Metric Name") == "gpu__time_duration.sum":
            v = float(r["Metric Value"].replace(",", ""))
            t[k].append(v / 1e3)  # --print-units base: ns
        elif r.get("Metric Name") == "launch__grid_size":
            grid[k] = r["Metric Value"]
    for k, v in sorted(t.items()):
        print(f'ncu {k:<40} grid {grid.get(k, "?"):>4}  {sum(v) / len(v):7.1f} us mean of {len(v)}, '
              f'min {min(v):.1f}')
PY
echo "===== summary"; printf '%s\n' "${summary[@]}"
