#!/usr/bin/env bash
# Session 11 call 3: 7f10c3f = the pre-split read + decode read v6 (two k-blocks' MMAs in flight for a one-row
# 32-column tile, its A row in shared memory). Checks first (stop on failure), the engine tests, then decode rows
# with DBRMT_STATE_SPLIT on (v6 + pre-split) and off (v6 + converters), three times each, then the selftest.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s11c3; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s11c3.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall()"
timeout 120 dist/tests/dbrmt-kernels__gpu_armt --ignored > $W/armt.log 2>&1; rc=$?; mark "gpu_armt rc $rc $(grep -h 'test result' $W/armt.log | cut -c1-40)"
if [ $rc -ne 0 ]; then grep -E "FAIL|panicked" $W/armt.log | cut -c1-220 | head -20; finish; fi
timeout 150 dist/tests/dbrmt-runtime__gpu_engine --ignored --test-threads=1 > $W/engine.log 2>&1; mark "gpu_engine rc $? $(grep -h 'test result' $W/engine.log | cut -c1-50)"
grep -E "FAILED|panicked" $W/engine.log | cut -c1-200 | head -6
timeout 120 dist/tests/dbrmt-runtime__gpu_requests --ignored --test-threads=1 > $W/requests.log 2>&1; mark "gpu_requests rc $? $(grep -h 'test result' $W/requests.log | cut -c1-50)"
for r in 1 2 3; do for v in on off; do
  DBRMT_STATE_SPLIT=$v timeout 30 dist/dbrmt bench matrix --filter decode --out $W/m-$v.jsonl > $W/decode-$v-$r.log 2>&1
  mark "decode $v rc $? $(grep -h 'bench: ' $W/decode-$v-$r.log | grep -v 'on the GPU' | cut -c8-70 | tr '\n' ' ')"
done; done
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
for v in on off; do
  DBRMT_STATE_SPLIT=$v DBRMT_GRAPHS=off timeout 90 $NCU --clock-control none -k "regex:armt_read_fused" --launch-skip 200 --launch-count 5 \
    --metrics gpu__time_duration.sum dist/dbrmt bench requests --model smollm2-135m --requests 1 --tokens 4096 --decode 16 --no-serial --out /tmp/x.jsonl > $W/ncu-$v.log 2>&1
  mark "ncu read smollm2 $v rc $? $(grep -E 'gpu__time_duration' $W/ncu-$v.log | awk '{print $NF}' | tr '\n' ' ')"
done
(cd /tmp && timeout 150 $R/dist/dbrmt selftest > $W/selftest.log 2>&1); mark "selftest rc $? $(grep -hE 'passed, ' $W/selftest.log | tail -1)"
grep -h FAIL $W/selftest.log | cut -c1-180 | head -4
finish
