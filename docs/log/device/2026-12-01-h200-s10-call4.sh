#!/usr/bin/env bash
# Session 10 call 4: decode read v2 (branch read-decode-v2: the helper + one converter warp per 32-column stage).
# Its trace (both splits), its read checks, decode A/B against main's read cubin (DBRMT_CUBINS) and with the 3xTF32
# split; every GPU test and the selftest only if v2 decodes faster than main.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s10c4; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
timeout 90 dist/tests/dbrmt-kernels__gpu_armt --ignored > $W/armt.log 2>&1; rc=$?; mark "v2 gpu_armt rc $rc"
grep -E "test result|FAIL|panicked" $W/armt.log | head -5; if [ $rc -ne 0 ]; then grep -E "differ|mismatch" $W/armt.log | head; fi
timeout 60 tmp-device/trace_v2 --trace > $W/trace-v2.txt 2>&1; mark "trace rc $?"
grep -E "^\[trace\]|^ +(0|5|10|11) " $W/trace-v2.txt
for r in 1 2; do for v in main v2 v2-tf32x3; do
  unset DBRMT_CUBINS DBRMT_MEMORY
  [ $v = main ] && export DBRMT_CUBINS=$R/tmp-device/main
  [ $v = v2-tf32x3 ] && export DBRMT_MEMORY=tf32x3
  timeout 60 dist/dbrmt bench matrix --filter decode --out $W/m-$v.jsonl > $W/decode-$v-$r.log 2>&1
  grep -h "bench: " $W/decode-$v-$r.log | grep -v "on the GPU" | cut -c1-100 | sed "s/^/$v /" | tee -a $W/decode.txt
done; done
unset DBRMT_CUBINS DBRMT_MEMORY
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
for m in smollm2-135m llama-3.2-1b; do
  DBRMT_GRAPHS=off timeout 40 $NCU --clock-control none -k "regex:armt_read_fused" --launch-skip 200 --launch-count 2 \
    dist/dbrmt bench requests --model $m --requests 1 --tokens 4096 --decode 16 --no-serial --out /tmp/x.jsonl > $W/ncu-$m.txt 2>&1
  echo "$m read (v2): $(grep -hE "Duration" $W/ncu-$m.txt | tr -s ' ' | tr '\n' ' ')"
done
win=$(python3 - $W/decode.txt <<'PY'
import sys, re, collections
t = collections.defaultdict(list)
for l in open(sys.argv[1]):
    m = re.match(r"(\S+) bench: (\S+)\s+dbrmt\s+([\d.]+) ms/token", l)
    if m: t[(m.group(1), m.group(2))].append(float(m.group(3)))
ok = all(min(t[("v2", k)]) < 0.98 * min(t[("main", k)]) for (v, k) in t if v == "main")
print("yes" if ok and rc0 == 0 else "no") if False else print("yes" if ok else "no")
PY
)
mark "v2 faster on both rows: $win"
if [ "$win" = yes ] && [ $rc -eq 0 ]; then
  timeout 230 dist/run.sh gpu > $W/gputests.log 2>&1; mark "v2 gpu tests rc $?"
  grep -hE "test result|passed, |FAIL|panicked" $W/gputests.log | cut -c1-140 | tail -12
  timeout 100 dist/run.sh selftest > $W/selftest.log 2>&1; mark "v2 selftest rc $?"; grep -hE "passed, |FAIL" $W/selftest.log | tail -2
fi
(cd $W && tar czf $OUT/s10c4.tgz .); cat $W/marks.txt
