#!/usr/bin/env bash
# The H200 run: train the SmolLM2 ARMT memory, evaluate it through dbrmt, print a short table last.
#
#   train/run_h200.sh [all|prepare|train1|train2|eval]      (default: all)
#
# Phases (each well under the device tool's 10-minute limit per command; ignored outputs such as runs/ stay on the
# warm machine between calls, so the phases can be separate calls):
#   prepare  assemble models/smollm2 from carried parts if needed, check its sha256, python/torch/GPU, dbrmt
#   train1   the W_mv learning-rate probe, then stage 0: 2 segments, 1 fact, LR 1e-3 (TRAIN1_MIN, default 4 min);
#            writes armt-stage0.safetensors
#   train2   from that memory with a fresh optimizer, LR 5e-4: stage 1, 2-3 segments, then stage 2, 2-4 segments,
#            1 fact                                                             (TRAIN2_MIN, default 9 min)
#   (this is the recipe that made train/armt-smollm2-135m.safetensors on 2026-12-01; going on from stage 0 to 4
#   segments with stage 0's optimizer and LR 1e-3 turned every weight into NaN at the first 4-segment batch: a memory
#   trained on 2 segments only has never run the delta-rule update, and its recurrence diverged — docs/trained-memory.md)
#   eval     exact match at 2, 8, 32 segments of 1024 through dbrmt on the GPU, control with the memory zeroed,
#            engine-vs-training parity at 8 segments; the table last                 (about 2-4 min)
#
# Needs on the host: python3 with torch (CUDA), numpy, safetensors (the H200 image has them); the repository; the
# GGUF at models/smollm2/ (or its parts, see train/README.md: 98 MB is more than one call carries); a dbrmt
# binary built for sm_90a at dist/dbrmt (or $DBRMT). Nothing is downloaded. Outputs under runs/h200/ ($RUN).
# A dry run of the whole flow on a CPU (minutes, tiny shapes; checks the script, not the training):
#   RUN=runs/dry DEVICE=cpu DTYPE=fp32 SEG=48 STAGES1=2:1:1:1:0.5,2-3:2:1:1:0.5 STAGES2=2-4:3:1:1:1 \
#   PROBE_LR_WV=1e-5,3e-5 PROBE_STEPS=1 EVAL_EVERY=1000 EVAL_DOCS_TRAIN=2 EVAL_SEGMENTS=2,3 EVAL_DOCS=2 PARITY=3 \
#   DBRMT=target/release/dbrmt PYTHON=/path/to/venv/bin/python train/run_h200.sh all
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PHASE="${1:-all}"
RUN="${RUN:-runs/h200}"
GGUF="models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
DBRMT="${DBRMT:-dist/dbrmt}"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
mkdir -p "$RUN"

# The curriculum: segs:facts:batch:max_steps:budget_share (see train/train.py). T = 1024, M = 16, d_mem = 64.
STAGES1="${STAGES1:-2:1:32:1500:1}"
STAGES2="${STAGES2:-2-3:1:24:3000:0.5,2-4:1:16:3000:0.5}"
DEVICE="${DEVICE:-cuda}"
COMMON=(--gguf "$GGUF" --out "$RUN" --segment-size "${SEG:-1024}" --mem-tokens 16 --d-mem 64 --device "$DEVICE"
        --dtype "${DTYPE:-bf16}" --eval-every "${EVAL_EVERY:-100}" --eval-docs "${EVAL_DOCS_TRAIN:-64}")

prepare() {
  if [ ! -f "$GGUF" ] && compgen -G "models/smollm2/parts/gguf.xz.*" >/dev/null; then
    # the xz-compressed GGUF in parts (train/device_parts.sh); python's lzma, as the host may have no xz
    "$PY" -c 'import glob, lzma, sys; open(sys.argv[1], "wb").write(lzma.decompress(b"".join(open(p, "rb").read() for p in sorted(glob.glob("models/smollm2/parts/gguf.xz.*")))))' "$GGUF"
  fi
  [ -f "$GGUF" ] || { echo "run_h200: no $GGUF (and no models/smollm2/parts/)" >&2; exit 1; }
  got=$(sha256sum "$GGUF" | cut -d' ' -f1)
  [ "$got" = "$SHA" ] || { echo "run_h200: $GGUF has sha256 $got, expected $SHA" >&2; exit 1; }
  "$PY" -c 'import torch, numpy, safetensors; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
  [ -x "$DBRMT" ] && "$DBRMT" --version || echo "run_h200: no dbrmt at $DBRMT (needed by eval)" >&2
}

train1() {
  "$PY" train/train.py "${COMMON[@]}" --stages "$STAGES1" --budget-min "${TRAIN1_MIN:-4}" \
    --probe-lr-wv "${PROBE_LR_WV:-3e-6,1e-5,3e-5,1e-4}" --probe-steps "${PROBE_STEPS:-40}" 2>&1 | tee -a "$RUN/train1.log"
}

# INIT: where train2 starts — an --armt file (memory, fresh optimizer; default train1's armt-stage0.safetensors) or
# a ckpt.pt (memory + optimizer); TRAIN2_ARGS: more train.py options
train2() {
  init="${INIT:-$RUN/armt-stage0.safetensors}"
  [ -f "$init" ] || { echo "run_h200: train1 first (no $init)" >&2; exit 1; }
  # shellcheck disable=SC2086
  "$PY" train/train.py "${COMMON[@]}" --stages "$STAGES2" --budget-min "${TRAIN2_MIN:-9}" --init "$init" \
    --stage-offset "${STAGE_OFFSET:-1}" ${TRAIN2_ARGS:---lr 5e-4 --lr-wv 1e-5} 2>&1 | tee -a "$RUN/train2.log"
}

eval_() {
  [ -f "$RUN/armt.safetensors" ] || { echo "run_h200: no $RUN/armt.safetensors: train first" >&2; exit 1; }
  "$PY" train/eval.py --dbrmt "$DBRMT" --gguf "$GGUF" --armt "$RUN/armt.safetensors" \
    --segments "${EVAL_SEGMENTS:-2,8,32}" --docs "${EVAL_DOCS:-100}" --device "$DEVICE" --out "$RUN/eval" \
    --parity "${PARITY:-8}" 2>&1 | tee "$RUN/eval.log"
}

# What comes back from the device tool: $OUT takes at most 8 files of 16 MiB; the bf16 memory file is ~24 MB, so it
# goes in two parts (cat armt.part-* > armt.safetensors here).
collect() {
  [ -n "${OUT:-}" ] || return 0
  for f in curves.jsonl summary.json eval/eval.json eval.log train1.log train2.log; do
    [ -f "$RUN/$f" ] && cp "$RUN/$f" "$OUT/$(basename "$f")"
  done
  [ -f "$RUN/armt.safetensors" ] && split -b 15M -d "$RUN/armt.safetensors" "$OUT/armt.part-"
  ls -la "$OUT" >&2
}

# the table, last
table() { echo; sed -n '/^exact match on held-out facts/,$p' "$RUN/eval.log"; }

case "$PHASE" in
  prepare) prepare ;;
  train1) train1; collect ;;
  train2) train2; collect ;;
  eval) eval_; collect; table ;;
  all) prepare; train1; train2; eval_; collect; table ;;
  *) echo "usage: $0 [all|prepare|train1|train2|eval]" >&2; exit 2 ;;
esac
