#!/usr/bin/env bash
# Session 12 call 7: rms_norm v4d: many-row launches of 128·k <= 768 columns as a warp per row that loads four columns
# a lane per 128 (one round of 16-byte loads) and computes the block per row's own sums (the same bits). New bundle
# (dist/) against the engine before it (A = 90cf620, /tmp/A/dist): checks, engine tests, profiles, 131K and decode rows.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s12c7; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s12c7.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
mkdir -p /tmp/A && python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall('/tmp/A')"
for t in dbrmt-kernels__gpu_layer_ops dbrmt-runtime__gpu_engine dbrmt-runtime__gpu_requests; do
  timeout 150 dist/tests/$t --ignored --test-threads=1 > $W/$t.log 2>&1; rc=$?; mark "$t rc $rc $(grep -h 'test result' $W/$t.log | tail -1 | cut -c1-50)"
  if [ $rc -ne 0 ]; then grep -E "FAIL|panicked" $W/$t.log | cut -c1-220 | head -10; finish; fi
done
for v in new old; do B=dist/dbrmt; [ $v = old ] && B=/tmp/A/dist/dbrmt
  timeout 90 $B bench profile --model llama-160m --segment 512 --tokens 131072 --out $W/profile-$v.jsonl > $W/profile-160m-$v.log 2>&1
  mark "profile 160m $v rc $? $(grep -hE 'cells, ' $W/profile-160m-$v.log | head -1 | cut -c8-110) $(grep -h rms_norm $W/profile-160m-$v.log)"
done
for r in 1 2; do for f in 160m-t512-131k decode; do for v in new old; do
  B=dist/dbrmt; [ $v = old ] && B=/tmp/A/dist/dbrmt
  timeout 100 $B bench matrix --filter $f --out $W/matrix-$v.jsonl > $W/matrix-$f-$v-$r.log 2>&1
  mark "matrix $f $v rc $? $(grep -h 'bench: ' $W/matrix-$f-$v-$r.log | grep -v 'on the GPU' | cut -c8-90 | tr '\n' ' ')"
done; done; done
timeout 100 dist/dbrmt bench matrix --filter 1b-t1024-131k --out $W/matrix-new.jsonl > $W/matrix-1b.log 2>&1
mark "matrix 1b new rc $? $(grep -h 'bench: ' $W/matrix-1b.log | grep -v 'on the GPU' | cut -c8-90 | tr '\n' ' ')"
(cd /tmp && timeout 150 $R/dist/dbrmt selftest > $W/selftest.log 2>&1); mark "selftest rc $? $(grep -hE 'passed, ' $W/selftest.log | tail -1)"
grep -h FAIL $W/selftest.log | cut -c1-180 | head -4
finish
