#!/usr/bin/env bash
# Session 13 call 1: (1) the write prep as a warp per row (armt_write_prep_warp_f32, the block's bits; B = dist/) against
# main before it (A = /tmp/A/dist): engine tests, the kernel checks (selftest), profiles, 131K rows; (2) where a
# decoded token's time goes: ncu's duration of every kernel of two decoded tokens (graphs off), SmolLM2 and 1B shapes;
# (3) the attention harness's decode shapes with their phase profile line.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s13c1; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s13c1.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
mkdir -p /tmp/A && python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall('/tmp/A')"
for t in dbrmt-kernels__gpu_armt dbrmt-runtime__gpu_engine dbrmt-runtime__gpu_requests; do
  timeout 150 dist/tests/$t --ignored --test-threads=1 > $W/$t.log 2>&1; rc=$?; mark "$t rc $rc $(grep -h 'test result' $W/$t.log | tail -1 | cut -c1-50)"
  if [ $rc -ne 0 ]; then grep -E "FAIL|panicked" $W/$t.log | cut -c1-220 | head -10; finish; fi
done
for m in "llama-160m 512" "llama-3.2-1b 1024"; do set -- $m; for v in new old; do B=dist/dbrmt; [ $v = old ] && B=/tmp/A/dist/dbrmt
  timeout 90 $B bench profile --model $1 --segment $2 --tokens 131072 --out $W/profile-$v.jsonl > $W/profile-$1-$v.log 2>&1
  mark "profile $1 $v rc $? $(grep -hE 'cells, ' $W/profile-$1-$v.log | head -1 | cut -c8-100) $(grep -h 'write: prep' $W/profile-$1-$v.log)"
done; done
for r in 1 2; do for f in 160m-t512-131k 1b-t1024-131k; do for v in new old; do
  B=dist/dbrmt; [ $v = old ] && B=/tmp/A/dist/dbrmt
  timeout 100 $B bench matrix --filter $f --out $W/matrix-$v.jsonl > $W/matrix-$f-$v-$r.log 2>&1
  mark "matrix $f $v rc $? $(grep -h 'dbrmt-diagonal' $W/matrix-$f-$v-$r.log | cut -c8-90 | tr '\n' ' ')"
done; done; done
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
for m in "smollm2-135m 620" "llama-3.2-1b 400"; do set -- $m
  DBRMT_GRAPHS=off timeout 150 $NCU --clock-control none --metrics gpu__time_duration.sum --csv --launch-skip 1500 --launch-count $2 \
    dist/dbrmt bench requests --model $1 --requests 1 --tokens 4096 --decode 16 --no-serial --out /tmp/x.jsonl > $W/ncu-decode-$1.csv 2> $W/ncu-decode-$1.err
  mark "ncu decode $1 rc $? $(grep -c gpu__time_duration $W/ncu-decode-$1.csv) rows"
done
xz -dc tmp-device/attention_sm90_dev.xz > /tmp/attn_dev && chmod +x /tmp/attn_dev
timeout 100 /tmp/attn_dev --shape "@200" --no-simt > $W/attention-decode.log 2>&1; mark "attention harness rc $?"
grep -E "decode|profile" $W/attention-decode.log | head -12
(cd /tmp && timeout 150 $R/dist/dbrmt selftest > $W/selftest.log 2>&1); mark "selftest rc $? $(grep -hE 'passed, ' $W/selftest.log | tail -1)"
grep -h FAIL $W/selftest.log | cut -c1-180 | head -4
grep -h "write_prep" $W/selftest.log | cut -c1-160 | head -12
finish
