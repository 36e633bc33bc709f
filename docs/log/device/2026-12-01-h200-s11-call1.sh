#!/usr/bin/env bash
# (Ran as session 11 call 1, after `python3` unpacked the xz-compressed cubins and trace binary it carried.)
# Prepared in session 10, not run: the next session's first call (~8 min on an H200). Two questions about the decode
# read (docs/log/armt_read_fused_sm90.md §11):
#   1. Is the converter ownership (V1) racy? Session 10's call 6 saw, with V1 + the one-row features (V4), a 1B decode
#      hang twice and the selftest's "gpu decode graphs on = off" differ; call 7 reproduced neither.
#   2. Does v6 (branch read-decode-ss: two k-blocks' MMAs in flight, A of the one row from shared memory, no spill)
#      beat main's read, with and without V1?
# Before the call (here, NVCC set; the branch's launcher gives 32-column launches 202,960 bytes of shared memory,
# which every cubin below accepts, so one bundle serves all):
#   git worktree add /tmp/ss read-decode-ss && cd /tmp/ss && cargo xtask bundle --gpu
#   mkdir -p $MAIN/tmp-device/{v4,v6o,main} && cp dist.tar.xz $MAIN/tmp-device/A.tar.xz
#   F="-cubin -std=c++17 -O3 -lineinfo -gencode=arch=compute_90a,code=sm_90a -Icuda"
#   $NVCC $F -DREAD_FUSED_OWNED_STAGES=1 cuda/armt_read_fused_sm90.cu -o $MAIN/tmp-device/v6o/armt_read_fused_sm90.cubin
#   git show read-decode-1row~1:cuda/armt_read_fused_sm90.cu > cuda/_v4.cu    # V4 = V1 + one-row features
#   $NVCC $F cuda/_v4.cu -o $MAIN/tmp-device/v4/armt_read_fused_sm90.cubin && rm cuda/_v4.cu
#   (cd $MAIN && $NVCC $F cuda/armt_read_fused_sm90.cu -o tmp-device/main/armt_read_fused_sm90.cubin)
#   $NVCC -O3 -lineinfo -gencode=arch=compute_90a,code=sm_90a -Icuda -DREAD_FUSED_TRACE -o $MAIN/tmp-device/trace \
#         cuda/dev/armt_read_fused_sm90.cu -L<nvcc wheel lib> -L<libcuda stub> -lcuda          # v6's trace
# Carry ["tmp-device"] (keep it under ~12 MB: the tree is ~54 MB of the 64 MiB).
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=${OUT:-/tmp}/pending; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall()"
cub() { unset DBRMT_CUBINS; [ "$1" != v6 ] && export DBRMT_CUBINS=$R/tmp-device/$1; true; }
# v6's read checks first (its bitwise width and decode-row checks), then every variant's
for v in v6 v6o v4 main; do cub $v
  timeout 90 dist/tests/dbrmt-kernels__gpu_armt --ignored > $W/armt-$v.log 2>&1; mark "$v gpu_armt rc $? $(grep -h 'test result' $W/armt-$v.log | cut -c1-40)"
done
cub v4; CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in racecheck synccheck; do
  timeout 120 $CS --tool $tool --print-limit 20 dist/tests/dbrmt-kernels__gpu_armt --ignored --test-threads=1 \
    > $W/sanitizer-$tool.log 2>&1; mark "v4 $tool rc $? $(grep -hE 'ERROR SUMMARY' $W/sanitizer-$tool.log | tail -1)"
done
for r in 1 2; do for v in main v6 v6o v4; do cub $v
  timeout 25 dist/dbrmt bench matrix --filter decode --out $W/m.jsonl > $W/decode-$v-$r.log 2>&1
  mark "$v decode rc $? $(grep -h 'bench: ' $W/decode-$v-$r.log | grep -v 'on the GPU' | cut -c8-70 | tr '\n' ' ')"
done; done
for v in v6 v4; do cub $v
  (cd /tmp && timeout 110 $R/dist/dbrmt selftest > $W/selftest-$v.log 2>&1); mark "$v selftest rc $? $(grep -hE 'passed, ' $W/selftest-$v.log | tail -1)"
  grep -h FAIL $W/selftest-$v.log | cut -c1-160 | head -3
done
unset DBRMT_CUBINS
timeout 60 tmp-device/trace --trace > $W/trace.txt 2>&1; mark "v6 trace rc $?"
grep -E "^\[trace\]|^ +(0|1|5|11) " $W/trace.txt | head -40
cat $W/marks.txt
