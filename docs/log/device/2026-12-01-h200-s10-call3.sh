#!/usr/bin/env bash
# Session 10 call 3: the decode read's timeline (CTA 0, SM clock) from the dev harness built with -DREAD_FUSED_TRACE,
# main's kernel and V1 (each narrow stage converted by one converter warp); V1 through the engine (DBRMT_CUBINS).
# (Recorded after the run, as it ran.)
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s10c3; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall()"
for v in main v1; do echo "===== trace $v"; timeout 60 tmp-device/trace_$v --trace 2>&1 | tee $W/trace-$v.txt; done
DBRMT_CUBINS=$R/tmp-device/v1 timeout 90 dist/tests/dbrmt-kernels__gpu_armt --ignored > $W/armt-v1.log 2>&1; mark "v1 gpu_armt rc $?"
grep -E "test result|FAIL|panicked" $W/armt-v1.log | head -5
for r in 1 2; do for v in main v1; do
  if [ $v = v1 ]; then export DBRMT_CUBINS=$R/tmp-device/v1; else unset DBRMT_CUBINS; fi
  timeout 60 dist/dbrmt bench matrix --filter decode --out $W/m.jsonl > $W/decode-$v-$r.log 2>&1
  grep -h "bench: " $W/decode-$v-$r.log | grep -v "on the GPU" | cut -c1-100 | sed "s/^/$v /"
done; done
unset DBRMT_CUBINS
(cd $W && tar czf $OUT/s10c3.tgz .); cat $W/marks.txt
