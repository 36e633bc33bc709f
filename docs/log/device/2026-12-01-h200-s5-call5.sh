#!/usr/bin/env bash
# session 5, device call 5: branch s5-c5 (s5-decode + argmax split + PDL + decode tiles v6): every GPU test, selftest;
# decode benches with each switch (PDL, decode tiles); the requests set; 131K prefill rows with PDL on/off; ncu of the
# same decode window as calls 2 and 4. Everything else into one tarball.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; s=(); W=/tmp/s5c5; rm -rf $W; mkdir -p $W
rm -rf dist && tar xzf tmp-device/dist.tgz
mark() { s+=("[$((SECONDS-T0))s] $1"); echo "### $1"; }
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.sm --format=csv,noheader
for t in dbrmt-kernels__gpu_gemm dbrmt-kernels__gpu_armt dbrmt-kernels__gpu_layer_ops dbrmt-kernels__gpu_poison dbrmt-runtime__gpu_engine dbrmt-runtime__gpu_requests dbrmt-cli__gpu_generate dbrmt-cli__gpu_serve; do
  if timeout 150 dist/tests/$t --ignored --test-threads=1 > $W/t-$t.log 2>&1; then mark "$t ok $(grep -E '^test result' $W/t-$t.log | tail -1 | cut -c1-60)"; else mark "$t FAILED rc $?"; grep -E "panicked|differ|FAIL|mismatch" -A3 $W/t-$t.log | head -14; fi
done
(cd /tmp && timeout 100 $R/dist/dbrmt selftest > $W/selftest.log 2>&1) && mark "selftest $(tail -1 $W/selftest.log)" || { mark "selftest FAILED $(tail -1 $W/selftest.log)"; grep FAIL $W/selftest.log | head -8; }
grep -E "BN \[|decode rows|column tiles|argmax" $W/selftest.log | head -12
B=$W/requests.jsonl
timeout 60 dist/dbrmt bench requests --requests 1 --tokens 4096 --decode 128 --no-serial --out $B 2> $W/b-1x4k.log; mark "1x4K+128 default rc $?"
DBRMT_PDL=off timeout 60 dist/dbrmt bench requests --requests 1 --tokens 4096 --decode 128 --no-serial --out $W/pdl-off.jsonl 2> $W/b-1x4k-pdl-off.log; mark "1x4K+128 PDL off rc $?"
DBRMT_DECODE_TILES=off timeout 60 dist/dbrmt bench requests --requests 1 --tokens 4096 --decode 128 --no-serial --out $W/off.jsonl 2> $W/b-1x4k-tiles-off.log; mark "1x4K+128 tiles off rc $?"
mkdir -p $W/bench $W/bench-pdl-off
timeout 240 dist/run.sh bench $W/bench requests > $W/b-requests-set.log 2>&1; mark "requests set rc $?"
for f in decode 1b-t1024-131k 160m-t512-131k; do
  BENCH_FILTER=$f timeout 60 dist/run.sh bench $W/bench matrix > $W/m-$f.log 2>&1; mark "matrix $f rc $? $(grep -E 'dbrmt' $W/m-$f.log | grep -v 'on the GPU' | sed 's/  */ /g' | tr '\n' '|' | cut -c1-300)"
  DBRMT_PDL=off BENCH_FILTER=$f timeout 60 dist/run.sh bench $W/bench-pdl-off matrix > $W/m-$f-pdl-off.log 2>&1; mark "matrix $f PDL off rc $? $(grep -E 'dbrmt' $W/m-$f-pdl-off.log | grep -v 'on the GPU' | sed 's/  */ /g' | tr '\n' '|' | cut -c1-300)"
done
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
timeout 120 $NCU --clock-control none --metrics gpu__time_duration.sum --launch-skip 4000 --launch-count 450 --csv \
  --log-file $W/ncu-decode.csv dist/dbrmt bench requests --requests 1 --tokens 4096 --decode 64 --no-serial --out /tmp/x.jsonl > $W/ncu.log 2>&1; mark "ncu rc $?"
echo "===== requests"; grep -h "bench: requests" $W/b-*.log | cut -c1-200
python3 - $W/ncu-decode.csv <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
h = rows[0]; rows = rows[1:]
ki, mi, vi, gi = (h.index(x) for x in ("Kernel Name", "Metric Name", "Metric Value", "Grid Size"))
t = collections.defaultdict(list); g = {}
for r in rows:
    if r[mi] != "gpu__time_duration.sum": continue
    v = float(r[vi].replace(",", "")) / 1000; k = r[ki].split("(")[0][:52]; t[k].append(v); g[k] = r[gi]
tot = sum(sum(v) for v in t.values())
print(f"===== ncu: {sum(len(v) for v in t.values())} kernels, {tot:.0f} us")
for k, v in sorted(t.items(), key=lambda x: -sum(x[1])): print(f"  {k:<52} {g[k]:<12} {len(v):4d} x {sum(v)/len(v):7.2f} = {sum(v):7.1f} us")
PY
(cd $W && tar czf $OUT/s5c5.tgz .)
echo "===== summary"; printf '%s\n' "${s[@]}"
