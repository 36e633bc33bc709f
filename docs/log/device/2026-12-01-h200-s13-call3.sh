#!/usr/bin/env bash
# Session 13 call 3: the bf16 mirror of h (GEMM v7: the down projection's epilogue writes hidden_bf16; the read's and
# the write's to_bf16 launches go). B = dist/ (branch h-mirror), A = /tmp/A/dist (main). The mirror checks, every
# engine test (decode == prefill, diagonal == sequential, graphs), profiles, 131K and decode rows alternately, selftest.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s13c3; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s13c3.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
mkdir -p /tmp/A && python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall('/tmp/A')"
timeout 120 dist/tests/dbrmt-kernels__gpu_gemm --ignored --test-threads=1 mirror > $W/gemm-mirror.log 2>&1; rc=$?
mark "gpu_gemm mirror rc $rc $(grep -h 'test result' $W/gemm-mirror.log | tail -1 | cut -c1-50)"
grep -hE "mirror" $W/gemm-mirror.log | grep -E "rel|FAIL" | cut -c1-200 | head -6
if [ $rc -ne 0 ]; then finish; fi
for t in dbrmt-runtime__gpu_engine dbrmt-runtime__gpu_requests dbrmt-cli__gpu_generate dbrmt-kernels__gpu_armt; do
  timeout 150 dist/tests/$t --ignored --test-threads=1 > $W/$t.log 2>&1; rc=$?; mark "$t rc $rc $(grep -h 'test result' $W/$t.log | tail -1 | cut -c1-50)"
  if [ $rc -ne 0 ]; then grep -E "FAIL|panicked" $W/$t.log | cut -c1-220 | head -10; finish; fi
done
for m in "llama-160m 512" "llama-3.2-1b 1024"; do set -- $m
  timeout 90 dist/dbrmt bench profile --model $1 --segment $2 --tokens 131072 --out $W/profile-new.jsonl > $W/profile-$1-new.log 2>&1
  mark "profile $1 new rc $? $(grep -hE 'cells, ' $W/profile-$1-new.log | head -1 | cut -c8-100)"
done
for r in 1 2; do for f in 160m-t512-131k 1b-t1024-131k decode; do for v in new old; do
  B=dist/dbrmt; [ $v = old ] && B=/tmp/A/dist/dbrmt
  timeout 100 $B bench matrix --filter $f --out $W/matrix-$v.jsonl > $W/matrix-$f-$v-$r.log 2>&1
  mark "matrix $f $v rc $? $(grep -hE 'dbrmt-diagonal|ms/token' $W/matrix-$f-$v-$r.log | cut -c8-80 | tr -s ' ' | tr '\n' ' ')"
done; done; done
(cd /tmp && timeout 200 $R/dist/dbrmt selftest > $W/selftest.log 2>&1); mark "selftest rc $? $(grep -hE 'passed, ' $W/selftest.log | tail -1)"
grep -h FAIL $W/selftest.log | cut -c1-180 | head -4
timeout 200 dist/tests/dbrmt-cli__gpu_serve --ignored --test-threads=1 > $W/gpu_serve.log 2>&1; mark "gpu_serve rc $? $(grep -h 'test result' $W/gpu_serve.log | tail -1 | cut -c1-50)"
finish
