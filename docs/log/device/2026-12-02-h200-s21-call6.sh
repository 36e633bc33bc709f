#!/usr/bin/env bash
# Session 21 call 6: main at 5ec3868 (host-side cleanups: gemm_tf32x3's epilogue enum, DBRMT_TWO_STREAMS=force read
# once) on the GPU — the tf32x3 checks, the split and prep entries' checks, gpu_engine, a forced two-stream run;
# three warpgroups' attention at the one-stream T = 2048 / 4096 1B steps end to end (DBRMT_ATTENTION_WG3 on / off,
# alternating); and, for the next session, ncu's warp-stall sampling of the write's update + split launch
# (gemm_sm90_tn_f32_f32_f32_tf32x3_split: 0.111 ms a 1B step against ~0.05 of bytes). B = dist/ of main.
source docs/log/device/lib.sh s21c6
run_test dbrmt-kernels__gpu_gemm tf32x3
run_test dbrmt-kernels__gpu_armt memory_update_writes_the_split write_prep_in_the_product
run_test dbrmt-runtime__gpu_engine
timeout 120 env DBRMT_TWO_STREAMS=force dist/dbrmt bench streams --model llama-160m --segment 512 --tokens 32768 --streams 1 --out $W/s-force.jsonl > $W/s-force.log 2>&1
mark "160m 32k two streams forced rc $? $(grep -h 'bench: streams' $W/s-force.log | grep -oE 'one after another [0-9.]+ ms')"
for r in 1 2; do for v in on off; do for m in 1b-t2048-32k 1b-t4096-32k; do
  timeout 120 env DBRMT_ATTENTION_WG3=$v dist/dbrmt bench matrix --filter $m --out $W/m-$m-$v.jsonl > $W/m-$m-$v-$r.log 2>&1
  mark "$m wg3=$v rc $? $(grep -hE 'dbrmt-diagonal' $W/m-$m-$v-$r.log | head -1 | tr -s ' ' | cut -c1-80)"
done; done; done
stall_profile gemm_sm90_tn_f32_f32_f32_tf32x3_split 1b-t1024-32k
finish
