#!/usr/bin/env bash
# Session 11 call 8 (last): the row kernels' decode paths as _few entries (the many-row entries as before the
# session). Checks and engine tests, the 131K rows against the row kernels before session 11 (tmp-device/old through
# DBRMT_CUBINS: many-row launches only — the old cubins have no _few entries), decode rows, the selftest.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s11c8; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s11c8.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall()"
for t in dbrmt-kernels__gpu_layer_ops dbrmt-runtime__gpu_engine dbrmt-runtime__gpu_requests; do
  timeout 150 dist/tests/$t --ignored --test-threads=1 > $W/$t.log 2>&1; rc=$?; mark "$t rc $rc $(grep -h 'test result' $W/$t.log | tail -1 | cut -c1-50)"
  if [ $rc -ne 0 ]; then grep -E "FAIL|panicked" $W/$t.log | cut -c1-220 | head -10; finish; fi
done
for r in 1 2; do for f in 160m-t512-131k 1b-t1024-131k; do for v in new old; do
  unset DBRMT_CUBINS; [ $v = old ] && export DBRMT_CUBINS=$R/tmp-device/old
  timeout 100 dist/dbrmt bench matrix --filter $f --out $W/matrix-$v.jsonl > $W/matrix-$f-$v-$r.log 2>&1
  mark "matrix $f $v rc $? $(grep -h 'bench: ' $W/matrix-$f-$v-$r.log | grep -v 'on the GPU' | cut -c8-90 | tr '\n' ' ')"
done; done; done
unset DBRMT_CUBINS
for r in 1 2; do
  timeout 30 dist/dbrmt bench matrix --filter decode --out $W/m.jsonl > $W/decode-$r.log 2>&1
  mark "decode rc $? $(grep -h 'bench: ' $W/decode-$r.log | grep -v 'on the GPU' | cut -c8-70 | tr '\n' ' ')"
done
(cd /tmp && timeout 150 $R/dist/dbrmt selftest > $W/selftest.log 2>&1); mark "selftest rc $? $(grep -hE 'passed, ' $W/selftest.log | tail -1)"
grep -h FAIL $W/selftest.log | cut -c1-180 | head -4
finish
