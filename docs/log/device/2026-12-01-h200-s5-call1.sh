#!/usr/bin/env bash
# session 5, device call 1: integration (main + fused-read + requests-speed): fused harness, every GPU test, selftest,
# step profile fused vs unfused, 1B/160M 131K and the decode rows of the matrix.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; s=()
mark() { s+=("[$((SECONDS-T0))s] $1"); echo "### $1"; }
room() { [ $((SECONDS-T0)) -lt $1 ] || { mark "skipped $2 (time)"; return 1; }; }
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.sm,driver_version --format=csv,noheader
timeout 170 bash tmp-device/int/cuda/dev/run_armt_read_fused_sm90.sh > $OUT/fused_harness.log 2>&1; mark "fused harness rc $?"
for t in dbrmt-kernels__gpu_armt dbrmt-kernels__gpu_gemm dbrmt-kernels__gpu_layer_ops dbrmt-kernels__gpu_poison dbrmt-runtime__gpu_engine dbrmt-runtime__gpu_requests dbrmt-cli__gpu_generate dbrmt-cli__gpu_serve; do
  room 420 $t || continue
  if timeout 150 dist/tests/$t --ignored --test-threads=1 > /tmp/t.log 2>&1; then mark "$t ok $(grep -E '^test result' /tmp/t.log | tail -1)"; else mark "$t FAILED rc $?"; grep -E "panicked|differs|FAIL|mismatch" -A3 /tmp/t.log | head -12; fi
  echo "===== $t" >> $OUT/tests.log; cat /tmp/t.log >> $OUT/tests.log
done
if room 450 selftest; then (cd /tmp && timeout 100 $R/dist/dbrmt selftest > $OUT/selftest.log 2>&1) && mark "selftest $(tail -1 $OUT/selftest.log)" || { mark "selftest FAILED $(tail -1 $OUT/selftest.log)"; grep FAIL $OUT/selftest.log | head -5; }; fi
mkdir -p $OUT/bench $OUT/bench-unf
if room 480 profile; then timeout 50 dist/run.sh bench $OUT/bench profile > $OUT/p-fused.log 2>&1; mark "profile fused rc $?"; fi
if room 500 profile-unfused; then DBRMT_MEMORY=unfused timeout 50 dist/run.sh bench $OUT/bench-unf profile > $OUT/p-unfused.log 2>&1; mark "profile unfused rc $?"; fi
for f in 1b-t1024-131k 160m-t512-131k decode; do
  room 540 "matrix $f" || continue
  BENCH_FILTER=$f timeout 45 dist/run.sh bench $OUT/bench matrix > /tmp/m.log 2>&1; mark "matrix $f rc $? $(grep -E 'bench: ' /tmp/m.log | sed 's/bench: //' | tr '\n' '|' | cut -c1-400)"; cat /tmp/m.log >> $OUT/m.log
done
echo "===== fused harness tail"; tail -22 $OUT/fused_harness.log
echo "===== profile fused"; grep -v "^#" $OUT/p-fused.log | grep -A22 "bench: profile" | head -50
echo "===== profile unfused"; grep -E "bench: profile|read" $OUT/p-unfused.log | head -14
echo "===== summary"; printf '%s\n' "${s[@]}"
