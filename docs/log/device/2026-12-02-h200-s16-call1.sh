#!/usr/bin/env bash
# Session 16 call 1: v11, a decode step's RoPE inside the normed q/k/v launch (B = dist/: v11.1, the epilogue's position
# and table entries loaded as the tile starts; v11.0, loaded in the epilogue, is its gemm_sm90 cubin through
# DBRMT_CUBINS). The new kernel check and the engine's fused = apart checks first, the new suite under memcheck; then
# decode rows alternately: v11.1, v11.0, apart (DBRMT_DECODE_ROPE=off: main's launches), v11.1 without the L2
# prefetch; ncu of the 1B and SmolLM2 decode kernels; every GPU test and the selftest (dist/run.sh).
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s16c1; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s16c1.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
mkdir -p /tmp/v110 && python3 -c "import lzma; open('/tmp/v110/gemm_sm90.cubin','wb').write(lzma.open('tmp-device/v110/gemm_sm90.cubin.xz').read())"
timeout 120 dist/tests/dbrmt-kernels__gpu_gemm normed --ignored --test-threads=1 > $W/gemm-normed.log 2>&1
mark "gpu_gemm normed rc $? $(grep -h 'test result' $W/gemm-normed.log | tail -1 | cut -c1-50)"
grep -E "FAIL|panicked|normed_rope" $W/gemm-normed.log | cut -c1-250 | head -14
timeout 150 dist/tests/dbrmt-runtime__gpu_engine decode_ --ignored --test-threads=1 > $W/engine-decode.log 2>&1
mark "gpu_engine decode_ rc $? $(grep -h 'test result' $W/engine-decode.log | tail -1 | cut -c1-50)"
grep -E "FAIL|panicked|gpu decode" $W/engine-decode.log | cut -c1-250 | head -8
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
timeout 150 $CS --tool memcheck dist/tests/dbrmt-kernels__gpu_gemm gemm_sm90_normed_rope --ignored --test-threads=1 > $W/memcheck-rope.log 2>&1
mark "memcheck normed_rope rc $? $(grep -hE 'ERROR SUMMARY|test result' $W/memcheck-rope.log | tr '\n' ' ' | cut -c1-120)"
timeout 100 dist/dbrmt bench matrix --filter decode --out $W/warm.jsonl > $W/warm.log 2>&1; mark "decode warm-up rc $?"
grep -E "Error|error" $W/warm.log | head -5
for r in 1 2 3; do for v in fused fused-v110 apart fused-nopf; do
  case $v in apart) E="DBRMT_DECODE_ROPE=off";; fused-nopf) E="DBRMT_L2_PREFETCH=off";; fused-v110) E="DBRMT_CUBINS=/tmp/v110";; *) E="X_=1";; esac
  env $E timeout 100 dist/dbrmt bench matrix --filter decode --out $W/matrix-$v.jsonl > $W/matrix-decode-$v-$r.log 2>&1
  mark "decode $v rc $? $(grep -hE 'tokens/s|ms/token' $W/matrix-decode-$v-$r.log | grep dbrmt | cut -c8-90 | tr -s ' ' | tr '\n' ' ')"
done; done
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
for m in llama-3.2-1b smollm2-135m; do
  DBRMT_GRAPHS=off timeout 120 $NCU --clock-control none --metrics gpu__time_duration.sum --csv --launch-skip 1500 --launch-count 400 \
      dist/dbrmt bench requests --model $m --requests 1 --tokens 4096 --decode 16 --no-serial --out /tmp/x.jsonl > $W/ncu-$m.csv 2> $W/ncu-$m.err
  mark "ncu $m rc $? $(grep -c gpu__time_duration $W/ncu-$m.csv) rows"
done
timeout 330 dist/run.sh > $W/run.log 2>&1; mark "run.sh rc $? $(grep -hE 'test result' $W/run.log | awk '{p+=$4; f+=$6} END {print p" passed, "f" failed"}') $(tail -3 $W/run.log | tr '\n' ' ' | cut -c1-200)"
grep -E "FAIL|panicked" $W/run.log | cut -c1-250 | head -10
finish
