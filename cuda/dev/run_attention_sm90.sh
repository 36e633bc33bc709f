#!/usr/bin/env bash
# Builds and runs the development harness of the sm_90a tensor-core attention (cuda/attention_sm90.cu) on a GPU host
# with CUDA 13 (nvcc, an sm_90 GPU). Arguments go to the harness (see the header of cuda/dev/attention_sm90.cu), e.g.
#     cuda/dev/run_attention_sm90.sh                 # all checks, then the timed shapes (SIMT ladder, the no-pingpong /
#                                                    # no-sections A/B columns, one profiling run per shape); < 2 min
#     cuda/dev/run_attention_sm90.sh --quick         # checks only
#     cuda/dev/run_attention_sm90.sh --shape decode --reps 50
#     cuda/dev/run_attention_sm90.sh --no-variants --no-simt   # production timings only
# The binary goes to target/dev/ (ignored by git); nvcc is $NVCC, else nvcc on PATH, else /usr/local/cuda/bin/nvcc.
set -euo pipefail
cd "$(dirname "$0")/../.."
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
mkdir -p target/dev
rm -f target/dev/attention_sm90_dev
echo "building target/dev/attention_sm90_dev with $NVCC ($("$NVCC" --version | tail -1))"
# The ptxas report of the two kernels (registers, spills, wgmma serialisation warnings), then the harness.
"$NVCC" -O3 -lineinfo -gencode=arch=compute_90a,code=sm_90a -Xptxas -v -o target/dev/attention_sm90_dev \
    cuda/dev/attention_sm90.cu -lcuda > target/dev/attention_sm90_build.log 2>&1 || { cat target/dev/attention_sm90_build.log; exit 1; }
grep -A2 -E "Compiling entry function 'attention_sm90" target/dev/attention_sm90_build.log | grep -vE "^--$" || true
grep -E "C75[0-9]{2}|error" target/dev/attention_sm90_build.log || true
exec target/dev/attention_sm90_dev "$@"
