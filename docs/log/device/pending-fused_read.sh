#!/usr/bin/env bash
# session 4, device call 1: fused read (armt_read_fused_sm90) verification, tests, profile fused vs unfused, e2e
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; s=()
mark() { s+=("[$((SECONDS-T0))s] $1"); echo "### $1"; }
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.sm --format=csv,noheader
timeout 170 bash cuda/dev/run_armt_read_fused_sm90.sh > $OUT/fused_harness.log 2>&1; mark "fused harness rc $?"
for t in dbrmt-kernels__gpu_armt dbrmt-runtime__gpu_engine dbrmt-cli__gpu_generate dbrmt-runtime__gpu_requests; do
  if [ -x dist/tests/$t ]; then
    if timeout 150 dist/tests/$t --ignored --test-threads=1 > /tmp/t.log 2>&1; then mark "$t ok $(grep -E '^test result' /tmp/t.log | tail -1)"; else mark "$t FAILED"; grep -E "panicked|differs|FAIL" -A2 /tmp/t.log | head -8; fi; cat /tmp/t.log >> $OUT/tests.log
  else mark "$t missing"; fi
done
(cd /tmp && timeout 120 $R/dist/dbrmt selftest > $OUT/selftest.log 2>&1) && mark "selftest $(tail -1 $OUT/selftest.log)" || { mark "selftest FAILED $(tail -1 $OUT/selftest.log)"; grep FAIL $OUT/selftest.log | head -5; }
mkdir -p $OUT/bench $OUT/bench-unf
timeout 60 dist/run.sh bench $OUT/bench profile 2> $OUT/p-fused.log; mark "profile fused rc $?"
DBRMT_MEMORY=unfused timeout 60 dist/run.sh bench $OUT/bench-unf profile 2> $OUT/p-unfused.log; mark "profile unfused rc $?"
BENCH_FILTER=1b-t1024-131k timeout 60 dist/run.sh bench $OUT/bench matrix 2> /tmp/m1.log; cat /tmp/m1.log >> $OUT/m.log; mark "$(grep -E 'dbrmt-' /tmp/m1.log | tr '\n' '|')"
BENCH_FILTER=160m-t512-131k timeout 40 dist/run.sh bench $OUT/bench matrix 2> /tmp/m2.log; cat /tmp/m2.log >> $OUT/m.log; mark "$(grep -E 'dbrmt-' /tmp/m2.log | tr '\n' '|')"
echo "===== fused harness tail"; tail -30 $OUT/fused_harness.log
echo "===== profile fused (1B)"; grep -A28 "bench: profile" $OUT/p-fused.log | head -34
echo "===== profile unfused (1B)"; grep -A28 "bench: profile" $OUT/p-unfused.log | grep -iE "read|step|total|ms" | head -14
echo "===== summary"; printf '%s\n' "${s[@]}"
