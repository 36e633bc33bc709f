#!/usr/bin/env bash
# Builds (when a source changed) and runs the development harness of the grouped bf16 GEMM (cuda/gemm_sm90.cu) on a
# GPU host with CUDA 13 (nvcc, cuBLAS, an sm_90 GPU). Arguments go to the harness (see cuda/dev/README.md), e.g.
#     cuda/dev/run_gemm_sm90.sh                          # all checks, then the timed shapes with the tile rule (~2 min)
#     cuda/dev/run_gemm_sm90.sh --quick                  # checks only (~20 s)
#     cuda/dev/run_gemm_sm90.sh --skip-checks --bn all --profile
# The binary goes to target/dev/ (ignored by git); nvcc is $NVCC, else nvcc on PATH, else /usr/local/cuda/bin/nvcc.
# Exit status: the harness's (non-zero on any failed check, 2 on a usage or CUDA error).
set -euo pipefail
cd "$(dirname "$0")/../.."
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
BIN=target/dev/gemm_sm90_dev
mkdir -p target/dev
if [[ ! -x $BIN || -n $(find cuda/gemm_sm90.cu cuda/sm90 cuda/dev/gemm_sm90.cu -newer $BIN 2>/dev/null) ]]; then
    echo "building $BIN with $NVCC ($("$NVCC" --version | tail -1))"
    # The ptxas report goes to a log; its spill lines (the exported kernels must have none; the profiled Off twins
    # spill their 8-byte record pointer once) are printed.
    "$NVCC" -O3 -lineinfo -gencode=arch=compute_90a,code=sm_90a -Xptxas -v -o $BIN cuda/dev/gemm_sm90.cu -lcuda -lcublas \
        > target/dev/gemm_sm90_build.log 2>&1 || { cat target/dev/gemm_sm90_build.log; exit 2; }
    grep -B3 -E "[1-9][0-9]* bytes spill" target/dev/gemm_sm90_build.log | grep -oE "entry function '[^']+'|[0-9]+ bytes spill stores" \
        | paste - - | sed 's/^/  ptxas: /' || true
fi
exec $BIN "$@"
