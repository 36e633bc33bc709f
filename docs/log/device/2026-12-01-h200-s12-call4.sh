#!/usr/bin/env bash
# Session 12 call 4: rms_norm v4b (a warp per row only for rows of at most 768 columns, in every launch; wider rows
# keep the block per row and its bits: SASS identical; call 3's warp per row at 2,048 columns was slower) and dpfp's
# index arithmetic in 32 bits where a span fits (same bits).
# Checks and engine tests on the new bundle (B = dist/), the step profiles at 131K, the 131K rows and decode against
# the engine before it (A = 45e6c92's bundle, /tmp/A/dist), the selftest.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s12c4; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s12c4.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
mkdir -p /tmp/A && python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall('/tmp/A')"
for t in dbrmt-kernels__gpu_layer_ops dbrmt-runtime__gpu_engine dbrmt-runtime__gpu_requests; do
  timeout 150 dist/tests/$t --ignored --test-threads=1 > $W/$t.log 2>&1; rc=$?; mark "$t rc $rc $(grep -h 'test result' $W/$t.log | tail -1 | cut -c1-50)"
  if [ $rc -ne 0 ]; then grep -E "FAIL|panicked" $W/$t.log | cut -c1-220 | head -10; finish; fi
done
for m in "llama-3.2-1b 1024" "llama-160m 512"; do set -- $m; for v in new old; do
  B=dist/dbrmt; [ $v = old ] && B=/tmp/A/dist/dbrmt
  timeout 90 $B bench profile --model $1 --segment $2 --tokens 131072 --out $W/profile-$1-$v.jsonl > $W/profile-$1-$v.log 2>&1
  mark "profile $1 $v rc $? $(grep -hE 'cells, ' $W/profile-$1-$v.log | head -1 | cut -c8-110)"
  grep -hE "rms_norm|dpfp" $W/profile-$1-$v.log | head -2
done; done
for r in 1 2; do for f in 160m-t512-131k 1b-t1024-131k; do for v in new old; do
  B=dist/dbrmt; [ $v = old ] && B=/tmp/A/dist/dbrmt
  timeout 100 $B bench matrix --filter $f --out $W/matrix-$v.jsonl > $W/matrix-$f-$v-$r.log 2>&1
  mark "matrix $f $v rc $? $(grep -h 'bench: ' $W/matrix-$f-$v-$r.log | grep -v 'on the GPU' | cut -c8-90 | tr '\n' ' ')"
done; done; done
for r in 1 2; do for v in new old; do
  B=dist/dbrmt; [ $v = old ] && B=/tmp/A/dist/dbrmt
  timeout 30 $B bench matrix --filter decode --out $W/m.jsonl > $W/decode-$v-$r.log 2>&1
  mark "decode $v rc $? $(grep -h 'bench: ' $W/decode-$v-$r.log | grep -v 'on the GPU' | cut -c8-70 | tr '\n' ' ')"
done; done
(cd /tmp && timeout 150 $R/dist/dbrmt selftest > $W/selftest.log 2>&1); mark "selftest rc $? $(grep -hE 'passed, ' $W/selftest.log | tail -1)"
grep -h FAIL $W/selftest.log | cut -c1-180 | head -4
finish
