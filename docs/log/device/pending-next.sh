#!/usr/bin/env bash
# Prepared in session 10, not run: the next session's first call (~7 min on an H200). Is the converter ownership (V1,
# docs/log/armt_read_fused_sm90.md §11) racy? Session 10's call 6 saw, with V1 + the one-row features, a 1B decode
# hang twice and the selftest's "gpu decode graphs on = off" differ; call 7 reproduced neither.
# Before the call (here, with NVCC set):
#   cargo xtask bundle --gpu && mkdir -p tmp-device/v4 && cp dist.tar.xz tmp-device/A.tar.xz
#   git show read-decode-1row~1:cuda/armt_read_fused_sm90.cu > /tmp/v4.cu     # branch read-decode-1row, 003e37e = V4
#   $NVCC -cubin -std=c++17 -O3 -lineinfo -gencode=arch=compute_90a,code=sm_90a -Icuda /tmp/v4.cu \
#         -o tmp-device/v4/armt_read_fused_sm90.cubin
#   $NVCC -O3 -lineinfo -gencode=arch=compute_90a,code=sm_90a -Icuda -DREAD_FUSED_TRACE -o tmp-device/trace \
#         cuda/dev/armt_read_fused_sm90.cu -L.nvcc/lib/python3.11/site-packages/nvidia/cu13/lib -L<libcuda stub> -lcuda
# Carry ["tmp-device"]. The sanitizer runs first (the likeliest to name the hazard), then repetitions; last, main's
# trace of the decode read and of a prefill read (where the prefill read's ~3,000 cycles a k-block go).
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=${OUT:-/tmp}/pending; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall()"
export DBRMT_CUBINS=$R/tmp-device/v4
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in racecheck synccheck; do
  timeout 150 $CS --tool $tool --print-limit 20 dist/tests/dbrmt-kernels__gpu_armt --ignored --test-threads=1 \
    > $W/sanitizer-$tool.log 2>&1; mark "$tool rc $? $(grep -hE 'ERROR SUMMARY|hazard' $W/sanitizer-$tool.log | tail -1)"
done
for i in 1 2 3 4 5; do
  timeout 25 dist/dbrmt bench matrix --filter 1b-decode --out $W/m.jsonl > $W/decode-$i.log 2>&1
  mark "v4 1B decode $i rc $? $(grep -h 'bench: 1b' $W/decode-$i.log | cut -c30-90)"
done
for i in 1 2; do
  (cd /tmp && timeout 110 $R/dist/dbrmt selftest > $W/selftest-$i.log 2>&1); mark "v4 selftest $i rc $? $(grep -hE 'passed, ' $W/selftest-$i.log | tail -1)"
  grep -h FAIL $W/selftest-$i.log | cut -c1-160 | head -3
done
unset DBRMT_CUBINS
timeout 60 tmp-device/trace --trace > $W/trace.txt 2>&1; mark "trace rc $?"
grep -E "^\[trace\]|^ +(0|1|5|11) " $W/trace.txt | head -40
cat $W/marks.txt
