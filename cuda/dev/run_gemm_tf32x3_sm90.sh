#!/usr/bin/env bash
# Builds (when a source changed) and runs the harness of the f32 memory-path GEMMs on tensor cores
# (cuda/gemm_tf32x3_sm90.cu) on a GPU host with CUDA 13. Arguments go to the harness (cuda/dev/README.md):
#     cuda/dev/run_gemm_tf32x3_sm90.sh            # checks, then the three memory shapes against cuBLAS and gemm_f32.cu
#     cuda/dev/run_gemm_tf32x3_sm90.sh --quick    # checks only
# Exit status: the harness's (non-zero on any failed check).
set -euo pipefail
cd "$(dirname "$0")/../.."
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
BIN=target/dev/gemm_tf32x3_dev
mkdir -p target/dev
if [[ ! -x $BIN || -n $(find cuda/gemm_tf32x3_sm90.cu cuda/gemm_f32.cu cuda/common cuda/sm90 cuda/dev/gemm_tf32x3_sm90.cu -newer $BIN 2>/dev/null) ]]; then
    echo "building $BIN with $NVCC ($("$NVCC" --version | tail -1))"
    "$NVCC" -O3 -lineinfo -gencode=arch=compute_90a,code=sm_90a -o $BIN cuda/dev/gemm_tf32x3_sm90.cu -lcuda -lcublas \
        || exit 2
fi
exec $BIN "$@"
