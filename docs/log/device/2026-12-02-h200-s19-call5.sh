#!/usr/bin/env bash
# Session 19 call 5: where the features-once read's warps wait (branch read-features v2, the same bundle as call 4):
# ncu warp-stall sampling by SASS line of one armt_read_fused_sm90_split_pf_f32 launch and one
# armt_read_fused_sm90_features_f32 launch inside a 1B 16K prefill, and of main's armt_read_fused_sm90_split_f32
# (DBRMT_READ_FEATURES=off) for comparison; memory workload numbers of the pf read.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s19c5; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s19c5.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
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
for kv in "armt_read_fused_sm90_split_pf_f32 on" "armt_read_fused_sm90_features_f32 on" "armt_read_fused_sm90_split_f32 off"; do
  set -- $kv; k=$1
  DBRMT_READ_FEATURES=$2 DBRMT_GRAPHS=off timeout 150 $NCU --clock-control none -k regex:"^$k\$" --launch-skip 12 --launch-count 1 \
    --section SourceCounters --section WarpStateStats --section SpeedOfLight --section MemoryWorkloadAnalysis -o $W/$k \
    dist/dbrmt bench matrix --filter 1b-t1024-16k --out /tmp/x.jsonl > $W/$k.log 2>&1
  mark "$k ncu rc $?"
  timeout 60 $NCU -i $W/$k.ncu-rep --page source --csv --print-source sass > $W/$k.csv 2> /dev/null
  timeout 60 $NCU -i $W/$k.ncu-rep --page details > $W/$k-details.txt 2> /dev/null
  grep -E "Grid Size|Duration|Issue Slots Busy|Warp Cycles Per Issued|L2 Cache Throughput|DRAM Throughput|L2 Hit Rate|Mem Busy" $W/$k-details.txt | tr -s ' ' | tr '\n' ';'; echo
  python3 $W/summ.py $W/$k.csv | tee $W/$k-summary.txt | head -34
  gzip $W/$k.csv; rm -f $W/$k.ncu-rep
done
finish
