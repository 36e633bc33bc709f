#!/usr/bin/env bash
# Session 11 call 2: the pre-split read (b43da5a: armt_state_split after every write/upload, the _split read entries,
# no converter warps). Its checks first (stop on failure), the engine tests (decode == prefill, graphs, diagonal ==
# sequential at the 1B shape, packed requests), then speed with DBRMT_STATE_SPLIT on and off in one binary: decode
# rows, the 131K rows, the step profiles; the selftest last.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s11c2; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s11c2.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall()"
timeout 120 dist/tests/dbrmt-kernels__gpu_armt --ignored > $W/armt.log 2>&1; rc=$?; mark "gpu_armt rc $rc $(grep -h 'test result' $W/armt.log | cut -c1-40)"
if [ $rc -ne 0 ]; then grep -E "FAIL|panicked" $W/armt.log | cut -c1-220 | head -20; finish; fi
timeout 150 dist/tests/dbrmt-runtime__gpu_engine --ignored --test-threads=1 > $W/engine.log 2>&1; mark "gpu_engine rc $? $(grep -h 'test result' $W/engine.log | cut -c1-50)"
grep -E "FAILED|panicked" $W/engine.log | cut -c1-200 | head -6
timeout 120 dist/tests/dbrmt-runtime__gpu_requests --ignored --test-threads=1 > $W/requests.log 2>&1; mark "gpu_requests rc $? $(grep -h 'test result' $W/requests.log | cut -c1-50)"
grep -E "FAILED|panicked" $W/requests.log | cut -c1-200 | head -6
for r in 1 2; do for v in on off; do
  DBRMT_STATE_SPLIT=$v timeout 30 dist/dbrmt bench matrix --filter decode --out $W/m-$v.jsonl > $W/decode-$v-$r.log 2>&1
  mark "decode $v rc $? $(grep -h 'bench: ' $W/decode-$v-$r.log | grep -v 'on the GPU' | cut -c8-70 | tr '\n' ' ')"
done; done
for f in 1b-t1024-131k 160m-t512-131k; do for v in on off; do
  DBRMT_STATE_SPLIT=$v timeout 100 dist/dbrmt bench matrix --filter $f --out $W/matrix-$v.jsonl > $W/matrix-$f-$v.log 2>&1
  mark "matrix $f $v rc $? $(grep -h 'bench: ' $W/matrix-$f-$v.log | grep -v 'on the GPU' | cut -c8-90 | tr '\n' ' ')"
done; done
for m in "llama-3.2-1b 1024" "llama-160m 512"; do set -- $m; for v in on off; do
  DBRMT_STATE_SPLIT=$v timeout 90 dist/dbrmt bench profile --model $1 --segment $2 --tokens 32768 --out $W/profile-$1-$v.jsonl > $W/profile-$1-$v.log 2>&1
  mark "profile $1 $v rc $? $(grep -hE 'ms per step|per step' $W/profile-$1-$v.log | head -1 | cut -c1-80)"
  grep -hE "read|write: split" $W/profile-$1-$v.log | head -6
done; done
(cd /tmp && timeout 150 $R/dist/dbrmt selftest > $W/selftest.log 2>&1); mark "selftest rc $? $(grep -hE 'passed, ' $W/selftest.log | tail -1)"
grep -h FAIL $W/selftest.log | cut -c1-180 | head -4
finish
