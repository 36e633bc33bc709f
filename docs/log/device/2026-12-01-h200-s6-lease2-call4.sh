#!/usr/bin/env bash
# session 6, second lease, last carrying call: the stage-0 memory of the first lease (carried), the GGUF assembled;
# train2 from that memory (stages $STAGES2, fresh optimizer, NaN-skipping train.py) then eval, in their own process
# session; then poll.
set -uo pipefail
W=/var/tmp/s6; cp models/smollm2/parts/* $W/parts/ 2>/dev/null; ls -la $W/parts
cd $W/repo && mkdir -p models/smollm2 runs/h200
python3 - <<'PY'
import lzma, glob
parts = sorted(glob.glob("/var/tmp/s6/parts/gguf.xz.*"))
print(parts)
data = b"".join(open(p, "rb").read() for p in parts)
open("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "wb").write(lzma.decompress(data))
PY
cat $W/parts/stage0.part-* > $W/stage0.safetensors; ls -la $W/stage0.safetensors models/smollm2
setsid nohup bash -c "cd $W/repo && train/run_h200.sh prepare && INIT=$W/stage0.safetensors STAGE_OFFSET=0 TRAIN2_MIN=${TRAIN2_MIN:-8.5} STAGES2='${STAGES2:-2:1:32:3000:0.35,2-4:1:16:3000:0.65}' TRAIN2_ARGS='--lr 5e-4 --lr-wv 1e-5' train/run_h200.sh train2 && train/run_h200.sh eval; echo rc=\$? >> $W/train-all.log" > $W/train-all.log 2>&1 < /dev/null &
sleep 5
bash $W/repo/tmp-device/s6/p.sh ${POLL_S:-540}
