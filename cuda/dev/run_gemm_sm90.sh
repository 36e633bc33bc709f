#!/usr/bin/env bash
# Builds and runs the development harness of the v2 grouped GEMM (cuda/gemm_sm90.cu) on a GPU host with CUDA 13
# (nvcc, cuBLAS, an sm_90 GPU). Arguments go to the harness (see cuda/dev/README.md), e.g.
#     cuda/dev/run_gemm_sm90.sh                 # all checks, then the timed shapes with the BN rule
#     cuda/dev/run_gemm_sm90.sh --quick         # checks only (~20 s)
#     cuda/dev/run_gemm_sm90.sh --bn all --shape 1B
# The binary goes to target/dev/ (ignored by git); nvcc is $NVCC, else nvcc on PATH, else /usr/local/cuda/bin/nvcc.
set -euo pipefail
cd "$(dirname "$0")/../.."
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
mkdir -p target/dev
echo "building target/dev/gemm_sm90_dev with $NVCC ($("$NVCC" --version | tail -1))"
"$NVCC" -O3 -lineinfo -gencode=arch=compute_90a,code=sm_90a -o target/dev/gemm_sm90_dev cuda/dev/gemm_sm90.cu \
    -lcuda -lcublas
exec target/dev/gemm_sm90_dev "$@"
