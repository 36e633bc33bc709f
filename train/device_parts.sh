#!/usr/bin/env bash
# Here (the CPU machine), before the H200 calls: what run_h200.sh needs that git does not carry, cut to what one
# device call carries (the working tree, ~27 MiB tracked, plus carried paths: 64 MiB in all per call).
#
#   train/device_parts.sh            # models/smollm2/parts/gguf.{00,01,02} (36 MiB, 36 MiB, ~22 MiB) and dist/dbrmt
#
# Then, one call each (ignored files stay on the warm machine between calls):
#   call 1  carry [models/smollm2/parts/gguf.00]                       command: true
#   call 2  carry [models/smollm2/parts/gguf.01]                       command: true
#   call 3  carry [models/smollm2/parts/gguf.02, dist/dbrmt]           command: train/run_h200.sh prepare && train/run_h200.sh train1
#   call 4  (nothing carried)                                          command: train/run_h200.sh train2
#   call 5  (nothing carried)                                          command: train/run_h200.sh eval
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
GGUF=models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$GGUF" ] || cargo xtask fetch-model smollm2
mkdir -p models/smollm2/parts dist
rm -f models/smollm2/parts/gguf.*
split -b 36M -d -a 2 "$GGUF" models/smollm2/parts/gguf.
# the release binary with the sm_90a kernels (needs nvcc: NVCC=… as in DESIGN.md / .ci/run)
[ -n "${NVCC:-}" ] || echo "device_parts: NVCC is not set; the binary may be built without kernels" >&2
cargo build --release -p dbrmt-cli
cp "${CARGO_TARGET_DIR:-target}/release/dbrmt" dist/dbrmt
[ "$(strings dist/dbrmt | grep -c sm_90a)" -gt 0 ] || { echo "device_parts: dist/dbrmt has no sm_90a kernels" >&2; exit 1; }
ls -la models/smollm2/parts dist/dbrmt
du -sh models/smollm2/parts/* dist/dbrmt
