#!/usr/bin/env bash
# Builds and runs the wgmma chain microbenchmark (cuda/dev/wgmma_chain.cu): cycles per dependent m64nNk16 for N = 16..256,
# one or two chains per warpgroup, one or two warpgroups, A from shared memory or registers. Arguments go to the
# binary ([links], default 512). The binary goes to target/dev/ (ignored by git); nvcc is $NVCC, else nvcc on PATH,
# else /usr/local/cuda/bin/nvcc; CUDA_LIB (a directory with libcudart_static.a) is added to the link path if set.
set -euo pipefail
cd "$(dirname "$0")/../.."
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
mkdir -p target/dev
if [ ! -x target/dev/wgmma_chain_dev ] || [ cuda/dev/wgmma_chain.cu -nt target/dev/wgmma_chain_dev ]; then
  "$NVCC" -O3 -gencode=arch=compute_90a,code=sm_90a -Icuda ${CUDA_LIB:+-L"$CUDA_LIB"} \
      -o target/dev/wgmma_chain_dev cuda/dev/wgmma_chain.cu 2> target/dev/wgmma_chain_build.log \
      || { cat target/dev/wgmma_chain_build.log; exit 2; }
fi
exec target/dev/wgmma_chain_dev "$@"
