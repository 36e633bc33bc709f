#!/usr/bin/env bash
# Session 15 call 3: v10, the narrow GEMM widths' stages as one 3-D TMA box per operand (B = dist/), against v9 (the
# normed decode GEMMs, A = /tmp/A/dist). Decode rows alternately B, A; ncu of the 1B decode kernels on B; then every
# GPU test and the selftest on B (dist/run.sh).
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s15c3; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s15c3.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
mkdir -p /tmp/A && python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall('/tmp/A')"
timeout 120 dist/tests/dbrmt-kernels__gpu_gemm tile_width --ignored --test-threads=1 > $W/gemm-width.log 2>&1
mark "B gpu_gemm width/decode rc $? $(grep -h 'test result' $W/gemm-width.log | tail -1 | cut -c1-50)"
grep -E "FAIL|panicked" $W/gemm-width.log | cut -c1-250 | head -8
timeout 100 dist/dbrmt bench matrix --filter decode --out $W/warm.jsonl > $W/warm.log 2>&1; mark "B decode warm-up rc $?"
grep -E "Error|error" $W/warm.log | head -5
for r in 1 2 3; do for v in new old; do
  B=dist/dbrmt; [ $v = old ] && B=/tmp/A/dist/dbrmt
  timeout 100 $B bench matrix --filter decode --out $W/matrix-$v.jsonl > $W/matrix-decode-$v-$r.log 2>&1
  mark "decode $v rc $? $(grep -hE 'tokens/s|ms/token' $W/matrix-decode-$v-$r.log | grep dbrmt | cut -c8-90 | tr -s ' ' | tr '\n' ' ')"
done; done
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
DBRMT_GRAPHS=off timeout 120 $NCU --clock-control none --metrics gpu__time_duration.sum --csv --launch-skip 1500 --launch-count 400 \
    dist/dbrmt bench requests --model llama-3.2-1b --requests 1 --tokens 4096 --decode 16 --no-serial --out /tmp/x.jsonl > $W/ncu-1b-new.csv 2> $W/ncu-1b-new.err
mark "ncu 1b new rc $? $(grep -c gpu__time_duration $W/ncu-1b-new.csv) rows"
timeout 330 dist/run.sh > $W/run.log 2>&1; mark "B run.sh rc $? $(grep -hE 'test result' $W/run.log | awk '{p+=$4; f+=$6} END {print p" passed, "f" failed"}') $(tail -3 $W/run.log | tr '\n' ' ' | cut -c1-200)"
grep -E "FAIL|panicked" $W/run.log | cut -c1-250 | head -10
finish
