#!/usr/bin/env bash
# Greedy ids on the device (branch device-argmax): run on the GPU host from the repository root of a bundle of the
# branch (`cargo xtask bundle --gpu`: dist/dbrmt + dist/tests/*gpu_*), with DBRMT_REPO_ROOT=$PWD. Logs and JSON lines
# go to $OUT; a short table is printed last. Budget: about 2 minutes expected on an H200 (checks ~1 min, benches
# ~1 min); every part is under `timeout` (checks 330 s, benches 200 s at most).
#   1. Checks: argmax_rows_f32 against the host's argmax (check/argmax_rows.rs: 64 decode rows of a 128,256 vocabulary,
#      49,152, odd widths; planted ties, NaNs, infinities, signed zeros, denormals; exact ids); gpu_requests (random
#      mixes and 70 decoders bitwise as alone — the mixes now draw tokens without logits, chosen on the device — and
#      device_argmax_tokens_are_the_host_argmax: 70 decoders on two shapes, device ids vs the logits copied and
#      DBRMT_DEVICE_ARGMAX=off, same tokens and states); gpu_generate (device_ids_are_the_host_argmax: `generate --device
#      cuda` with one input — the session's greedy-id mode — and three, tokens equal to DBRMT_DEVICE_ARGMAX=off's and
#      packed = alone); gpu_serve (the server asks for ids only: its
#      greedy tokens come from the device, each request as it gets alone); `dbrmt selftest --quick` (its kernel table
#      includes argmax_rows_f32).
#   2. `dbrmt bench requests` decode on 1B-shaped random weights (vocabulary 128,256), T = 1024: 1/4/16/64 requests,
#      prompt 128, 64 new tokens, with the ids chosen on the device (default) and with DBRMT_DEVICE_ARGMAX=off (every
#      decode row's 128K logits copied to the host for its argmax, as before). Expected (before: 463 / 1,392 / 3,044
#      / 3,101 tokens/s): 16 requests ~4,500-5,500 tokens/s (>= 8x one is issue #14's target), 64 well above 16.
set -uo pipefail
R=$PWD
OUT=${OUT:-$R/device-argmax-out}
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
    note "$name FAILED (rc $?)"; grep -E "panicked|differs|FAIL|mismatch|left:|right:" -A2 "$OUT/t-$name.log" | head -12
  fi
}
gpu_test argmax_rows dbrmt-kernels__gpu_layer_ops 60 argmax_rows_matches_the_host
grep -E "argmax_rows_f32" "$OUT/t-argmax_rows.log" | head -8
gpu_test gpu_requests dbrmt-runtime__gpu_requests 120
grep -E "^shape .*device ids" "$OUT/t-gpu_requests.log"
gpu_test gpu_generate dbrmt-cli__gpu_generate 90
gpu_test gpu_serve dbrmt-cli__gpu_serve 90
if (cd /tmp && timeout 60 "$R/dist/dbrmt" selftest --quick > "$OUT/selftest.log" 2>&1); then
  note "selftest --quick: $(tail -1 "$OUT/selftest.log")"
else
  note "selftest --quick FAILED: $(tail -1 "$OUT/selftest.log")"; grep FAIL "$OUT/selftest.log" | head -5
fi
echo "### checks took $((SECONDS - t0)) s"

B=$OUT/requests.jsonl
: > "$B"
timeout 100 dist/dbrmt bench requests --requests 1,4,16,64 --tokens 128 --decode 64 --iters 2 --no-serial --out "$B" \
  2> "$OUT/b-decode.log"
note "bench decode, ids on the device, rc $?"
DBRMT_DEVICE_ARGMAX=off timeout 100 dist/dbrmt bench requests --requests 1,4,16,64 --tokens 128 --decode 64 --iters 2 \
  --no-serial --out "$B" 2> "$OUT/b-decode-host-argmax.log"
note "bench decode, DBRMT_DEVICE_ARGMAX=off, rc $?"
grep -h "bench:" "$OUT"/b-*.log

echo "===== decode, 1B shape (vocabulary 128,256), prompt 128 + 64 new tokens; $((SECONDS - t0)) s in all"
python3 - "$B" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
dec = [r for r in rows if r.get("mode") == "decode"]
def pick(n, argmax):
    return next((r for r in dec if r["requests"] == n and r.get("device_argmax", "on") == argmax), None)
one = {a: (pick(1, a) or {}).get("tokens_per_s") for a in ("on", "off")}
print(f'{"requests":>8} | {"device ids tok/s":>16} | {"x one":>6} | {"ms/step":>7} | {"host argmax tok/s":>17} | '
      f'{"x one":>6} | {"ms/step":>7} | gain')
for n in sorted({r["requests"] for r in dec}):
    cells = []
    for a in ("on", "off"):
        r = pick(n, a)
        if r is None:
            cells.append(f'{"-":>16} | {"-":>6} | {"-":>7}')
            continue
        x = f'{r["tokens_per_s"] / one[a]:.1f}x' if one[a] else "-"
        cells.append(f'{r["tokens_per_s"]:16.0f} | {x:>6} | {r["ms"] / max(r["steps"], 1):7.3f}')
    on, off = pick(n, "on"), pick(n, "off")
    gain = f'{on["tokens_per_s"] / off["tokens_per_s"]:.2f}x' if on and off else "-"
    print(f'{n:>8} | {cells[0]} | {cells[1]} | {gain}')
print("target (issue #14): 16 requests >= 8x one; prediction for device ids at 16: ~5,000 tokens/s")
for a in ("on", "off"):
    r = pick(16, a)
    if r:
        p = r.get("phase_ms") or {}
        print(f'16 requests, device_argmax {a}: phases ms: ' + ", ".join(f"{k} {v:.0f}" for k, v in p.items()))
PY
echo "===== summary"; printf '%s\n' "${summary[@]}"
