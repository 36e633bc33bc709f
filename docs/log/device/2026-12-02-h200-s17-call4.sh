#!/usr/bin/env bash
# Session 17 call 4: v13.1, the one-launch decode MLP with ten stages of B in flight (B = dist/; down's A slots in the
# normed rows' area after the barrier, reused as the chain releases them). The kernel check (bitwise against rms_norm
# + the SwiGLU launch + down's, twice on one barrier); if it fails, memcheck of it and stop. Then the engine's decode
# checks, requests and generation; decode rows alternately one launch / two (DBRMT_DECODE_MLP=off); ncu of the 1B
# decode both ways; memcheck of the check.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s17c4; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s17c4.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
timeout 150 dist/tests/dbrmt-kernels__gpu_gemm decode_mlp --ignored --test-threads=1 --nocapture > $W/gemm-mlp.log 2>&1; rc=$?
mark "gpu_gemm decode_mlp rc $rc $(grep -h 'test result' $W/gemm-mlp.log | tail -1 | cut -c1-50)"
grep -E "gemm_sm90_decode_mlp|FAIL|panicked|rror" $W/gemm-mlp.log | cut -c1-250 | head -14
if [ $rc -ne 0 ]; then
  timeout 200 $CS --tool memcheck dist/tests/dbrmt-kernels__gpu_gemm decode_mlp --ignored --test-threads=1 > $W/memcheck-mlp.log 2>&1
  mark "memcheck decode_mlp rc $? $(grep -hE 'ERROR SUMMARY|test result' $W/memcheck-mlp.log | tr '\n' ' ' | cut -c1-120)"
  grep -E "Invalid|at 0x|by thread" $W/memcheck-mlp.log | head -12
  DBRMT_DECODE_MLP=off timeout 100 dist/dbrmt bench matrix --filter decode --out $W/off.jsonl > $W/off.log 2>&1
  mark "decode off rc $? $(grep -hE 'tokens/s' $W/off.log | grep dbrmt | cut -c8-90 | tr -s ' ' | tr '\n' ' ')"
  finish
fi
timeout 150 dist/tests/dbrmt-runtime__gpu_engine decode_ --ignored --test-threads=1 > $W/engine-decode.log 2>&1
mark "gpu_engine decode_ rc $? $(grep -h 'test result' $W/engine-decode.log | tail -1 | cut -c1-50)"
grep -E "FAIL|panicked|gpu decode" $W/engine-decode.log | cut -c1-250 | head -8
timeout 100 dist/dbrmt bench matrix --filter decode --out $W/warm.jsonl > $W/warm.log 2>&1; mark "decode warm-up rc $?"
grep -E "Error|error" $W/warm.log | head -5
for r in 1 2 3 4; do for v in one two; do
  E="X_=1"; [ $v = two ] && E="DBRMT_DECODE_MLP=off"
  env $E timeout 100 dist/dbrmt bench matrix --filter decode --out $W/matrix-$v.jsonl > $W/matrix-decode-$v-$r.log 2>&1
  mark "decode $v rc $? $(grep -hE 'tokens/s' $W/matrix-decode-$v-$r.log | grep dbrmt | cut -c8-90 | tr -s ' ' | tr '\n' ' ')"
done; done
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
for v in one two; do
  E="X_=1"; [ $v = two ] && E="DBRMT_DECODE_MLP=off"
  env $E DBRMT_GRAPHS=off timeout 120 $NCU --clock-control none --metrics gpu__time_duration.sum,dram__bytes_read.sum.per_second --csv --launch-skip 1500 --launch-count 400 \
      dist/dbrmt bench requests --model llama-3.2-1b --requests 1 --tokens 4096 --decode 16 --no-serial --out /tmp/x.jsonl > $W/ncu-1b-$v.csv 2> $W/ncu-1b-$v.err
  mark "ncu 1b $v rc $? $(grep -c gpu__time_duration $W/ncu-1b-$v.csv) rows"
done
for t in dbrmt-runtime__gpu_requests dbrmt-cli__gpu_generate dbrmt-runtime__gpu_engine; do
  timeout 200 dist/tests/$t --ignored --test-threads=1 > $W/$t.log 2>&1; rc=$?
  mark "$t rc $rc $(grep -h 'test result' $W/$t.log | tail -1 | cut -c1-50)"
  if [ $rc -ne 0 ]; then grep -E "FAIL|panicked" $W/$t.log | cut -c1-250 | head -8; fi
done
timeout 150 $CS --tool memcheck dist/tests/dbrmt-kernels__gpu_gemm decode_mlp --ignored --test-threads=1 > $W/memcheck-mlp.log 2>&1
mark "memcheck decode_mlp rc $? $(grep -hE 'ERROR SUMMARY|test result' $W/memcheck-mlp.log | tr '\n' ' ' | cut -c1-120)"
finish
