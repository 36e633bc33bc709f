#!/usr/bin/env bash
# Session 18 call 12 — PREPARED, NOT RUN (the session's device time was spent): gemm_tf32x3_sm90 with a one-k-block
# lookahead of the consumers' A fragments (docs/log/patches/2026-12-02-s18-tf32x3-lookahead.patch applied; the next
# stage's barrier waits, loads and split while this k-block's products run; call 11: the consumers waited on
# wgmma.wait_group and on the stage barriers in turn). B = dist/ with the patch, old = main's cubin in tmp-device/old
# through DBRMT_CUBINS. The tf32x3 checks, gpu_armt, gpu_engine; 131K rows new / old; 1B step profiles.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s18c12; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s18c12.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
for t in "dbrmt-kernels__gpu_gemm tf32x3" "dbrmt-kernels__gpu_armt armt" dbrmt-runtime__gpu_engine; do
  n=${t%% *}; f=${t#* }; [ "$f" = "$t" ] && f=""
  timeout 150 dist/tests/$n $f --ignored --test-threads=1 > $W/$n.log 2>&1; rc=$?
  mark "$n $f rc $rc $(grep -h 'test result' $W/$n.log | tail -1 | cut -c1-50)"
  if [ $rc -ne 0 ]; then grep -E "FAIL|panicked" $W/$n.log | cut -c1-250 | head -8; finish; fi
done
for r in 1 2; do for v in new old; do
  E="X_=1"; [ $v = old ] && E="DBRMT_CUBINS=$R/tmp-device/old"
  env $E timeout 100 dist/dbrmt bench matrix --filter 1b-t1024-131k --out $W/matrix-1b-$v.jsonl > $W/matrix-1b-$v-$r.log 2>&1
  mark "1b 131k $v rc $? $(grep -hE 'dbrmt-diagonal' $W/matrix-1b-$v-$r.log | cut -c8-90 | tr -s ' ')"
  env $E timeout 100 dist/dbrmt bench matrix --filter 160m-t512-131k --out $W/matrix-160m-$v.jsonl > $W/matrix-160m-$v-$r.log 2>&1
  mark "160m 131k $v rc $? $(grep -hE 'dbrmt-diagonal' $W/matrix-160m-$v-$r.log | cut -c8-90 | tr -s ' ')"
done; done
for v in new old; do
  E="X_=1"; [ $v = old ] && E="DBRMT_CUBINS=$R/tmp-device/old"
  env $E timeout 90 dist/dbrmt bench profile --model llama-3.2-1b --segment 1024 --tokens 131072 --out $W/profile-1b-$v.jsonl > $W/profile-1b-$v.log 2>&1
  mark "profile 1b $v rc $? $(grep -hE 'write: kφ·A|write: A \+=|per step|steps of 16' $W/profile-1b-$v.log | tr -s ' ' | cut -c1-120 | tr '\n' ';')"
done
finish
