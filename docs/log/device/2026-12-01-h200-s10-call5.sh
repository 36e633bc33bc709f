#!/usr/bin/env bash
# Session 10 call 5: decode read v4 (one converter warp per 32-column stage + one-row features) and v5 (+ two k-blocks'
# MMAs in flight), as cubins through DBRMT_CUBINS into the engine (bundle of branch read-decode-v2: the same launcher
# interface, more shared memory than these need), against main's read cubin: read checks, traces, decode, ncu.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s10c5; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall(); tarfile.open('tmp-device/extras.tar.xz').extractall('tmp-device')"
for v in v4 v5; do
  DBRMT_CUBINS=$R/tmp-device/$v timeout 90 dist/tests/dbrmt-kernels__gpu_armt --ignored > $W/armt-$v.log 2>&1; mark "$v gpu_armt rc $?"
  grep -E "test result|FAIL|panicked|differ" $W/armt-$v.log | head -6
  timeout 60 tmp-device/trace_$v --trace > $W/trace-$v.txt 2>&1; mark "$v trace rc $?"
  grep -E "^\[trace\] tf32\+bf16|^ +(0|1|5|10|11) " $W/trace-$v.txt | head -25
done
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
for r in 1 2; do for v in main v4 v5; do
  export DBRMT_CUBINS=$R/tmp-device/$v
  timeout 60 dist/dbrmt bench matrix --filter decode --out $W/m-$v.jsonl > $W/decode-$v-$r.log 2>&1
  grep -h "bench: " $W/decode-$v-$r.log | grep -v "on the GPU" | cut -c1-100 | sed "s/^/$v /" | tee -a $W/decode.txt
done; done
for v in main v4 v5; do export DBRMT_CUBINS=$R/tmp-device/$v
  for m in smollm2-135m llama-3.2-1b; do
    DBRMT_GRAPHS=off timeout 40 $NCU --clock-control none -k "regex:armt_read_fused" --launch-skip 200 --launch-count 3 \
      dist/dbrmt bench requests --model $m --requests 1 --tokens 4096 --decode 16 --no-serial --out /tmp/x.jsonl > $W/ncu-$v-$m.txt 2>&1
    echo "$v $m read: $(grep -hE "Duration" $W/ncu-$v-$m.txt | tr -s ' ' | tr '\n' ' ')"
  done
done
unset DBRMT_CUBINS
(cd $W && tar czf $OUT/s10c5.tgz .); cat $W/marks.txt
