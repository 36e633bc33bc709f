#!/usr/bin/env bash
# Session 20 call 5 — PREPARED, NOT RUN (the session's device time was spent): main's two-stream rule where it was not
# measured. SmolLM2-135M prefill at T = 1024 (halves of 15 cells: 5.1 waves, inside the rule's 4..16: two streams on by
# default) and Llama-3.2-1B at T = 1024 131K as the reference, on / off alternating three rounds (`bench streams
# --streams 1` times one prefill: its serial_ms); the decode rows (one stream by construction) to show them unchanged;
# nvidia-smi during the 1B row. B = dist/ of main.
source docs/log/device/lib.sh s20c5
run_test dbrmt-runtime__gpu_engine two_stream llama_1b_shape
for r in 1 2 3; do for v in on off; do
  for m in "smollm2-135m 1024 32768" "llama-3.2-1b 1024 131072"; do set -- $m
    [ $r = 1 ] && [ $v = on ] && [ $1 = llama-3.2-1b ] && smi_on 1b
    timeout 120 env DBRMT_TWO_STREAMS=$v dist/dbrmt bench streams --model $1 --segment $2 --tokens $3 --streams 1 --out $W/s-$1-$v.jsonl > $W/s-$1-$v-$r.log 2>&1
    mark "$1 $v rc $? $(grep -h 'bench: streams' $W/s-$1-$v-$r.log | grep -oE 'one after another [0-9.]+ ms')"
    [ $r = 1 ] && [ $v = on ] && [ $1 = llama-3.2-1b ] && smi_off 1b
  done
done; done
timeout 120 dist/dbrmt bench matrix --filter decode --out $W/decode.jsonl > $W/decode.log 2>&1
mark "decode rows rc $? $(grep -hE 'dbrmt-' $W/decode.log | cut -c1-90 | tr -s ' ' | tr '\n' ';')"
finish
