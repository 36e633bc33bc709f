#!/usr/bin/env bash
# Session 16 call 4: v12 (RoPE in the prefill's q/k/v epilogue) on the head-dim-128 models, whose fused launch takes
# another width than the rule's (3B: 128 for 192; 8B: 256 for 224): their 131K rows alternately fused / apart, and the
# selftest's kernel checks and golden cases (quick scope) on the same build.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s16c4; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s16c4.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
for r in 1 2; do for v in fused apart; do
  E="X_=1"; [ $v = apart ] && E="DBRMT_QKV_ROPE=off"
  for m in 3b 8b; do
    env $E timeout 100 dist/dbrmt bench matrix --filter $m-t1024-131k --out $W/matrix-$m-$v.jsonl > $W/matrix-$m-$v-$r.log 2>&1
    mark "$m 131k $v rc $? $(grep -hE 'dbrmt-diagonal' $W/matrix-$m-$v-$r.log | cut -c8-90 | tr -s ' ')"
  done
done; done
timeout 240 dist/dbrmt selftest --quick > $W/selftest.log 2>&1
mark "selftest quick rc $? $(tail -2 $W/selftest.log | tr '\n' ' ' | cut -c1-200)"
grep -E "FAIL" $W/selftest.log | cut -c1-250 | head -10
finish
