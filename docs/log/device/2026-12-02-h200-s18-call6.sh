#!/usr/bin/env bash
# Session 18 call 6: the fused write v4 (bf16 mma.sync m16n8k16 on a three-term split, six products, in place of
# 3×TF32 on the tf32 mma.sync that calls 1–5 found slow; B = dist/). Its check (reference, split bitwise, alone vs
# grouped, widths 64 = 96); on failure memcheck of it and stop. Then the engine tests and requests; the 131K rows of
# the 1B and the 160M alternately fused / apart (DBRMT_WRITE_FUSED=off: main's four launches); both step profiles
# fused; ncu of the check's first two launches; memcheck and racecheck of the new check.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s18c6; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s18c6.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
timeout 120 dist/tests/dbrmt-kernels__gpu_armt armt_write --ignored --test-threads=1 --nocapture > $W/armt-write.log 2>&1; rc=$?
mark "gpu_armt armt_write rc $rc $(grep -h 'test result' $W/armt-write.log | tail -1 | cut -c1-50)"
grep -E "armt_write_fused|FAIL|panicked|rror" $W/armt-write.log | cut -c1-220 | head -24
if [ $rc -ne 0 ]; then
  timeout 200 $CS --tool memcheck dist/tests/dbrmt-kernels__gpu_armt armt_write_fused --ignored --test-threads=1 > $W/memcheck.log 2>&1
  mark "memcheck rc $? $(grep -hE 'ERROR SUMMARY|test result' $W/memcheck.log | tr '\n' ' ' | cut -c1-120)"
  grep -E "Invalid|at 0x|by thread" $W/memcheck.log | head -12
  finish
fi
for t in dbrmt-runtime__gpu_engine dbrmt-runtime__gpu_requests; do
  timeout 200 dist/tests/$t --ignored --test-threads=1 > $W/$t.log 2>&1; rc=$?
  mark "$t rc $rc $(grep -h 'test result' $W/$t.log | tail -1 | cut -c1-50)"
  if [ $rc -ne 0 ]; then grep -E "FAIL|panicked" $W/$t.log | cut -c1-250 | head -8; fi
done
for r in 1 2; do for v in fused apart; do
  E="X_=1"; [ $v = apart ] && E="DBRMT_WRITE_FUSED=off"
  env $E timeout 100 dist/dbrmt bench matrix --filter 1b-t1024-131k --out $W/matrix-1b-$v.jsonl > $W/matrix-1b-$v-$r.log 2>&1
  mark "1b 131k $v rc $? $(grep -hE 'dbrmt-diagonal' $W/matrix-1b-$v-$r.log | cut -c8-90 | tr -s ' ')"
  env $E timeout 100 dist/dbrmt bench matrix --filter 160m-t512-131k --out $W/matrix-160m-$v.jsonl > $W/matrix-160m-$v-$r.log 2>&1
  mark "160m 131k $v rc $? $(grep -hE 'dbrmt-diagonal' $W/matrix-160m-$v-$r.log | cut -c8-90 | tr -s ' ')"
done; done
timeout 90 dist/dbrmt bench profile --model llama-3.2-1b --segment 1024 --tokens 131072 --out $W/profile-1b.jsonl > $W/profile-1b.log 2>&1
mark "profile 1b rc $? $(grep -hE 'write|per step' $W/profile-1b.log | tr -s ' ' | tr '\n' ';' | cut -c1-300)"
timeout 90 dist/dbrmt bench profile --model llama-160m --segment 512 --tokens 131072 --out $W/profile-160m.jsonl > $W/profile-160m.log 2>&1
mark "profile 160m rc $? $(grep -hE 'write|per step' $W/profile-160m.log | tr -s ' ' | tr '\n' ';' | cut -c1-300)"
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
timeout 120 $NCU --clock-control none --section SpeedOfLight --section ComputeWorkloadAnalysis --section WarpStateStats --section SchedulerStats --section InstructionStats -k regex:armt_write_fused --launch-count 2 \
  dist/tests/dbrmt-kernels__gpu_armt armt_write_fused --ignored --test-threads=1 > $W/ncu.txt 2> $W/ncu.err
mark "ncu rc $? $(grep -E 'Duration|Issue Slots Busy|Executed Instructions  ' $W/ncu.txt | tr -s ' ' | tr '\n' ';' | cut -c1-300)"
timeout 100 $CS --tool memcheck dist/tests/dbrmt-kernels__gpu_armt armt_write_fused --ignored --test-threads=1 > $W/memcheck.log 2>&1
mark "memcheck rc $? $(grep -hE 'ERROR SUMMARY|test result' $W/memcheck.log | tr '\n' ' ' | cut -c1-120)"
timeout 100 $CS --tool racecheck dist/tests/dbrmt-kernels__gpu_armt armt_write_fused --ignored --test-threads=1 > $W/racecheck.log 2>&1
mark "racecheck rc $? $(grep -hE 'RACECHECK SUMMARY|ERROR SUMMARY|test result' $W/racecheck.log | tr '\n' ' ' | cut -c1-120)"
finish
