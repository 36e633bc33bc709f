#!/usr/bin/env bash
# Session 12 call 6 (last): main's engine at the session's end (4f015ad: the fused q for d <= 1024, the row kernels
# v3, rms_norm as before with its new grouping checks). Every GPU test binary, the selftest, the 131K and decode rows.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s12c6; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s12c6.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
for t in $(ls dist/tests/ | grep gpu_ | grep -v bench); do
  timeout 150 dist/tests/$t --ignored --test-threads=1 > $W/$t.log 2>&1; rc=$?; mark "$t rc $rc $(grep -h 'test result' $W/$t.log | tail -1 | cut -c1-50)"
  [ $rc -ne 0 ] && grep -E "FAIL|panicked" $W/$t.log | cut -c1-220 | head -6
done
for r in 1 2; do for f in 160m-t512-131k 1b-t1024-131k decode; do
  timeout 100 dist/dbrmt bench matrix --filter $f --out $W/matrix.jsonl > $W/matrix-$f-$r.log 2>&1
  mark "matrix $f rc $? $(grep -h 'bench: ' $W/matrix-$f-$r.log | grep -v 'on the GPU' | cut -c8-90 | tr '\n' ' ')"
done; done
(cd /tmp && timeout 150 $R/dist/dbrmt selftest > $W/selftest.log 2>&1); mark "selftest rc $? $(grep -hE 'passed, ' $W/selftest.log | tail -1)"
grep -h FAIL $W/selftest.log | cut -c1-180 | head -4
finish
