#!/usr/bin/env bash
# Session 20 call 2 (call 1 failed at the prep check's launcher bounds, then two starts were refused): B = branch
# two-streams = prep-in-ka (main merged; the prep check fixed) + `bench streams` + two-stream prefill steps
# (DBRMT_TWO_STREAMS, on by default in this branch). (a) the prep-in-ka check and the write / update-split suites,
# gpu_engine (diagonal on two streams == sequential, bitwise), gpu_requests; (b) cuBLAS + SDPA for a step's products
# and attention, alone and sustained (benches/python/step_ceiling.py) with nvidia-smi's SM clock and power, and a plain
# stream's read rate; (c) the 131K rows in five configurations, alternating three rounds: A prep on / one stream,
# B prep off / one stream, C prep on / two streams (the upper group after the lower's read), D the same, upper group
# from the step's start, E after the lower group's attention; (d) two independent prefills at once (bench streams); profiles;
# memcheck of the prep check and of a two-stream prefill.
source docs/log/device/lib.sh s20c2
smi_on() { nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_event_reasons.active \
  --format=csv,noheader,nounits -lms 100 > $W/smi-$1.csv 2>&1 & SMI=$!; }
smi_off() { kill $SMI 2>/dev/null; wait $SMI 2>/dev/null
  mark "smi $1: $(python3 - $W/smi-$1.csv <<'PY'
import sys, statistics as st
rows = [l.split(", ") for l in open(sys.argv[1]) if l.count(",") >= 5]
rows = [r for r in rows if r[1].strip().isdigit()]
busy = [r for r in rows if float(r[3]) > 200] or rows
if not busy: print("no samples"); sys.exit()
sm = [int(r[1]) for r in busy]; pw = [float(r[3]) for r in busy]
reasons = {}
for r in busy: reasons[r[5].strip()] = reasons.get(r[5].strip(), 0) + 1
print(f"{len(busy)}/{len(rows)} busy samples: SM MHz median {st.median(sm)} min {min(sm)} max {max(sm)}; "
      f"W median {st.median(pw):.0f} max {max(pw):.0f}; reasons {reasons}")
PY
)"; }
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.sm,power.limit,power.max_limit --format=csv > $W/smi-idle.txt 2>&1
mark "idle: $(tail -1 $W/smi-idle.txt)"
if ! run_test dbrmt-kernels__gpu_armt write split_of_the_new; then
  timeout 200 $CS --tool memcheck dist/tests/dbrmt-kernels__gpu_armt write_prep_in --ignored --test-threads=1 > $W/memcheck.log 2>&1
  mark "memcheck rc $? $(grep -hE 'ERROR SUMMARY' $W/memcheck.log)"
  grep -E "Invalid|at 0x|by thread|rror" $W/memcheck.log | head -12
fi
run_test dbrmt-runtime__gpu_engine
run_test dbrmt-runtime__gpu_requests
# (c) first: the rows the session's decisions rest on
declare -A CFG=([A]="DBRMT_PREP_IN_PRODUCT=on DBRMT_TWO_STREAMS=off" [B]="DBRMT_PREP_IN_PRODUCT=off DBRMT_TWO_STREAMS=off"
                [C]="DBRMT_PREP_IN_PRODUCT=on DBRMT_TWO_STREAMS=on" [D]="DBRMT_PREP_IN_PRODUCT=on DBRMT_TWO_STREAMS_AT=start"
                [E]="DBRMT_PREP_IN_PRODUCT=on DBRMT_TWO_STREAMS_AT=attention")
for r in 1 2 3; do for c in A B C D E; do
  for row in 1b-t1024-131k 160m-t512-131k; do
    [ $r = 1 ] && [ $row = 1b-t1024-131k ] && [ $c = A ] && smi_on row-A
    timeout 100 env ${CFG[$c]} dist/dbrmt bench matrix --filter $row --out $W/m-$row-$c.jsonl > $W/m-$row-$c-$r.log 2>&1
    mark "$row $c rc $? $(grep -hE 'dbrmt-' $W/m-$row-$c-$r.log | cut -c24-70 | tr -s ' ' | tr '\n' ';')"
    [ $r = 1 ] && [ $row = 1b-t1024-131k ] && [ $c = A ] && smi_off row-A
  done
done; done
smi_on ceiling
timeout 200 python3 benches/python/step_ceiling.py --out $W/ceiling.jsonl > $W/ceiling.log 2>&1
mark "step_ceiling rc $?"; smi_off ceiling
grep step_ceiling $W/ceiling.log | cut -c1-130
timeout 60 python3 - > $W/stream.log 2>&1 <<'PY'
import torch
for mb in (12.6, 33.5, 67.1, 2048):
    n = int(mb * 2**20 / 2) // 4096 * 4096
    w = torch.randn(n // 4096, 4096, device="cuda", dtype=torch.bfloat16); o = torch.empty(4096, device="cuda", dtype=torch.float32)
    f = lambda: torch.sum(w, dim=0, dtype=torch.float32, out=o)
    for _ in range(3): f()
    reps = max(3, int(2000 / mb)); g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(reps): f()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    ts = []
    for _ in range(5):
        s.record(); g.replay(); e.record(); e.synchronize(); ts.append(s.elapsed_time(e) / reps)
    ms = sorted(ts)[2]; print(f"column sum of {mb} MB bf16: {ms*1e3:.1f} us, {n*2/ms/1e9:.0f} GB/s")
PY
mark "stream rc $? $(tr '\n' ';' < $W/stream.log | cut -c1-300)"
for m in "llama-160m 512 32768" "llama-3.2-1b 1024 32768"; do set -- $m
  timeout 120 env DBRMT_TWO_STREAMS=off dist/dbrmt bench streams --model $1 --segment $2 --tokens $3 --streams 2 --out $W/streams.jsonl > $W/streams-$1.log 2>&1
  mark "streams $1 rc $? $(grep -h 'bench: streams' $W/streams-$1.log | cut -c1-260)"
done
for m in "llama-3.2-1b 1024" "llama-160m 512"; do set -- $m
  timeout 90 env DBRMT_PREP_IN_PRODUCT=on dist/dbrmt bench profile --model $1 --segment $2 --tokens 131072 --out $W/p-$1.jsonl > $W/p-$1.log 2>&1
  mark "profile $1 rc $? $(grep -hE 'write: |steps of' $W/p-$1.log | tr -s ' ' | cut -c1-70 | tr '\n' ';')"
done
timeout 100 $CS --tool memcheck dist/tests/dbrmt-kernels__gpu_armt write_prep_in --ignored --test-threads=1 > $W/memcheck.log 2>&1
mark "memcheck prep rc $? $(grep -hE 'ERROR SUMMARY|test result' $W/memcheck.log | tr '\n' ' ' | cut -c1-120)"
timeout 120 $CS --tool memcheck dist/dbrmt bench streams --model llama-160m --segment 512 --tokens 4096 --streams 1 --iters 1 --out /tmp/x.jsonl > $W/memcheck-2s.log 2>&1
mark "memcheck two-stream prefill rc $? $(grep -hE 'ERROR SUMMARY' $W/memcheck-2s.log | tr '\n' ' ' | cut -c1-120)"
finish
