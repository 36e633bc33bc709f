#!/usr/bin/env bash
# Session 18 call 13 — PREPARED, NOT RUN: the fused write v7 (warp-specialised wgmma, `armt_write_fused_sm90_f32`,
# written in session 18, compiled, never run; branch write-fused / docs/log/patches/2026-12-02-s18-write-fused.patch;
# B = dist/ of that code). Its check (reference, split bitwise); on failure memcheck of it and stop. Then gpu_engine
# with DBRMT_WRITE_FUSED=sm90 (diagonal == sequential, golden cases); the 131K rows of the 1B and the 160M alternately
# sm90 / off (main's four launches); the 1B and 160M step profiles with sm90.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s18c13; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s18c13.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
timeout 120 dist/tests/dbrmt-kernels__gpu_armt armt_write_fused_sm90 --ignored --test-threads=1 --nocapture > $W/check.log 2>&1; rc=$?
mark "gpu_armt armt_write_fused_sm90 rc $rc $(grep -h 'test result' $W/check.log | tail -1 | cut -c1-50)"
grep -E "armt_write_fused_sm90|FAIL|panicked|rror" $W/check.log | cut -c1-220 | head -16
if [ $rc -ne 0 ]; then
  timeout 200 $CS --tool memcheck dist/tests/dbrmt-kernels__gpu_armt armt_write_fused_sm90 --ignored --test-threads=1 > $W/memcheck.log 2>&1
  mark "memcheck rc $? $(grep -hE 'ERROR SUMMARY' $W/memcheck.log)"
  grep -E "Invalid|at 0x|by thread" $W/memcheck.log | head -12
  finish
fi
DBRMT_WRITE_FUSED=sm90 timeout 200 dist/tests/dbrmt-runtime__gpu_engine --ignored --test-threads=1 > $W/engine.log 2>&1
mark "gpu_engine (sm90) rc $? $(grep -h 'test result' $W/engine.log | tail -1 | cut -c1-50)"
for r in 1 2; do for v in sm90 off; do
  timeout 100 env DBRMT_WRITE_FUSED=$v dist/dbrmt bench matrix --filter 1b-t1024-131k --out $W/m1b-$v.jsonl > $W/m1b-$v-$r.log 2>&1
  mark "1b 131k $v rc $? $(grep -hE 'dbrmt-diagonal' $W/m1b-$v-$r.log | cut -c8-90 | tr -s ' ')"
  timeout 100 env DBRMT_WRITE_FUSED=$v dist/dbrmt bench matrix --filter 160m-t512-131k --out $W/m160-$v.jsonl > $W/m160-$v-$r.log 2>&1
  mark "160m 131k $v rc $? $(grep -hE 'dbrmt-diagonal' $W/m160-$v-$r.log | cut -c8-90 | tr -s ' ')"
done; done
for m in "llama-3.2-1b 1024" "llama-160m 512"; do set -- $m
  DBRMT_WRITE_FUSED=sm90 timeout 90 dist/dbrmt bench profile --model $1 --segment $2 --tokens 131072 --out $W/p-$1.jsonl > $W/p-$1.log 2>&1
  mark "profile $1 rc $? $(grep -hE 'write: fused' $W/p-$1.log | tr -s ' ')"
done
finish
