#!/usr/bin/env bash
# Session 12 call 2: the row kernels' many-row paths at the copy bandwidth (rope two pairs a thread, to_bf16 four
# columns a thread, the z update's loads in one round through shared memory). Checks and engine tests on the new
# bundle (B = dist/), the step profiles at 131K with the steps by width (the ramps), the 131K rows and decode against
# main before it (A = 069540b's bundle, /tmp/A/dist), the selftest.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s12c2; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s12c2.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
mkdir -p /tmp/A && python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall('/tmp/A')"
for t in dbrmt-kernels__gpu_layer_ops dbrmt-kernels__gpu_armt dbrmt-runtime__gpu_engine; do
  timeout 150 dist/tests/$t --ignored --test-threads=1 > $W/$t.log 2>&1; rc=$?; mark "$t rc $rc $(grep -h 'test result' $W/$t.log | tail -1 | cut -c1-50)"
  if [ $rc -ne 0 ]; then grep -E "FAIL|panicked" $W/$t.log | cut -c1-220 | head -10; finish; fi
done
for m in "llama-3.2-1b 1024" "llama-160m 512"; do set -- $m
  timeout 90 dist/dbrmt bench profile --model $1 --segment $2 --tokens 131072 --out $W/profile-$1.jsonl > $W/profile-$1.log 2>&1
  mark "profile $1 rc $? $(grep -hE 'per step|cells, ' $W/profile-$1.log | head -1 | cut -c1-120)"
  grep -hE "rope|rows to bf16|z update|rms_norm|^ +[0-9]+: " $W/profile-$1.log | head -24
done
for r in 1 2; do for f in 160m-t512-131k 1b-t1024-131k; do for v in new old; do
  B=dist/dbrmt; [ $v = old ] && B=/tmp/A/dist/dbrmt
  timeout 100 $B bench matrix --filter $f --out $W/matrix-$v.jsonl > $W/matrix-$f-$v-$r.log 2>&1
  mark "matrix $f $v rc $? $(grep -h 'bench: ' $W/matrix-$f-$v-$r.log | grep -v 'on the GPU' | cut -c8-90 | tr '\n' ' ')"
done; done; done
for r in 1 2; do for v in new old; do
  B=dist/dbrmt; [ $v = old ] && B=/tmp/A/dist/dbrmt
  timeout 30 $B bench matrix --filter decode --out $W/m.jsonl > $W/decode-$v-$r.log 2>&1
  mark "decode $v rc $? $(grep -h 'bench: ' $W/decode-$v-$r.log | grep -v 'on the GPU' | cut -c8-70 | tr '\n' ' ')"
done; done
(cd /tmp && timeout 150 $R/dist/dbrmt selftest > $W/selftest.log 2>&1); mark "selftest rc $? $(grep -hE 'passed, ' $W/selftest.log | tail -1)"
grep -h FAIL $W/selftest.log | cut -c1-180 | head -4
finish
