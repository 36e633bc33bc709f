#!/usr/bin/env bash
# The measurement suite of a gemm_sm90 version (what the lead runs on the H200 in one call; ~8-10 min in all):
#   1. run_gemm_sm90.sh                     all checks + the timed shapes at the rule's tile width (the headline)
#   2. --skip-checks --bn all --profile     every tile width of every shape, with the per-phase profile
#   3. --skip-checks --bn 192,256 --epilogue both --cluster both   v2 bulk-copy epilogue and the 2-CTA multicast variant
#   4. run_gemm_tf32x3_sm90.sh              the memory-path 3xTF32 kernels: checks, then timing
# Each step's exit status is printed; the suite exits non-zero if any step failed.
cd "$(dirname "$0")/../.."
rc=0
step() {
    echo; echo "=================== $* ==================="
    "$@"; local r=$?
    echo "=================== exit $r: $* ==================="
    [[ $r -ne 0 ]] && rc=1
    return 0
}
step cuda/dev/run_gemm_sm90.sh
step cuda/dev/run_gemm_sm90.sh --skip-checks --bn all --profile --reps 15
step cuda/dev/run_gemm_sm90.sh --skip-checks --bn 192,256 --epilogue both --cluster both --reps 15
step cuda/dev/run_gemm_tf32x3_sm90.sh
exit $rc
