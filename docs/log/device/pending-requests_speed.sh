#!/usr/bin/env bash
# Many requests, throughput (branch requests-speed): run on the GPU host from the repository root of a bundle of the
# branch (`cargo xtask bundle --gpu`: dist/dbrmt + dist/tests/*gpu_*), with DBRMT_REPO_ROOT=$PWD. Logs and JSON lines
# go to $OUT; a short table is printed last. Budget: about 2-3 minutes expected on an H200; every part is under
# `timeout` (timeouts: checks 480 s, benches 330 s in all; the run stays under 8 minutes
# only if no two of them hit it: a failing run prints where it stopped).
#   1. Checks: merged GEMM rows bitwise the rows alone (v1 and v2, check/gemm_rows.rs) and the row moves
#      (cuda/rows.cu); gpu_requests (random mixes and 70 decoders, each bitwise as alone: the merged decode rows;
#      since the merge of main, generations with keep_last_token and 0 new tokens too), gpu_engine, gpu_generate,
#      gpu_serve (`dbrmt serve --device cuda` on the tiny fixture: 8 clients beside an endless stream each get what
#      they get alone, a stored state — kept by that request only, copied out asynchronously — continues as the
#      whole text); `dbrmt selftest --quick`.
#   2. `dbrmt bench requests` on 1B-shaped random weights, T = 1024: 16 x 8K packed vs one after another; 4 x 32K;
#      16 x 8K again with every final state copied to the host (--keep-states: the asynchronous page-locked copy);
#      decode 1/4/16/64 requests (prompt 128, 64 new tokens), and 16 with the merge off (DBRMT_MERGE_ROWS=off).
#      Each line is followed by the host time by phase (admission, steps, waits for the device).
#   3. A short `dbrmt serve` load (benches/python/serve_load.py on the 1B shape: 96 requests of 1K-8K token-id
#      prompts, 32 new tokens each, 32 clients; sending stops after 60 s): throughput, TTFT, requests per step.
set -uo pipefail
R=$PWD
OUT=${OUT:-$R/requests-speed-out}
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
    note "$name FAILED (rc $?)"; grep -E "panicked|differs|FAIL|mismatch" -A2 "$OUT/t-$name.log" | head -10
  fi
}
gpu_test gemm_rows dbrmt-kernels__gpu_gemm 90 merged_rows_are_bitwise_the_rows_alone
gpu_test row_moves dbrmt-kernels__gpu_layer_ops 60 row_moves_match_the_host
gpu_test gpu_requests dbrmt-runtime__gpu_requests 120
gpu_test gpu_engine dbrmt-runtime__gpu_engine 90
gpu_test gpu_generate dbrmt-cli__gpu_generate 60
gpu_test gpu_serve dbrmt-cli__gpu_serve 120
if (cd /tmp && timeout 60 "$R/dist/dbrmt" selftest --quick > "$OUT/selftest.log" 2>&1); then
  note "selftest --quick: $(tail -1 "$OUT/selftest.log")"
else
  note "selftest --quick FAILED: $(tail -1 "$OUT/selftest.log")"; grep FAIL "$OUT/selftest.log" | head -5
fi
echo "### checks took $((SECONDS - t0)) s"

B=$OUT/requests.jsonl
: > "$B"
timeout 90 dist/dbrmt bench requests --requests 16 --tokens 8192 --iters 3 --out "$B" 2> "$OUT/b-16x8k.log"
note "bench 16 x 8K rc $?"
timeout 60 dist/dbrmt bench requests --requests 4 --tokens 32768 --iters 3 --out "$B" 2> "$OUT/b-4x32k.log"
note "bench 4 x 32K rc $?"
timeout 60 dist/dbrmt bench requests --requests 16 --tokens 8192 --iters 3 --keep-states --out "$B" \
  2> "$OUT/b-16x8k-states.log"
note "bench 16 x 8K, states kept, rc $?"
timeout 120 dist/dbrmt bench requests --requests 1,4,16,64 --tokens 128 --decode 64 --iters 2 --no-serial --out "$B" \
  2> "$OUT/b-decode.log"
note "bench decode rc $?"
DBRMT_MERGE_ROWS=off timeout 60 dist/dbrmt bench requests --requests 16 --tokens 128 --decode 64 --no-serial \
  --out "$B" 2> "$OUT/b-decode-unmerged.log"
note "bench decode, merge off, rc $?"
grep -h "bench:" "$OUT"/b-*.log
PYTHONUNBUFFERED=1 timeout 150 python3 benches/python/serve_load.py --dbrmt dist/dbrmt --preset llama-3.2-1b \
  --requests 96 --clients 32 --max-concurrent 32 --min-prompt 1024 --max-prompt 8192 --gen-tokens 32 \
  --deadline-s 60 --out "$OUT/serve.jsonl" > "$OUT/serve-load.log" 2>&1
note "serve load rc $?"

echo "===== many requests (1B shape, T = 1024; $((SECONDS - t0)) s in all)"
python3 - "$B" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def phases(r):
    p = r.get("phase_ms") or {}
    return ", ".join(f"{k} {v:.0f}" for k, v in p.items())
pre = [r for r in rows if r["mode"] == "prefill"]
for p in [r for r in pre if r["method"] == "packed"]:
    s = next((r for r in pre if r["method"] == "serial" and r["requests"] == p["requests"]
              and r["tokens"] == p["tokens"] and r.get("keep_states") == p.get("keep_states")), None)
    sp = f'{s["ms"] / p["ms"]:.2f}x' if s else "-"
    kept = " (states kept)" if p.get("keep_states") else ""
    print(f'prefill {p["requests"]:>3} x {p["tokens"]:>6}{kept}: packed {p["ms"]:8.1f} ms ({p["steps"]} steps), '
          f'one after another {(s or {}).get("ms", float("nan")):8.1f} ms ({(s or {}).get("steps", "-")} steps): '
          f'{sp} (target >= 1.5x for 16 x 8K); occupancy {p["slot_occupancy"]:.2f} vs '
          f'{(s or {}).get("slot_occupancy", float("nan")):.2f}')
    print(f'    phases ms, packed: {phases(p)}')
    if s:
        print(f'    phases ms, serial: {phases(s)}')
dec = [r for r in rows if r["mode"] == "decode"]
one = next((r["tokens_per_s"] for r in dec if r["requests"] == 1 and r.get("merge_rows", "on") != "off"), None)
for d in dec:
    x = f'{d["tokens_per_s"] / one:.1f}x one' if one else "-"
    merge = "merge off" if d.get("merge_rows") == "off" else "merged"
    print(f'decode {d["requests"]:>3} requests ({merge}): {d["tokens_per_s"]:8.0f} tokens/s ({x}; target 16 >= 8x), '
          f'{d["ms"] / max(d["steps"], 1):.3f} ms/step; phases ms: {phases(d)}')
PY
echo "===== dbrmt serve load (1B shape, 96 requests of 1K-8K, 32 clients)"
grep '^|' "$OUT/serve-load.log" || tail -5 "$OUT/serve-load.log"
echo "===== summary"; printf '%s\n' "${summary[@]}"
