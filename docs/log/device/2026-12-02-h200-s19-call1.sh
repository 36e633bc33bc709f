#!/usr/bin/env bash
# Session 19 call 1 = session 18's calls 12 and 13 in one: B = dist/ of branch s19 (write-fused with v7, plus the
# gemm_tf32x3 lookahead patch); old = main's gemm_tf32x3_sm90 cubin (tmp-device/old, SASS checked equal to main's).
# 1. tf32x3 checks (lookahead), the fused-write v7 check (on failure: memcheck of it, v7's rows skipped).
# 2. gpu_engine with main's four-launch write (lookahead) and with v7 (diagonal == sequential, golden cases).
# 3. 131K rows, two rounds: main (old cubin, four launches) / la (lookahead, four launches) / sm90 (v7).
# 4. step profiles; ncu durations of v7's launches in its check; memcheck + racecheck of v7.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s19c1; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s19c1.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
timeout 120 dist/tests/dbrmt-kernels__gpu_gemm tf32x3 --ignored --test-threads=1 > $W/tf32x3.log 2>&1; LA=$?
mark "gpu_gemm tf32x3 rc $LA $(grep -h 'test result' $W/tf32x3.log | tail -1 | cut -c1-50)"
[ $LA -ne 0 ] && grep -E "FAIL|panicked" $W/tf32x3.log | cut -c1-250 | head -8
timeout 120 dist/tests/dbrmt-kernels__gpu_armt armt_write_fused_sm90 --ignored --test-threads=1 --nocapture > $W/v7.log 2>&1; V7=$?
mark "gpu_armt armt_write_fused_sm90 rc $V7 $(grep -h 'test result' $W/v7.log | tail -1 | cut -c1-50)"
grep -E "armt_write_fused_sm90|FAIL|panicked|rror" $W/v7.log | cut -c1-220 | head -16
if [ $V7 -ne 0 ]; then
  timeout 150 $CS --tool memcheck dist/tests/dbrmt-kernels__gpu_armt armt_write_fused_sm90 --ignored --test-threads=1 > $W/memcheck.log 2>&1
  mark "memcheck rc $? $(grep -hE 'ERROR SUMMARY' $W/memcheck.log)"
  grep -E "Invalid|at 0x|by thread|rror" $W/memcheck.log | head -12
fi
timeout 150 dist/tests/dbrmt-kernels__gpu_armt armt --ignored --test-threads=1 > $W/armt.log 2>&1
mark "gpu_armt all rc $? $(grep -h 'test result' $W/armt.log | tail -1 | cut -c1-50) $(grep -E '^test .*FAILED' $W/armt.log | tr '\n' ' ')"
VS="main"; [ $LA -eq 0 ] && VS="$VS la"; [ $V7 -eq 0 ] && VS="$VS sm90"
for v in $VS; do [ $v = main ] && continue
  E="DBRMT_WRITE_FUSED=off"; [ $v = sm90 ] && E="DBRMT_WRITE_FUSED=sm90"
  env $E timeout 200 dist/tests/dbrmt-runtime__gpu_engine --ignored --test-threads=1 > $W/engine-$v.log 2>&1; rc=$?
  mark "gpu_engine $v rc $rc $(grep -h 'test result' $W/engine-$v.log | tail -1 | cut -c1-50)"
  [ $rc -ne 0 ] && grep -E "FAIL|panicked" $W/engine-$v.log | cut -c1-250 | head -8
done
for r in 1 2; do for v in $VS; do
  E="DBRMT_WRITE_FUSED=off"; [ $v = main ] && E="$E DBRMT_CUBINS=$R/tmp-device/old"; [ $v = sm90 ] && E="DBRMT_WRITE_FUSED=sm90"
  env $E timeout 100 dist/dbrmt bench matrix --filter 1b-t1024-131k --out $W/m1b-$v.jsonl > $W/m1b-$v-$r.log 2>&1
  mark "1b 131k $v rc $? $(grep -hE 'dbrmt-diagonal' $W/m1b-$v-$r.log | cut -c8-90 | tr -s ' ')"
  env $E timeout 100 dist/dbrmt bench matrix --filter 160m-t512-131k --out $W/m160-$v.jsonl > $W/m160-$v-$r.log 2>&1
  mark "160m 131k $v rc $? $(grep -hE 'dbrmt-diagonal' $W/m160-$v-$r.log | cut -c8-90 | tr -s ' ')"
done; done
for v in $VS; do
  E="DBRMT_WRITE_FUSED=off"; [ $v = main ] && E="$E DBRMT_CUBINS=$R/tmp-device/old"; [ $v = sm90 ] && E="DBRMT_WRITE_FUSED=sm90"
  for m in "llama-3.2-1b 1024" "llama-160m 512"; do set -- $m
    env $E timeout 90 dist/dbrmt bench profile --model $1 --segment $2 --tokens 131072 --out $W/p-$1-$v.jsonl > $W/p-$1-$v.log 2>&1
    mark "profile $1 $v rc $? $(grep -hE 'write: |steps of' $W/p-$1-$v.log | tr -s ' ' | cut -c1-80 | tr '\n' ';')"
  done
done
if [ $V7 -eq 0 ]; then
  timeout 120 $NCU --clock-control none --section SpeedOfLight --section WarpStateStats -k regex:armt_write_fused_sm90 --launch-count 4 \
    dist/tests/dbrmt-kernels__gpu_armt armt_write_fused_sm90 --ignored --test-threads=1 > $W/ncu.txt 2> $W/ncu.err
  mark "ncu rc $? $(grep -E 'Duration|Grid Size|Compute \(SM\) Thr' $W/ncu.txt | tr -s ' ' | tr '\n' ';' | cut -c1-400)"
  for tool in memcheck racecheck; do
    timeout 150 $CS --tool $tool dist/tests/dbrmt-kernels__gpu_armt armt_write_fused_sm90 --ignored --test-threads=1 > $W/$tool.log 2>&1
    mark "$tool rc $? $(grep -hE 'ERROR SUMMARY|RACECHECK SUMMARY|test result' $W/$tool.log | tr '\n' ' ' | cut -c1-120)"
  done
fi
finish
