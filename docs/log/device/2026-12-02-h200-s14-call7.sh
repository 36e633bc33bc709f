#!/usr/bin/env bash
# Session 14 call 7: the L2 prefetch of the layer's gate/up weight rows beside a decode step's RoPE (B = dist/,
# main with rope_bf16_few_l2). Engine (decode == prefill, graphs on = off), generation; decode rows with the prefetch
# and with DBRMT_L2_PREFETCH=off alternately (the same build); ncu durations of the 1B decode kernels with and without
# it (caches not flushed between kernels: the prefetch lives in L2 across launches).
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s14c7; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s14c7.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
for t in dbrmt-runtime__gpu_engine dbrmt-cli__gpu_generate; do
  timeout 150 dist/tests/$t --ignored --test-threads=1 > $W/$t.log 2>&1; rc=$?
  mark "B $t rc $rc $(grep -h 'test result' $W/$t.log | tail -1 | cut -c1-50)"
  if [ $rc -ne 0 ]; then grep -E "FAIL|panicked" $W/$t.log | cut -c1-250 | head -8; fi
done
for r in 1 2 3; do for v in on off; do
  E=X=1; [ $v = off ] && E=DBRMT_L2_PREFETCH=off
  env $E timeout 100 dist/dbrmt bench matrix --filter decode --out $W/matrix-$v.jsonl > $W/matrix-decode-$v-$r.log 2>&1
  mark "decode $v rc $? $(grep -hE 'ms/token' $W/matrix-decode-$v-$r.log | grep dbrmt | cut -c8-80 | tr -s ' ' | tr '\n' ' ')"
done; done
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
for v in on off; do
  E=X=1; [ $v = off ] && E=DBRMT_L2_PREFETCH=off
  env $E DBRMT_GRAPHS=off timeout 150 $NCU --clock-control none --cache-control none --metrics gpu__time_duration.sum --csv --launch-skip 1500 --launch-count 400 \
    dist/dbrmt bench requests --model llama-3.2-1b --requests 1 --tokens 4096 --decode 16 --no-serial --out /tmp/x.jsonl > $W/ncu-1b-$v.csv 2> $W/ncu-1b-$v.err
  mark "ncu 1b $v rc $? $(grep -c gpu__time_duration $W/ncu-1b-$v.csv) rows"
done
finish
