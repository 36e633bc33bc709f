#!/usr/bin/env bash
# Session 13 call 4: rms_norm's register-cached entry for many rows of d > 768 (B = dist/, branch norm-cached) against
# main (A = /tmp/A/dist: the h mirror). The layer ops (norm checks), poison and engine tests on B; gpu_layer_ops and
# gpu_poison on A too (not run on main's mirror engine yet); profiles and 131K 1B rows alternately; decode rows.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s13c4; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s13c4.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
mkdir -p /tmp/A && python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall('/tmp/A')"
for t in dbrmt-kernels__gpu_layer_ops dbrmt-kernels__gpu_poison; do
  timeout 150 /tmp/A/dist/tests/$t --ignored --test-threads=1 > $W/A-$t.log 2>&1; rc=$?; mark "A $t rc $rc $(grep -h 'test result' $W/A-$t.log | tail -1 | cut -c1-50)"
done
for t in dbrmt-kernels__gpu_layer_ops dbrmt-kernels__gpu_poison dbrmt-runtime__gpu_engine dbrmt-runtime__gpu_requests; do
  timeout 150 dist/tests/$t --ignored --test-threads=1 > $W/$t.log 2>&1; rc=$?; mark "B $t rc $rc $(grep -h 'test result' $W/$t.log | tail -1 | cut -c1-50)"
  if [ $rc -ne 0 ]; then grep -E "FAIL|panicked" $W/$t.log | cut -c1-220 | head -10; finish; fi
done
for v in new old; do B=dist/dbrmt; [ $v = old ] && B=/tmp/A/dist/dbrmt
  timeout 90 $B bench profile --model llama-3.2-1b --segment 1024 --tokens 131072 --out $W/profile-$v.jsonl > $W/profile-1b-$v.log 2>&1
  mark "profile 1b $v rc $? $(grep -hE 'cells, ' $W/profile-1b-$v.log | head -1 | cut -c8-100) $(grep -h rms_norm $W/profile-1b-$v.log)"
done
for r in 1 2; do for f in 1b-t1024-131k decode; do for v in new old; do
  B=dist/dbrmt; [ $v = old ] && B=/tmp/A/dist/dbrmt
  timeout 100 $B bench matrix --filter $f --out $W/matrix-$v.jsonl > $W/matrix-$f-$v-$r.log 2>&1
  mark "matrix $f $v rc $? $(grep -hE 'dbrmt-diagonal|ms/token' $W/matrix-$f-$v-$r.log | cut -c8-80 | tr -s ' ' | tr '\n' ' ')"
done; done; done
finish
