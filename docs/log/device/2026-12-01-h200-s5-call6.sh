#!/usr/bin/env bash
# session 5, device call 6: the benchmark run for docs/BENCHMARKS.md with the engine of branch s5-c5 (decode tiles v6,
# PDL, device argmax, fused read): our whole matrix, the requests set, the step profiles, the kernel table, SDPA and
# the ceilings, the PyTorch baselines of the 131K and decode rows (same run), the load benchmark. One tarball.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; s=(); W=/tmp/s5c6; rm -rf $W; mkdir -p $W/bench
rm -rf dist && tar xzf tmp-device/dist.tgz
mark() { s+=("[$((SECONDS-T0))s] $1"); echo "### $1"; }
room() { [ $((SECONDS-T0)) -lt $1 ] || { mark "skipped $2 (time)"; return 1; }; }
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.sm,driver_version --format=csv,noheader | tee $W/gpu.txt
for part in matrix requests profile kernels attention; do
  room 330 $part || continue
  timeout 200 dist/run.sh bench $W/bench $part > $W/run-$part.log 2>&1; mark "$part rc $?"
done
for f in 131k decode; do
  room 470 "baselines $f" || continue
  BENCH_FILTER=$f timeout $((520 - (SECONDS-T0))) dist/run.sh bench $W/bench baselines > $W/run-baselines-$f.log 2>&1; mark "baselines $f rc $?"
done
if room 500 load; then timeout 50 dist/run.sh bench $W/bench load > $W/run-load.log 2>&1; mark "load rc $?"; fi
(cd $W && tar czf $OUT/s5c6.tgz .)
echo "===== matrix (ours)"; grep -hE "dbrmt" $W/run-matrix.log | grep -v "on the GPU" | sed 's/  */ /g' | head -40
echo "===== baselines"; grep -hE "torch-|ms" $W/run-baselines-*.log | tail -30
echo "===== summary"; printf '%s\n' "${s[@]}"
