#!/usr/bin/env bash
# Session 21 call 3: attention v4 as it is to merge — three consumer warpgroups at hd 64 with grouped queries, two
# at R = 1 (the 160M model) and at hd 128 (the launcher picks the entry; docs/log/attention_sm90.md §8). The harness
# (every check, the other-count variant bitwise, every shape timed against it), the Rust GPU tests (attention checks
# with the new R = 1 cases, gpu_engine, gpu_requests), selftest, `bench kernels` + SDPA (the report's tables), and
# the 131K rows with DBRMT_ATTENTION_WG3=on/off alternating (the same binary), decode rows. Also the RMSNorm's
# warp-per-row entries for rows of up to 2048 columns (`_warp_wide`, the 1B model's norms): `bench kernels` times
# them beside the block-per-row entry, the layer-op checks cover their bits. B = dist/ of this tree.
source docs/log/device/lib.sh s21c3
timeout 300 bash cuda/dev/run_attention_sm90.sh --no-simt > $W/attn.log 2>&1
mark "attention harness rc $? $(grep -hE '^(PASSED|FAILED)' $W/attn.log | tail -1)"
grep -hE "^  (1B step 16x1152|160M step|SmolLM2 step|3B 1x4224|8B 1x4224|3B step|1B decode 16x1)" $W/attn.log | tr -s ' ' | cut -c1-170 | tee -a $W/marks.txt
run_test dbrmt-kernels__gpu_layer_ops
run_test dbrmt-runtime__gpu_engine
run_test dbrmt-runtime__gpu_requests
timeout 200 dist/dbrmt selftest > $W/selftest.log 2>&1
mark "selftest rc $? $(tail -1 $W/selftest.log | cut -c1-100)"
timeout 200 dist/dbrmt bench kernels --out $W/kernels.jsonl > $W/kernels.log 2>&1
mark "bench kernels rc $? $(grep -hE 'attention.*1b-16x1152.*attention_sm90' $W/kernels.log | head -1 | tr -s ' ' | cut -c1-120)"
grep -hE 'rms_norm' $W/kernels.log | tr -s ' ' | cut -c1-120 | tee -a $W/marks.txt
timeout 200 python3 benches/python/sdpa_attention.py --backends flash,cudnn --out $W/sdpa.jsonl > $W/sdpa.log 2>&1
mark "sdpa rc $?"
python3 - $W/sdpa.jsonl <<'PY' | tee -a $W/marks.txt
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get("ms") and r.get("kind") == "attention": print(f"  sdpa {r.get('shape')} {r.get('method')} {r['ms']:.4f} ms {r.get('tflops') or 0:.1f} TFLOP/s")
PY
for r in 1 2 3; do for v in on off; do
  timeout 120 env DBRMT_ATTENTION_WG3=$v dist/dbrmt bench matrix --filter 1b-t1024-131k --out $W/m-1b-$v.jsonl > $W/m-1b-$v-$r.log 2>&1
  mark "1b 131k wg3=$v rc $? $(grep -hE 'dbrmt-diagonal' $W/m-1b-$v-$r.log | head -1 | tr -s ' ' | cut -c1-90)"
done; done
timeout 120 dist/dbrmt bench matrix --filter 160m-t512-131k --out $W/m-160m.jsonl > $W/m-160m.log 2>&1
mark "160m 131k rc $? $(grep -hE 'dbrmt-diagonal' $W/m-160m.log | head -1 | tr -s ' ' | cut -c1-90)"
for v in on off; do
  timeout 120 env DBRMT_ATTENTION_WG3=$v dist/dbrmt bench streams --model smollm2-135m --segment 1024 --tokens 32768 --streams 1 --out $W/s-smol-$v.jsonl > $W/s-smol-$v.log 2>&1
  mark "smollm2 32k wg3=$v rc $? $(grep -h 'bench: streams' $W/s-smol-$v.log | grep -oE 'one after another [0-9.]+ ms')"
done
timeout 120 dist/dbrmt bench matrix --filter decode --out $W/decode.jsonl > $W/decode.log 2>&1
mark "decode rows rc $? $(grep -hE 'decode-4k +dbrmt ' $W/decode.log | tr -s ' ' | cut -c1-80 | tr '\n' ';')"
timeout 90 dist/dbrmt bench profile --model llama-3.2-1b --segment 1024 --tokens 131072 --out $W/p-1b.jsonl > $W/p-1b.log 2>&1
mark "profile 1b rc $? $(grep -hE '^ +(attention|rms_norm) ' $W/p-1b.log | tr -s ' ' | tr '\n' ';')"
finish
