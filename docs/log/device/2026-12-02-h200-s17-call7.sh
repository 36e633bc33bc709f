#!/usr/bin/env bash
# Session 17 call 7: the GEMM launchers' shared helpers (host only; B = dist/): every gemm_sm90 GPU check (widths,
# decode rows, normed, RoPE) and the engine tests (PDL, q/k/v RoPE and decode norms fused = apart, diagonal ==
# sequential, golden cases, decode == prefill), and one decode row.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s17c7; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s17c7.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
for t in "dbrmt-kernels__gpu_gemm gemm_sm90" dbrmt-runtime__gpu_engine; do
  n=${t%% *}; timeout 110 dist/tests/$t --ignored --test-threads=1 > $W/$n.log 2>&1; rc=$?; t=$n
  mark "$t rc $rc $(grep -h 'test result' $W/$t.log | tail -1 | cut -c1-50)"
  if [ $rc -ne 0 ]; then grep -E "FAIL|panicked" $W/$t.log | cut -c1-250 | head -8; fi
done
timeout 30 dist/dbrmt bench matrix --filter decode --out $W/decode.jsonl > $W/decode.log 2>&1
mark "decode rc $? $(grep -hE 'tokens/s' $W/decode.log | grep dbrmt | cut -c8-90 | tr -s ' ' | tr '\n' ' ')"
finish
