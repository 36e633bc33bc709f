#!/usr/bin/env bash
# Session 15 call 4: the review build (B = dist/: the narrow producer's stage issue folded into one chain of cases,
# the normed wait hoisted, the model's norm-or-normed-product helper; narrow entries' SASS changed, bits must not)
# against v10 as measured in call 3 (A = /tmp/A/dist). GEMM suite, engine, generation on B; decode rows alternately.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s15c4; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s15c4.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
mkdir -p /tmp/A && python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall('/tmp/A')"
for t in dbrmt-kernels__gpu_gemm dbrmt-runtime__gpu_engine dbrmt-cli__gpu_generate; do
  timeout 200 dist/tests/$t --ignored --test-threads=1 > $W/$t.log 2>&1; rc=$?
  mark "B $t rc $rc $(grep -h 'test result' $W/$t.log | tail -1 | cut -c1-50)"
  if [ $rc -ne 0 ]; then grep -E "FAIL|panicked" $W/$t.log | cut -c1-250 | head -8; fi
done
for r in 1 2 3; do for v in new old; do
  B=dist/dbrmt; [ $v = old ] && B=/tmp/A/dist/dbrmt
  timeout 100 $B bench matrix --filter decode --out $W/matrix-$v.jsonl > $W/matrix-decode-$v-$r.log 2>&1
  mark "decode $v rc $? $(grep -hE 'tokens/s|ms/token' $W/matrix-decode-$v-$r.log | grep dbrmt | cut -c8-90 | tr -s ' ' | tr '\n' ' ')"
done; done
finish
