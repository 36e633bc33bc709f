#!/usr/bin/env bash
# session 6, device call A: a stable copy of the tree at /var/tmp/s6/repo, the bundle unpacked there, the GPU tests +
# selftest started in their own process session (they outlive this call), GGUF part 0 kept.
set -uo pipefail
W=/var/tmp/s6; mkdir -p $W/parts
cp models/smollm2/parts/gguf.xz.* $W/parts/
rm -rf $W/repo && mkdir -p $W/repo && cp -a . $W/repo/ && rm -rf $W/repo/models/smollm2/parts
cd $W/repo && rm -rf dist && tar xzf tmp-device/dist.tgz
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader
python3 -c 'import torch, numpy, safetensors; print("torch", torch.__version__, torch.cuda.get_device_name(0))'
setsid nohup bash -c "cd $W/repo && export DBRMT_REPO_ROOT=$W/repo && dist/run.sh > $W/gputests.log 2>&1; echo rc=\$? >> $W/gputests.log" > /dev/null 2>&1 < /dev/null &
sleep 20; tail -n 4 $W/gputests.log; ls -la $W/parts
