#!/usr/bin/env bash
# Session 18 call 7: where the fused write v4's warps stall (call 6: ~10 cycles an instruction with four warps a
# scheduler, ~7 cycles an HMMA.16816 an SM): the stall reasons per issued instruction and the tensor pipe's use, on the
# check's first launch (1B shape, 3 cells, 96 CTAs).
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s18c7; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s18c7.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
timeout 200 $NCU --clock-control none -k regex:armt_write_fused --launch-count 1 \
  --metrics "regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio$,sm__inst_executed_pipe_tensor_op_hmma.avg.pct_of_peak_sustained_active,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,smsp__inst_executed.sum,gpu__time_duration.sum" \
  dist/tests/dbrmt-kernels__gpu_armt armt_write_fused --ignored --test-threads=1 > $W/ncu-stalls.txt 2> $W/ncu.err
mark "ncu rc $?"
grep -E "stalled|tensor|inst_executed|duration" $W/ncu-stalls.txt | awk '$NF+0 > 0.05 || /tensor|duration|inst_exec/' | sort -k3 -n -r | head -30
finish
