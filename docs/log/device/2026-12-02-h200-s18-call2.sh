#!/usr/bin/env bash
# Session 18 call 2: why the fused write is slow (call 1: 0.303 ms a 1B step where the four launches took ~0.22):
# ncu's full set on its first two launches of the check (1B shape, 3 cells = 96 CTAs; 160M shape, 36 CTAs).
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s18c2; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s18c2.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
timeout 300 $NCU --clock-control none --set full -k regex:armt_write_fused --launch-count 2 \
  dist/tests/dbrmt-kernels__gpu_armt armt_write_fused --ignored --test-threads=1 > $W/ncu-full.txt 2> $W/ncu.err
mark "ncu rc $? $(grep -cE 'Duration' $W/ncu-full.txt) durations"
grep -E "Duration|Compute \(SM\) Throughput|Memory Throughput|Issue Slots Busy|Executed Ipc A|Warp Cycles Per Issued|Achieved Occupancy|Registers Per|Stall|L2 Hit|stall" $W/ncu-full.txt | head -40
finish
