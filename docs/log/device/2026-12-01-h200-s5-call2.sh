#!/usr/bin/env bash
# session 5, device call 2: after the logits-copy fix: gpu_requests, gpu_serve; many-requests throughput; where a decode
# token's time goes (ncu kernel durations of ~2 tokens vs the wall time per token)
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; s=()
mark() { s+=("[$((SECONDS-T0))s] $1"); echo "### $1"; }
for t in dbrmt-runtime__gpu_requests dbrmt-cli__gpu_serve dbrmt-cli__gpu_generate; do
  if timeout 150 dist/tests/$t --ignored --test-threads=1 > /tmp/t.log 2>&1; then mark "$t ok $(grep -E '^test result' /tmp/t.log | tail -1)"; else mark "$t FAILED rc $?"; grep -E "panicked|differs|FAIL|mismatch" -A3 /tmp/t.log | head -12; fi
  echo "===== $t" >> $OUT/tests.log; cat /tmp/t.log >> $OUT/tests.log
done
B=$OUT/requests.jsonl; : > $B
timeout 90 dist/dbrmt bench requests --requests 16 --tokens 8192 --iters 3 --out $B 2> $OUT/b-16x8k.log; mark "16x8K rc $?"
timeout 60 dist/dbrmt bench requests --requests 4 --tokens 32768 --iters 3 --out $B 2> $OUT/b-4x32k.log; mark "4x32K rc $?"
timeout 60 dist/dbrmt bench requests --requests 16 --tokens 8192 --iters 3 --keep-states --out $B 2> $OUT/b-16x8k-states.log; mark "16x8K states rc $?"
timeout 120 dist/dbrmt bench requests --requests 1,4,16,64 --tokens 128 --decode 64 --iters 2 --no-serial --out $B 2> $OUT/b-decode.log; mark "decode rc $?"
DBRMT_MERGE_ROWS=off timeout 60 dist/dbrmt bench requests --requests 16 --tokens 128 --decode 64 --no-serial --out $B 2> $OUT/b-decode-off.log; mark "decode merge off rc $?"
timeout 60 dist/dbrmt bench requests --requests 1 --tokens 4096 --decode 128 --no-serial --out $B 2> $OUT/b-decode-4k.log; mark "decode 1 after 4K rc $?"
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
timeout 150 $NCU --clock-control none --metrics gpu__time_duration.sum --launch-skip 4000 --launch-count 450 --csv \
  --log-file $OUT/ncu-decode.csv dist/dbrmt bench requests --requests 1 --tokens 4096 --decode 64 --no-serial --out /tmp/x.jsonl > $OUT/ncu.log 2>&1
mark "ncu decode rc $? ($NCU)"
echo "===== requests"; grep -h "bench:" $OUT/b-*.log | cut -c1-260
python3 - $OUT/ncu-decode.csv <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
h = rows[0]; rows = rows[1:]
ki, mi, vi = h.index("Kernel Name"), h.index("Metric Name"), h.index("Metric Value")
t = collections.defaultdict(lambda: [0, 0.0])
for r in rows:
    if r[mi] != "gpu__time_duration.sum": continue
    v = float(r[vi].replace(",", "")); u = r[h.index("Metric Unit")] if "Metric Unit" in h else "ns"
    v = v / 1000 if u in ("ns", "nsecond") else (v if u in ("us", "usecond") else v * 1000)
    k = r[ki].split("(")[0][:60]; t[k][0] += 1; t[k][1] += v
tot = sum(x[1] for x in t.values()); n = sum(x[0] for x in t.values())
print(f"===== ncu: {n} kernels, {tot:.0f} us of kernel time")
for k, (c, us) in sorted(t.items(), key=lambda x: -x[1][1]): print(f"  {k:<60} {c:5d} {us:9.1f} us  {us/c:7.2f} us each")
PY
echo "===== summary"; printf '%s\n' "${s[@]}"
