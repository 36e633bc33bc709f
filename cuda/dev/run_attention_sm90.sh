#!/usr/bin/env bash
# Builds and runs the development harness of the sm_90a tensor-core attention (cuda/attention_sm90.cu) on a GPU host
# with CUDA 13 (nvcc, an sm_90 GPU). Arguments go to the harness (see the header of cuda/dev/attention_sm90.cu), e.g.
#     cuda/dev/run_attention_sm90.sh                 # all checks, then the timed shapes (with the SIMT ladder)
#     cuda/dev/run_attention_sm90.sh --quick         # checks only
#     cuda/dev/run_attention_sm90.sh --shape decode --reps 50
# The binary goes to target/dev/ (ignored by git); nvcc is $NVCC, else nvcc on PATH, else /usr/local/cuda/bin/nvcc.
set -euo pipefail
cd "$(dirname "$0")/../.."
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
mkdir -p target/dev
echo "building target/dev/attention_sm90_dev with $NVCC ($("$NVCC" --version | tail -1))"
"$NVCC" -O3 -lineinfo -gencode=arch=compute_90a,code=sm_90a -Xptxas -v -o target/dev/attention_sm90_dev \
    cuda/dev/attention_sm90.cu -lcuda 2>&1 | grep -E "attention_sm90_causal|Used|spill|C75|error|warning" || true
test -x target/dev/attention_sm90_dev
exec target/dev/attention_sm90_dev "$@"
