#!/usr/bin/env bash
# Session 19 call 2: the fused write v7.1 (V and A_old loaded ahead of their use; call 1's v7 took ~55 µs a CTA and
# 0.274 ms a 1B step against the four launches' 0.211). B = dist/ of branch s19. Its check; gpu_engine with it; the
# 131K rows sm90 / off (main's four launches) twice; step profiles; ncu warp-stall sampling by SASS line of one v7.1
# launch inside a 1B 16K prefill; memcheck + racecheck of its check.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s19c2; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s19c2.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
timeout 120 dist/tests/dbrmt-kernels__gpu_armt armt_write_fused_sm90 --ignored --test-threads=1 --nocapture > $W/v7.log 2>&1; V7=$?
mark "gpu_armt armt_write_fused_sm90 rc $V7 $(grep -h 'test result' $W/v7.log | tail -1 | cut -c1-50)"
if [ $V7 -ne 0 ]; then grep -E "FAIL|panicked|rror" $W/v7.log | cut -c1-220 | head -16; finish; fi
DBRMT_WRITE_FUSED=sm90 timeout 200 dist/tests/dbrmt-runtime__gpu_engine --ignored --test-threads=1 > $W/engine.log 2>&1; rc=$?
mark "gpu_engine sm90 rc $rc $(grep -h 'test result' $W/engine.log | tail -1 | cut -c1-50)"
[ $rc -ne 0 ] && grep -E "FAIL|panicked" $W/engine.log | cut -c1-250 | head -8
for r in 1 2; do for v in sm90 off; do
  timeout 100 env DBRMT_WRITE_FUSED=$v dist/dbrmt bench matrix --filter 1b-t1024-131k --out $W/m1b-$v.jsonl > $W/m1b-$v-$r.log 2>&1
  mark "1b 131k $v rc $? $(grep -hE 'dbrmt-diagonal' $W/m1b-$v-$r.log | cut -c8-90 | tr -s ' ')"
  timeout 100 env DBRMT_WRITE_FUSED=$v dist/dbrmt bench matrix --filter 160m-t512-131k --out $W/m160-$v.jsonl > $W/m160-$v-$r.log 2>&1
  mark "160m 131k $v rc $? $(grep -hE 'dbrmt-diagonal' $W/m160-$v-$r.log | cut -c8-90 | tr -s ' ')"
done; done
for m in "llama-3.2-1b 1024" "llama-160m 512"; do set -- $m
  DBRMT_WRITE_FUSED=sm90 timeout 90 dist/dbrmt bench profile --model $1 --segment $2 --tokens 131072 --out $W/p-$1.jsonl > $W/p-$1.log 2>&1
  mark "profile $1 rc $? $(grep -hE 'write: |steps of' $W/p-$1.log | tr -s ' ' | cut -c1-80 | tr '\n' ';')"
done
cat > $W/summ.py <<'PY'
import csv, sys
from collections import Counter
rows = list(csv.reader(open(sys.argv[1], errors="replace")))
hdr = next((i for i, r in enumerate(rows) if any("Warp Stall Sampling (All" in c for c in r)), None)
if hdr is None:
    print("no samples"); sys.exit()
h = rows[hdr]; col = next(i for i, c in enumerate(h) if "Warp Stall Sampling (All" in c)
src = next(i for i, c in enumerate(h) if c.strip() == "Source")
data = []
for r in rows[hdr + 1:]:
    try: data.append((float(r[col] or 0), r))
    except (ValueError, IndexError): pass
tot = sum(d[0] for d in data) or 1
print(f"{tot:.0f} samples; by opcode:")
c = Counter()
for s, r in data:
    op = [o for o in r[src].split() if not o.startswith("@")]
    c[op[0].split(".")[0] if op else "?"] += s
print("  " + ", ".join(f"{k} {100*v/tot:.1f}%" for k, v in c.most_common(10)))
names = [n for n in h if n.startswith("stall_") and "Not Issued" not in n]
vals = sorted(((sum(float(r[h.index(n)] or 0) for _, r in data), n) for n in names), reverse=True)
print("by reason: " + ", ".join(f"{n[6:]} {100*v/tot:.1f}%" for v, n in vals[:9]))
print("top lines:")
addr = next((i for i, c in enumerate(h) if c.strip() == "Address"), None)
for s, r in sorted(data, key=lambda d: -d[0])[:16]:
    print(f"  {100*s/tot:5.1f}%  {r[addr] if addr is not None else ''}  {r[src][:90]}")
for v, n in vals[:3]:
    i = h.index(n)
    print(f"top {n}:")
    for s, r in sorted(data, key=lambda d: -float(d[1][i] or 0))[:5]:
        print(f"  {r[i]:>5s}  {r[src][:80]}")
PY
k=armt_write_fused_sm90_f32
DBRMT_WRITE_FUSED=sm90 DBRMT_GRAPHS=off timeout 150 $NCU --clock-control none -k regex:"^$k\$" --launch-skip 12 --launch-count 1 \
  --section SourceCounters --section WarpStateStats --section SpeedOfLight -o $W/$k \
  dist/dbrmt bench matrix --filter 1b-t1024-16k --out /tmp/x.jsonl > $W/$k.log 2>&1
mark "$k ncu rc $?"
timeout 60 $NCU -i $W/$k.ncu-rep --page source --csv --print-source sass > $W/$k.csv 2> /dev/null
timeout 60 $NCU -i $W/$k.ncu-rep --page details > $W/$k-details.txt 2> /dev/null
grep -E "Grid Size|Duration|Issue Slots Busy|Warp Cycles Per Issued" $W/$k-details.txt | tr -s ' ' | tr '\n' ';'; echo
python3 $W/summ.py $W/$k.csv | tee $W/$k-summary.txt | head -40
gzip $W/$k.csv
for tool in memcheck racecheck; do
  timeout 150 $CS --tool $tool dist/tests/dbrmt-kernels__gpu_armt armt_write_fused_sm90 --ignored --test-threads=1 > $W/$tool.log 2>&1
  mark "$tool rc $? $(grep -hE 'ERROR SUMMARY|RACECHECK SUMMARY|test result' $W/$tool.log | tr '\n' ' ' | cut -c1-120)"
done
finish
