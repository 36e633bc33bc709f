#!/usr/bin/env bash
# Session 14 call 4: GEMM v8 with the narrow halves' immediate stage release (B = dist/, the deadlock fix) against main
# before v8 (A). The GEMM suite whole (call 3's width check hung: the 2-stage ring), engine; ncu of the 1B decode
# kernels B and A (graphs off); decode rows and 1B 131K alternately.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s14c4; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s14c4.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
mkdir -p /tmp/A && python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall('/tmp/A')"
run_test() { # name filter
  timeout 200 dist/tests/$1 ${2:-} --ignored --test-threads=1 > $W/$1.log 2>&1; rc=$?
  mark "B $1 ${2:-} rc $rc $(grep -h 'test result' $W/$1.log | tail -1 | cut -c1-50)"
  if [ $rc -ne 0 ]; then grep -E "FAIL|panicked|differ|rel_err|^test " $W/$1.log | cut -c1-300 | tail -14; fi
}
run_test dbrmt-kernels__gpu_gemm
run_test dbrmt-runtime__gpu_engine
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
for v in new old; do
  B=dist/dbrmt; [ $v = old ] && B=/tmp/A/dist/dbrmt
  DBRMT_GRAPHS=off timeout 150 $NCU --clock-control none --metrics gpu__time_duration.sum --csv --launch-skip 1500 --launch-count 400 \
    $B bench requests --model llama-3.2-1b --requests 1 --tokens 4096 --decode 16 --no-serial --out /tmp/x.jsonl > $W/ncu-1b-$v.csv 2> $W/ncu-1b-$v.err
  mark "ncu 1b $v rc $? $(grep -c gpu__time_duration $W/ncu-1b-$v.csv) rows"
done
for r in 1 2 3; do for v in new old; do
  B=dist/dbrmt; [ $v = old ] && B=/tmp/A/dist/dbrmt
  timeout 100 $B bench matrix --filter decode --out $W/matrix-$v.jsonl > $W/matrix-decode-$v-$r.log 2>&1
  mark "decode $v rc $? $(grep -hE 'ms/token' $W/matrix-decode-$v-$r.log | grep dbrmt | cut -c8-80 | tr -s ' ' | tr '\n' ' ')"
done; done
for r in 1 2; do for v in new old; do
  B=dist/dbrmt; [ $v = old ] && B=/tmp/A/dist/dbrmt
  timeout 100 $B bench matrix --filter 1b-t1024-131k --out $W/matrix-$v.jsonl > $W/matrix-1b-$v-$r.log 2>&1
  mark "1b 131k $v rc $? $(grep -hE 'dbrmt-diagonal' $W/matrix-1b-$v-$r.log | cut -c8-90 | tr -s ' ')"
done; done
finish
