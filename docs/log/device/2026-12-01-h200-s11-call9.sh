#!/usr/bin/env bash
# Session 11 call 9 (last, ~4 min of device time left): attention_sm90's grid capped at the launch's items (a decoded
# row: 16 CTAs at the 1B shape instead of 132). Checks and engine tests, then decode rows of this binary against the
# one before (tmp-device/dbrmt-old.xz, call 8's), then the selftest if time is left.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s11c9; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s11c9.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall()"
python3 -c "import lzma; open('tmp-device/dbrmt-old','wb').write(lzma.open('tmp-device/dbrmt-old.xz').read())"; chmod +x tmp-device/dbrmt-old
for t in dbrmt-kernels__gpu_layer_ops dbrmt-runtime__gpu_engine; do
  timeout 100 dist/tests/$t --ignored --test-threads=1 > $W/$t.log 2>&1; rc=$?; mark "$t rc $rc $(grep -h 'test result' $W/$t.log | tail -1 | cut -c1-50)"
  if [ $rc -ne 0 ]; then grep -E "FAIL|panicked" $W/$t.log | cut -c1-220 | head -10; finish; fi
done
for r in 1 2; do for v in new old; do
  B=dist/dbrmt; [ $v = old ] && B=tmp-device/dbrmt-old
  timeout 30 $B bench matrix --filter decode --out $W/m-$v.jsonl > $W/decode-$v-$r.log 2>&1
  mark "decode $v rc $? $(grep -h 'bench: ' $W/decode-$v-$r.log | grep -v 'on the GPU' | cut -c8-70 | tr '\n' ' ')"
done; done
(cd /tmp && timeout 85 $R/dist/dbrmt selftest > $W/selftest.log 2>&1); mark "selftest rc $? $(grep -hE 'passed, ' $W/selftest.log | tail -1)"
grep -h FAIL $W/selftest.log | cut -c1-180 | head -4
finish
