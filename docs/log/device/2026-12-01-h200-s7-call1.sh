#!/usr/bin/env bash
# session 7, device call 1: (1) main at dbea91e (the review commit that had not run on a GPU): the model-level GPU
# tests and `dbrmt selftest`; (2) SmolLM2-shape decode: wall tokens/s and ncu kernel durations of the same window,
# to tell whether its decode is launch-bound (host) or kernel-bound (GPU); (3) branch read-decode (6 stages):
# its pending script. Bundles carried as tmp-device/{main,rd}.tar.xz; everything into one tarball.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; s=(); W=/tmp/s7c1; rm -rf $W; mkdir -p $W
mark() { s+=("[$((SECONDS-T0))s] $1"); echo "### $1"; }
unpack() { rm -rf dist && python3 -c "import tarfile,sys; tarfile.open(sys.argv[1]).extractall()" "$1"; }
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.sm --format=csv,noheader
unpack tmp-device/main.tar.xz
for t in dbrmt-runtime__gpu_engine dbrmt-runtime__gpu_requests dbrmt-cli__gpu_generate dbrmt-cli__gpu_serve; do
  if timeout 90 dist/tests/$t --ignored --test-threads=1 > $W/t-$t.log 2>&1; then mark "$t ok $(grep -E '^test result' $W/t-$t.log | tail -1 | cut -c1-60)"; else mark "$t FAILED rc $?"; grep -E "panicked|differ|FAIL|mismatch" -A3 $W/t-$t.log | head -14; fi
done
(cd /tmp && timeout 100 $R/dist/dbrmt selftest > $W/selftest.log 2>&1) && mark "selftest $(tail -1 $W/selftest.log)" || { mark "selftest FAILED $(tail -1 $W/selftest.log)"; grep FAIL $W/selftest.log | head -8; }
for m in smollm2-135m llama-3.2-1b; do
  timeout 60 dist/dbrmt bench requests --model $m --requests 1 --tokens 4096 --decode 128 --no-serial --out $W/req-$m.jsonl 2> $W/b-$m.log; mark "decode $m rc $? $(grep -h 'bench:' $W/b-$m.log | tail -1 | cut -c1-150)"
done
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
timeout 150 $NCU --clock-control none --metrics gpu__time_duration.sum --launch-skip 3000 --launch-count 700 --csv \
  --log-file $W/ncu-smollm2.csv dist/dbrmt bench requests --model smollm2-135m --requests 1 --tokens 4096 --decode 64 --no-serial --out /tmp/x.jsonl > $W/ncu.log 2>&1; mark "ncu smollm2 rc $?"
python3 - $W/ncu-smollm2.csv <<'PY' | tee $W/ncu-smollm2.txt
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
h = rows[0]; rows = rows[1:]
ki, mi, vi, gi = (h.index(x) for x in ("Kernel Name", "Metric Name", "Metric Value", "Grid Size"))
ui = h.index("Metric Unit") if "Metric Unit" in h else None
t = collections.defaultdict(list); g = {}
for r in rows:
    if r[mi] != "gpu__time_duration.sum": continue
    v = float(r[vi].replace(",", "")); u = r[ui] if ui is not None else "ns"
    v = v / 1000 if u in ("ns", "nsecond") else (v if u in ("us", "usecond") else v * 1000)
    k = r[ki].split("(")[0][:52]; t[k].append(v); g[k] = r[gi]
n = sum(len(v) for v in t.values()); tot = sum(sum(v) for v in t.values())
print(f"===== ncu smollm2 decode window: {n} kernels, {tot:.0f} us; lm-head launches (tokens) = {len(t.get('gemm_sm90_nt_bf16_bf16_f32_bn256', []))}")
for k, v in sorted(t.items(), key=lambda x: -sum(x[1])): print(f"  {k:<52} {g[k]:<12} {len(v):4d} x {sum(v)/len(v):7.2f} = {sum(v):7.1f} us")
PY
unpack tmp-device/rd.tar.xz
OUT=$W/rd timeout 240 bash tmp-device/pending-read_decode.sh > $W/rd.log 2>&1; mark "read-decode rc $?"
sed -n '/===== fused read decode plan/,$p' $W/rd.log | head -40
(cd $W && tar czf $OUT/s7c1.tgz .)
echo "===== summary"; printf '%s\n' "${s[@]}"
