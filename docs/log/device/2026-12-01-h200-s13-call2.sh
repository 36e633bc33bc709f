#!/usr/bin/env bash
# Session 13 call 2: attention's grid = min(SMs, items) (B = dist/) against main before it (A = /tmp/A/dist): the
# attention and engine tests (decode == prefill bytes), decode rows alternately; the harness's decode shapes at grids
# 132 / items; ncu's duration of every kernel of two decoded SmolLM2 tokens (graphs off).
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s13c2; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s13c2.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
mkdir -p /tmp/A && python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall('/tmp/A')"
for t in dbrmt-kernels__gpu_layer_ops dbrmt-runtime__gpu_engine dbrmt-runtime__gpu_requests dbrmt-runtime__gpu_generate; do
  [ -x dist/tests/$t ] || { mark "$t missing"; continue; }
  timeout 150 dist/tests/$t --ignored --test-threads=1 > $W/$t.log 2>&1; rc=$?; mark "$t rc $rc $(grep -h 'test result' $W/$t.log | tail -1 | cut -c1-50)"
  if [ $rc -ne 0 ]; then grep -E "FAIL|panicked" $W/$t.log | cut -c1-220 | head -10; finish; fi
done
for r in 1 2 3; do for v in new old; do
  B=dist/dbrmt; [ $v = old ] && B=/tmp/A/dist/dbrmt
  timeout 100 $B bench matrix --filter decode --out $W/matrix-$v.jsonl > $W/matrix-decode-$v-$r.log 2>&1
  mark "matrix decode $v rc $? $(grep -h 'ms/token' $W/matrix-decode-$v-$r.log | cut -c1-75 | tr '\n' ' ')"
done; done
xz -dc tmp-device/attention_sm90_dev.xz > /tmp/attn_dev && chmod +x /tmp/attn_dev
for g in 132 6 16; do
  timeout 60 /tmp/attn_dev --shape "@200" --no-simt --no-variants --grid $g --reps 200 > $W/attention-grid$g.log 2>&1
  mark "harness grid $g rc $? $(grep -hE '^ +(SmolLM2|1B) decode' $W/attention-grid$g.log | cut -c1-100 | tr -s ' ' | tr '\n' ' ')"
done
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
DBRMT_GRAPHS=off timeout 150 $NCU --clock-control none --metrics gpu__time_duration.sum --csv --launch-skip 3000 --launch-count 610 \
  dist/dbrmt bench requests --model smollm2-135m --requests 1 --tokens 4096 --decode 16 --no-serial --out /tmp/x.jsonl > $W/ncu-decode-smollm2.csv 2> $W/ncu-decode-smollm2.err
mark "ncu decode smollm2 rc $? $(grep -c gpu__time_duration $W/ncu-decode-smollm2.csv) rows"
finish
