#!/usr/bin/env bash
# The measurement suite of a gemm_sm90 version (what the lead runs on the H200 in one call; ~3-4 min, most of it the
# two builds; each step has a time limit so that a hang cannot eat the call):
#   1. run_gemm_tf32x3_sm90.sh               the memory-path 3xTF32 kernels: checks (1e-5 vs a double reference),
#                                             bitwise, then timing vs cuBLAS SGEMM / TF32 and gemm_f32.cu
#   2. run_gemm_sm90.sh                       all checks + the timed shapes at the rule's tile width, exported
#                                             kernels (the headline table and the "under 90%" list)
#   3. --skip-checks --bn all --epilogue exp,stg,off,offx --profile
#                                             every width of every shape; where v4 changed the export (f32 at
#                                             128..160, SwiGLU) also v3's inline epilogue (stg), and the offloaded
#                                             bf16 (off, 128/144/152/192) and exact-silu SwiGLU (offx) variants;
#                                             each followed by its profiled run (SM clock, per-tile phases)
# Each step's exit status is printed; the suite exits non-zero if any step failed. Arguments: none.
cd "$(dirname "$0")/../.."
rc=0
step() {
    local limit=$1
    shift
    echo; echo "=================== $* (limit ${limit} s) ==================="
    timeout -k 10 "$limit" "$@"; local r=$?
    [[ $r -eq 124 || $r -eq 137 ]] && echo "TIMED OUT after ${limit} s"
    echo "=================== exit $r: $* ==================="
    [[ $r -ne 0 ]] && rc=1
    return 0
}
step 150 cuda/dev/run_gemm_tf32x3_sm90.sh
step 200 cuda/dev/run_gemm_sm90.sh
step 150 cuda/dev/run_gemm_sm90.sh --skip-checks --bn all --epilogue exp,stg,off,offx --profile --reps 15
exit $rc
