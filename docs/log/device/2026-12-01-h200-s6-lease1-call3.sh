#!/usr/bin/env bash
# session 6, device call C: the last GGUF part; the GGUF assembled (xz parts -> file, sha256 checked by prepare);
# train/run_h200.sh all (prepare, train1, train2, eval) started in its own process session; then poll.
set -uo pipefail
W=/var/tmp/s6; cp models/smollm2/parts/gguf.xz.* $W/parts/; ls -la $W/parts
cd $W/repo && mkdir -p models/smollm2
python3 - <<'PY'
import lzma, glob, shutil
parts = sorted(glob.glob("/var/tmp/s6/parts/gguf.xz.*"))
print(parts)
import io
data = b"".join(open(p, "rb").read() for p in parts)
open("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "wb").write(lzma.decompress(data))
PY
ls -la models/smollm2
setsid nohup bash -c "cd $W/repo && TRAIN1_MIN=${TRAIN1_MIN:-7} TRAIN2_MIN=${TRAIN2_MIN:-8.5} train/run_h200.sh all > $W/train-all.log 2>&1; echo rc=\$? >> $W/train-all.log" > /dev/null 2>&1 < /dev/null &
sleep 5
bash tmp-device/s6/p.sh ${POLL_S:-540}
