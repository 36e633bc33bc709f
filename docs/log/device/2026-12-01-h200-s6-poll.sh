#!/usr/bin/env bash
# session 6: poll the background jobs for up to $1 seconds (returns early when the training pipeline is done),
# then bring back what exists so far (logs, curves, the latest memory file in parts).
W=/var/tmp/s6; R=$W/repo/runs/h200; T0=$SECONDS; LIM=${1:-540}
while [ $((SECONDS - T0)) -lt "$LIM" ]; do
  grep -q '^rc=' $W/train-all.log 2>/dev/null && break
  sleep 15
done
echo "=== gputests"; grep -E "^test result|FAILED|panicked|passed, |^rc=" $W/gputests.log | tail -n 14
echo "=== train (last lines)"; grep -vE '"kind": "train"' $W/train-all.log 2>/dev/null | tail -n 25
echo "=== last train rows"; grep '"kind": "train"' $W/train-all.log 2>/dev/null | tail -n 3 | cut -c1-220
nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader
if [ -n "${OUT:-}" ]; then
  mkdir -p $W/pack && rm -rf $W/pack/* && cp $W/gputests.log $W/train-all.log $W/pack/ 2>/dev/null
  cp $R/*.jsonl $R/*.json $R/*.log $W/pack/ 2>/dev/null; cp -r $R/eval $W/pack/ 2>/dev/null
  (cd $W/repo && tar czf $OUT/s6.tgz -C $W pack)
  f=$(ls -t $R/armt.safetensors $R/armt-stage*.safetensors 2>/dev/null | head -1)
  [ -n "$f" ] && { echo "memory file: $f"; split -b 15M -d "$f" "$OUT/armt.part-"; basename "$f" > $OUT/armt.name; }
  ls -la $OUT
fi
