#!/usr/bin/env bash
# Session 19 call 8: the z update folded into the update-split launch as well (diagonal steps; sequential steps keep
# the separate split and z update). B = dist/ of branch write-prep-fused. gpu_engine (diagonal, fused path, == sequential,
# on the separate one, bitwise; decode == prefill; golden cases) and the update-split check; then the 131K rows
# on / DBRMT_SPLIT_IN_UPDATE=off three times each, alternating; step profiles (on).
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s19c8; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s19c8.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
timeout 100 dist/tests/dbrmt-kernels__gpu_armt split_of_the_new --ignored --test-threads=1 > $W/check.log 2>&1
mark "update split check rc $? $(grep -h 'test result' $W/check.log | tail -1 | cut -c1-50)"
timeout 200 dist/tests/dbrmt-runtime__gpu_engine --ignored --test-threads=1 > $W/engine.log 2>&1; rc=$?
mark "gpu_engine rc $rc $(grep -h 'test result' $W/engine.log | tail -1 | cut -c1-50)"
[ $rc -ne 0 ] && { grep -E "FAIL|panicked" $W/engine.log | cut -c1-250 | head -8; finish; }
for m in "llama-3.2-1b 1024" "llama-160m 512"; do set -- $m
  timeout 90 dist/dbrmt bench profile --model $1 --segment $2 --tokens 131072 --out $W/p-$1.jsonl > $W/p-$1.log 2>&1
  mark "profile $1 rc $? $(grep -hE 'write: |steps of' $W/p-$1.log | tr -s ' ' | cut -c1-70 | tr '\n' ';')"
done
for r in 1 2 3; do for v in on off; do
  timeout 100 env DBRMT_SPLIT_IN_UPDATE=$v dist/dbrmt bench matrix --filter 1b-t1024-131k --out $W/m1b-$v.jsonl > $W/m1b-$v-$r.log 2>&1
  mark "1b 131k $v rc $? $(grep -hE 'dbrmt-' $W/m1b-$v-$r.log | cut -c24-70 | tr -s ' ' | tr '\n' ';')"
  timeout 100 env DBRMT_SPLIT_IN_UPDATE=$v dist/dbrmt bench matrix --filter 160m-t512-131k --out $W/m160-$v.jsonl > $W/m160-$v-$r.log 2>&1
  mark "160m 131k $v rc $? $(grep -hE 'dbrmt-' $W/m160-$v-$r.log | cut -c24-70 | tr -s ' ' | tr '\n' ';')"
done; done
finish
