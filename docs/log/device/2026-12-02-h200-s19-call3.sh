#!/usr/bin/env bash
# Session 19 call 3: the prefill read with the features made once per row tile (branch read-features:
# armt_read_fused_sm90_features_f32 + armt_read_fused_sm90_split_pf_f32; docs/log/armt_read_fused_sm90.md §15).
# B = dist/ of the branch. Its checks (bitwise against the pre-split read, reference, grouping, row position) and the
# pre-split suite; on failure memcheck of it and stop. gpu_engine (diagonal == sequential, decode == prefill, golden
# cases) and gpu_requests; the 131K rows on / DBRMT_READ_FEATURES=off twice; step profiles both ways; ncu durations of
# the two launches in a 1B 16K prefill; memcheck + racecheck of the check.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s19c3; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s19c3.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
timeout 150 dist/tests/dbrmt-kernels__gpu_armt armt_read_fused_sm90 --ignored --test-threads=1 --nocapture > $W/read.log 2>&1; rc=$?
mark "gpu_armt armt_read_fused_sm90 rc $rc $(grep -h 'test result' $W/read.log | tail -1 | cut -c1-50)"
grep -E "features once|FAIL|panicked|rror" $W/read.log | cut -c1-240 | head -16
if [ $rc -ne 0 ]; then
  timeout 200 $CS --tool memcheck dist/tests/dbrmt-kernels__gpu_armt features_once --ignored --test-threads=1 > $W/memcheck.log 2>&1
  mark "memcheck rc $? $(grep -hE 'ERROR SUMMARY' $W/memcheck.log)"
  grep -E "Invalid|at 0x|by thread|rror" $W/memcheck.log | head -12
  finish
fi
for t in dbrmt-runtime__gpu_engine dbrmt-runtime__gpu_requests; do
  timeout 200 dist/tests/$t --ignored --test-threads=1 > $W/$t.log 2>&1; rc=$?
  mark "$t rc $rc $(grep -h 'test result' $W/$t.log | tail -1 | cut -c1-50)"
  [ $rc -ne 0 ] && grep -E "FAIL|panicked" $W/$t.log | cut -c1-250 | head -8
done
for r in 1 2; do for v in on off; do
  timeout 100 env DBRMT_READ_FEATURES=$v dist/dbrmt bench matrix --filter 1b-t1024-131k --out $W/m1b-$v.jsonl > $W/m1b-$v-$r.log 2>&1
  mark "1b 131k $v rc $? $(grep -hE 'dbrmt-' $W/m1b-$v-$r.log | cut -c8-90 | tr -s ' ' | tr '\n' ';')"
  timeout 100 env DBRMT_READ_FEATURES=$v dist/dbrmt bench matrix --filter 160m-t512-131k --out $W/m160-$v.jsonl > $W/m160-$v-$r.log 2>&1
  mark "160m 131k $v rc $? $(grep -hE 'dbrmt-' $W/m160-$v-$r.log | cut -c8-90 | tr -s ' ' | tr '\n' ';')"
done; done
for v in on off; do
  for m in "llama-3.2-1b 1024" "llama-160m 512"; do set -- $m
    DBRMT_READ_FEATURES=$v timeout 90 dist/dbrmt bench profile --model $1 --segment $2 --tokens 131072 --out $W/p-$1-$v.jsonl > $W/p-$1-$v.log 2>&1
    mark "profile $1 $v rc $? $(grep -hE 'read: |steps of' $W/p-$1-$v.log | tr -s ' ' | cut -c1-90 | tr '\n' ';')"
  done
done
DBRMT_GRAPHS=off timeout 150 $NCU --clock-control none -k regex:"armt_read_fused_sm90_(features|split_pf)_f32" --launch-skip 24 --launch-count 4 \
  --section SpeedOfLight --section LaunchStats dist/dbrmt bench matrix --filter 1b-t1024-16k --out /tmp/x.jsonl > $W/ncu.txt 2> $W/ncu.err
mark "ncu rc $? $(grep -E '^  armt_read|Duration|Grid Size|DRAM Throughput|Compute \(SM\) Thr' $W/ncu.txt | tr -s ' ' | cut -c1-60 | tr '\n' ';')"
for tool in memcheck racecheck; do
  timeout 200 $CS --tool $tool dist/tests/dbrmt-kernels__gpu_armt features_once --ignored --test-threads=1 > $W/$tool.log 2>&1
  mark "$tool rc $? $(grep -hE 'ERROR SUMMARY|RACECHECK SUMMARY|test result' $W/$tool.log | tr '\n' ' ' | cut -c1-140)"
done
finish
