#!/usr/bin/env bash
# Session 18 call 9: the fused write v6 (v5 with four stages in flight at 64 columns, was two: calls 6–8 ran a CTA in
# the same ~67 µs whatever its products did, the loop one stage ahead of its loads; B = dist/). Its check; the 1B 131K
# row alternately fused / apart; the 1B step profile; ncu of the check's first launch; memcheck of the check.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s18c9; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s18c9.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
timeout 120 dist/tests/dbrmt-kernels__gpu_armt armt_write_fused --ignored --test-threads=1 --nocapture > $W/armt-write.log 2>&1; rc=$?
mark "gpu_armt armt_write_fused rc $rc $(grep -h 'test result' $W/armt-write.log | tail -1 | cut -c1-50)"
grep -E "FAIL|panicked" $W/armt-write.log | cut -c1-220 | head -8
[ $rc -ne 0 ] && finish
for r in 1 2; do for v in fused apart; do
  E="X_=1"; [ $v = apart ] && E="DBRMT_WRITE_FUSED=off"
  env $E timeout 100 dist/dbrmt bench matrix --filter 1b-t1024-131k --out $W/matrix-1b-$v.jsonl > $W/matrix-1b-$v-$r.log 2>&1
  mark "1b 131k $v rc $? $(grep -hE 'dbrmt-diagonal' $W/matrix-1b-$v-$r.log | cut -c8-90 | tr -s ' ')"
done; done
timeout 90 dist/dbrmt bench profile --model llama-3.2-1b --segment 1024 --tokens 131072 --out $W/profile-1b.jsonl > $W/profile-1b.log 2>&1
mark "profile 1b rc $? $(grep -hE 'write: fused' $W/profile-1b.log | tr -s ' ')"
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
timeout 120 $NCU --clock-control none -k regex:armt_write_fused --launch-count 1 \
  --metrics "regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio$,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,smsp__inst_executed.sum,gpu__time_duration.sum" \
  dist/tests/dbrmt-kernels__gpu_armt armt_write_fused --ignored --test-threads=1 > $W/ncu-stalls.txt 2> $W/ncu.err
mark "ncu rc $? $(grep -E 'duration|tensor' $W/ncu-stalls.txt | tr -s ' ' | tr '\n' ';')"
timeout 100 $CS --tool memcheck dist/tests/dbrmt-kernels__gpu_armt armt_write_fused --ignored --test-threads=1 > $W/memcheck.log 2>&1
mark "memcheck rc $? $(grep -hE 'ERROR SUMMARY' $W/memcheck.log)"
finish
