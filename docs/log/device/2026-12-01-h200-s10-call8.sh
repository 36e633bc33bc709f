#!/usr/bin/env bash
# Session 10 call 8 (last): main with the one-row decode features: read checks, decode against the read before it
# (DBRMT_CUBINS), gpu_engine (decode == prefill, graphs, diagonal == sequential at the 1B shape) and the selftest.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s10c8; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall()"
timeout 90 dist/tests/dbrmt-kernels__gpu_armt --ignored > $W/armt.log 2>&1; rc=$?; mark "gpu_armt rc $rc $(grep -h 'test result' $W/armt.log | cut -c1-40)"
[ $rc -ne 0 ] && { grep -E "FAIL|panicked|differ" $W/armt.log | head; exit 1; }
(cd /tmp && timeout 110 $R/dist/dbrmt selftest > $W/selftest.log 2>&1); mark "selftest rc $? $(grep -hE 'passed, ' $W/selftest.log | tail -1)"
grep -h FAIL $W/selftest.log | cut -c1-160 | head -4
for r in 1 2; do for v in before main; do
  unset DBRMT_CUBINS; [ $v = before ] && export DBRMT_CUBINS=$R/tmp-device/before
  timeout 30 dist/dbrmt bench matrix --filter decode --out $W/m-$v.jsonl > $W/decode-$v-$r.log 2>&1
  grep -h "bench: " $W/decode-$v-$r.log | grep -v "on the GPU" | cut -c1-100 | sed "s/^/$v /"
done; done
unset DBRMT_CUBINS
timeout 120 dist/tests/dbrmt-runtime__gpu_engine --ignored --test-threads=1 > $W/engine.log 2>&1; mark "gpu_engine rc $? $(grep -h 'test result' $W/engine.log | cut -c1-50)"
(cd $W && tar czf $OUT/s10c8.tgz .); cat $W/marks.txt
