#!/usr/bin/env bash
# Here (the CPU machine), before the H200 calls: what run_h200.sh needs that git does not carry, cut to what one
# device call carries (64 MiB per call, the tracked tree included: ~51 MiB since the trained memory file is in it).
#
#   train/device_parts.sh            # models/smollm2/parts/gguf.xz.NN (the GGUF, xz -9: 86 MiB, in PART_MIB pieces)
#                                    # and dist.tar.xz (the bundle, ~4 MiB: dist/dbrmt for eval.py)
#
# Then one call per part, back to back (the machine goes back after 30 s idle; ignored files stay while it is warm):
# each copies its part to /var/tmp and the last assembles models/smollm2/ there and starts run_h200.sh in its own
# process session (setsid), later calls poll it — docs/log/device/2026-12-01-h200-s6-lease2-*.sh are the scripts of
# the run that made train/armt-smollm2-135m.safetensors.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
GGUF=models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
PART_MIB="${PART_MIB:-12}"
[ -f "$GGUF" ] || cargo xtask fetch-model smollm2
mkdir -p models/smollm2/parts
rm -f models/smollm2/parts/gguf.*
xz -9 -T2 -c "$GGUF" | split -b "${PART_MIB}M" -d -a 2 - models/smollm2/parts/gguf.xz.
# the release binary with the sm_90a kernels, as a bundle (needs nvcc: NVCC=… as in DESIGN.md / .ci/run)
[ -n "${NVCC:-}" ] || echo "device_parts: NVCC is not set; the binary may be built without kernels" >&2
cargo xtask bundle --gpu
[ "$(strings dist/dbrmt | grep -c sm_90a)" -gt 0 ] || { echo "device_parts: dist/dbrmt has no sm_90a kernels" >&2; exit 1; }
du -sh models/smollm2/parts/* dist.tar.xz
