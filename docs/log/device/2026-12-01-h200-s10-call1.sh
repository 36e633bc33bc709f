#!/usr/bin/env bash
# Session 10 call 1 (prepared in session 9 as pending-next.sh; run as it is): ~5 min on an H200.
#   Carry two bundles (`cargo xtask bundle --gpu` with NVCC set; it now fails without nvcc): tmp-device/A.tar.xz of main,
#   tmp-device/B.tar.xz of branch `read-decode-wg1` (the fused read's decode helper: warpgroup 1 makes warpgroup 0's
#   fragments and denominators in a 32-column tile of <= 64 rows; docs/log/armt_read_fused_sm90.md §10). The working
#   tree (~52 MB with the trained memory) leaves room for two bundles of ~4 MB, not three.
#   1. B's read checks first (stop if they fail: they hold the bitwise width and decode-row checks the helper must pass),
#      then decode A/B twice, ncu durations of B's read, then every GPU test and the selftest on B. Merge B if green
#      and faster (predicted: SmolLM2's decode read ~11 -> ~6 us, decode +8-10%; 1B +5%).
#   2. Where the prefill read's 3,000 cycles a k-block go (1B step: 0.438 ms against ~1,024 cycles of tensor work a
#      k-block): ncu's source counters (stall sampling per SASS instruction) on one prefill launch, the top lines.
set -uo pipefail
OUT=${OUT:-$PWD/pending-out}; mkdir -p "$OUT"; export DBRMT_REPO_ROOT=$PWD
W=$OUT; T0=$(date +%s)
mark() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/marks.txt; }
python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall('A')"
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
A=A/dist/dbrmt; B=dist/dbrmt
timeout 90 dist/tests/dbrmt-kernels__gpu_armt --ignored > $W/armt.log 2>&1; rc=$?; mark "B gpu_armt rc $rc"
if [ $rc -ne 0 ]; then grep -E "FAIL|panicked|differ|error" $W/armt.log | cut -c1-220 | head -30; exit 1; fi
for r in 1 2; do
  for v in A B; do bin=${!v}
    timeout 60 $bin bench matrix --filter decode --out $W/m-$v.jsonl > $W/decode-$v-$r.log 2>&1; mark "decode $v $r rc $?"
  done
done
echo "===== decode (A main, B decode helper)"; for v in A B; do grep -h "bench: " $W/decode-$v-*.log | grep -v "on the GPU" | sed "s/^/$v /" | cut -c1-100; done
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
for m in smollm2-135m llama-3.2-1b; do
  DBRMT_GRAPHS=off timeout 40 $NCU --clock-control none -k "regex:armt_read_fused" --launch-skip 200 --launch-count 2 \
    $B bench requests --model $m --requests 1 --tokens 4096 --decode 16 --no-serial --out /tmp/x.jsonl > $W/ncu-$m.txt 2>&1
  echo "$m read (B): $(grep -hE "Duration" $W/ncu-$m.txt | tr -s ' ' | tr '\n' ' ')"
done
timeout 60 $NCU --clock-control none --set full --import-source no -k "regex:armt_read_fused" --launch-skip 20 --launch-count 1 \
  -o $W/read-prefill $B bench profile --model llama-3.2-1b --segment 1024 --tokens 16384 --out /tmp/p.jsonl > /dev/null 2>&1
timeout 60 $NCU -i $W/read-prefill.ncu-rep --page source --csv --print-source sass > $W/read-prefill-sass.csv 2>&1; mark "ncu prefill source rc $?"
python3 - $W/read-prefill-sass.csv <<'PY' || true
import csv, sys
rows = list(csv.reader(open(sys.argv[1], errors="replace")))
head = next((i for i, r in enumerate(rows) if any("Source" in c for c in r)), None)
if head is None: print("no source table"); sys.exit()
h = rows[head]; col = lambda name: next((i for i, c in enumerate(h) if name in c), None)
src, samp = col("Source"), col("Warp Stall Sampling (All")
body = [r for r in rows[head + 1:] if len(r) == len(h)]
body.sort(key=lambda r: -float((r[samp] or "0").replace(",", "")) if samp is not None else 0)
for r in body[:25]: print(r[samp] if samp is not None else "?", r[src][:110])
PY
timeout 200 dist/run.sh gpu > $W/gputests.log 2>&1; mark "B gpu tests rc $?"
grep -hE "test result|passed, |FAIL|panicked" $W/gputests.log | cut -c1-140 | tail -12
timeout 100 dist/run.sh selftest > $W/selftest.log 2>&1; mark "B selftest rc $?"
grep -hE "passed, |FAIL" $W/selftest.log | tail -3
cat $W/marks.txt
