#!/usr/bin/env bash
# Session 21 call 1: (1) where the tensor-core attention's time goes at the 1B step (16 x 1152, 32/8, hd 64; ~92% of
# cuDNN SDPA): the dev harness's checks, its timing + phase profile, and ncu warp-stall sampling of one production
# launch (SourceCounters by SASS line); (2) session 20's prepared call 5: SmolLM2-135M's T = 1024 prefill inside the
# two-stream rule (halves of 5.1 waves), on / off alternating, the 1B T = 1024 131K row as the reference; the decode
# rows. B = dist/ of main (3e46a3b).
source docs/log/device/lib.sh s21c1
bash cuda/dev/run_attention_sm90.sh --quick > $W/attn-checks.log 2>&1
mark "attention harness checks rc $? $(grep -hE '^(PASSED|FAILED)' $W/attn-checks.log | tail -1)"
grep -A2 "Compiling entry function 'attention_sm90" target/dev/attention_sm90_build.log | grep -E "registers|spill" | head -4 > $W/attn-ptxas.txt
target/dev/attention_sm90_dev --skip-checks --shape "1B step 16x1152" --no-simt > $W/attn-1b.log 2>&1
mark "attention 1B step rc $? $(grep -hE '^  1B step 16x1152' $W/attn-1b.log | head -1 | tr -s ' ' | cut -c1-150)"
grep -h "profile:" $W/attn-1b.log | head -1 | cut -c1-300
k=attention_sm90_causal_bf16_hd64
timeout 150 $NCU --clock-control none -k regex:"^$k\$" --launch-skip 3 --launch-count 1 \
  --section SourceCounters --section WarpStateStats --section SpeedOfLight --section ComputeWorkloadAnalysis \
  --section InstructionStats --section SchedulerStats -o $W/$k \
  target/dev/attention_sm90_dev --skip-checks --shape "1B step 16x1152" --no-simt --no-variants --reps 2 > $W/$k.log 2>&1
mark "$k ncu rc $?"
timeout 60 $NCU -i $W/$k.ncu-rep --page source --csv --print-source sass > $W/$k.csv 2> /dev/null
timeout 60 $NCU -i $W/$k.ncu-rep --page details > $W/$k-details.txt 2> /dev/null
python3 docs/log/device/stall_summary.py $W/$k.csv | tee $W/$k-summary.txt | head -30
gzip $W/$k.csv; rm -f $W/$k.ncu-rep
run_test dbrmt-runtime__gpu_engine two_stream llama_1b_shape
for r in 1 2; do for v in on off; do
  for m in "smollm2-135m 1024 32768" "llama-3.2-1b 1024 131072"; do set -- $m
    timeout 120 env DBRMT_TWO_STREAMS=$v dist/dbrmt bench streams --model $1 --segment $2 --tokens $3 --streams 1 --out $W/s-$1-$v.jsonl > $W/s-$1-$v-$r.log 2>&1
    mark "$1 $v rc $? $(grep -h 'bench: streams' $W/s-$1-$v-$r.log | grep -oE 'one after another [0-9.]+ ms')"
  done
done; done
timeout 120 dist/dbrmt bench matrix --filter decode --out $W/decode.jsonl > $W/decode.log 2>&1
mark "decode rows rc $? $(grep -hE 'dbrmt-' $W/decode.log | cut -c1-90 | tr -s ' ' | tr '\n' ';')"
finish
