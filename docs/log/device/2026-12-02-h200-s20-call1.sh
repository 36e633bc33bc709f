#!/usr/bin/env bash
# Session 20 call 1: (a) session 19's prepared call 9 — the write's prep in the kφ·A product's epilogue (branch
# prep-in-ka with main merged; DBRMT_PREP_IN_PRODUCT): its check and the write / update-split suites, gpu_engine,
# gpu_requests, step profiles, the 131K rows on / off three times alternating, memcheck of the check; (b) the
# projections + attention ceiling of a step, cuBLAS + SDPA alone and sustained (benches/python/step_ceiling.py),
# with nvidia-smi's SM clock and power sampled during it and during our 1B 131K row.
source docs/log/device/lib.sh s20c1
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
  finish
fi
run_test dbrmt-runtime__gpu_engine || finish
run_test dbrmt-runtime__gpu_requests
smi_on ceiling
timeout 200 python3 benches/python/step_ceiling.py --out $W/ceiling.jsonl > $W/ceiling.log 2>&1
mark "step_ceiling rc $?"; smi_off ceiling
grep step_ceiling $W/ceiling.log | cut -c1-130
# the read rate a plain stream reaches at a decoded layer's weight sizes (1B gate/up 67 MB, down 33.5 MB, q/k/v 12.6)
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
for m in "llama-3.2-1b 1024" "llama-160m 512"; do set -- $m
  for v in on off; do
    timeout 90 env DBRMT_PREP_IN_PRODUCT=$v dist/dbrmt bench profile --model $1 --segment $2 --tokens 131072 --out $W/p-$1-$v.jsonl > $W/p-$1-$v.log 2>&1
    mark "profile $1 $v rc $? $(grep -hE 'write: |steps of' $W/p-$1-$v.log | tr -s ' ' | cut -c1-70 | tr '\n' ';')"
  done
done
for r in 1 2 3; do for v in on off; do
  for row in 1b-t1024-131k 160m-t512-131k; do
    [ $r = 1 ] && [ $row = 1b-t1024-131k ] && smi_on row-$v
    timeout 100 env DBRMT_PREP_IN_PRODUCT=$v dist/dbrmt bench matrix --filter $row --out $W/m-$row-$v.jsonl > $W/m-$row-$v-$r.log 2>&1
    mark "$row $v rc $? $(grep -hE 'dbrmt-' $W/m-$row-$v-$r.log | cut -c24-70 | tr -s ' ' | tr '\n' ';')"
    [ $r = 1 ] && [ $row = 1b-t1024-131k ] && smi_off row-$v
  done
done; done
# two independent prefills on two streams at once against one after another (how much of a step is idle GPU)
for m in "llama-160m 512 32768" "llama-3.2-1b 1024 32768"; do set -- $m
  timeout 120 dist/dbrmt bench streams --model $1 --segment $2 --tokens $3 --streams 2 --out $W/streams.jsonl > $W/streams-$1.log 2>&1
  mark "streams $1 rc $? $(grep -h 'bench: streams' $W/streams-$1.log | cut -c1-260)"
done
timeout 100 $CS --tool memcheck dist/tests/dbrmt-kernels__gpu_armt write_prep_in --ignored --test-threads=1 > $W/memcheck.log 2>&1
mark "memcheck rc $? $(grep -hE 'ERROR SUMMARY|test result' $W/memcheck.log | tr '\n' ' ' | cut -c1-120)"
finish
