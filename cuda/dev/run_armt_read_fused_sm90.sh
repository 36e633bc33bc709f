#!/usr/bin/env bash
# Builds (when a source changed) and runs the harness of the fused ARMT read (cuda/armt_read_fused_sm90.cu) on a GPU
# host with CUDA 13. Arguments go to the harness (cuda/dev/README.md):
#     cuda/dev/run_armt_read_fused_sm90.sh            # checks, then the 1B and 160M step shapes against the unfused sequence
#     cuda/dev/run_armt_read_fused_sm90.sh --quick    # checks only
# Exit status: the harness's (non-zero on any failed check).
set -euo pipefail
cd "$(dirname "$0")/../.."
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
BIN=target/dev/armt_read_fused_dev
mkdir -p target/dev
if [[ ! -x $BIN || -n $(find cuda/armt_read_fused_sm90.cu cuda/gemm_tf32x3_sm90.cu cuda/dpfp.cu cuda/armt_read.cu cuda/common cuda/sm90 cuda/dev/armt_read_fused_sm90.cu -newer $BIN 2>/dev/null) ]]; then
    echo "building $BIN with $NVCC ($("$NVCC" --version | tail -1))"
    "$NVCC" -O3 -lineinfo -gencode=arch=compute_90a,code=sm_90a -o $BIN cuda/dev/armt_read_fused_sm90.cu -lcuda || exit 2
fi
exec timeout 150 $BIN "$@"
