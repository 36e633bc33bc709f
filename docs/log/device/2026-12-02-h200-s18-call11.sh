#!/usr/bin/env bash
# Session 18 call 11 (main's kernels; B = dist/ of the branch, whose read and memory products are main's): warp-stall
# sampling by SASS line (ncu source counters) of the prefill's pre-split fused read (7.4% of a 1B step, the largest
# memory launch) and of the write's two 3×TF32 products (kφ·A NN, A += kφᵀ·u TN), each one launch inside a 1B 16K
# prefill (16 layers: the middle steps have many cells), DBRMT_WRITE_FUSED=off. For the next session's read and
# write work (docs/log/armt_read_fused_sm90.md §10 asked for this measurement).
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s18c11; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s18c11.tgz .); cat $W/marks.txt; exit 0; }
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
for v, n in vals[:3]:
    i = h.index(n)
    print(f"top {n}:")
    for s, r in sorted(data, key=lambda d: -float(d[1][i] or 0))[:5]:
        print(f"  {r[i]:>5s}  {r[src][:80]}")
PY
for k in "armt_read_fused_sm90_split_f32" "gemm_sm90_nn_f32_f32_f32_tf32x3" "gemm_sm90_tn_f32_f32_f32_tf32x3"; do
  DBRMT_WRITE_FUSED=off DBRMT_GRAPHS=off timeout 150 $NCU --clock-control none -k regex:"^$k\$" --launch-skip 12 --launch-count 1 \
    --section SourceCounters --section WarpStateStats --section SpeedOfLight -o $W/$k \
    dist/dbrmt bench matrix --filter 1b-t1024-16k --out /tmp/x.jsonl > $W/$k.log 2>&1
  mark "$k ncu rc $?"
  timeout 60 $NCU -i $W/$k.ncu-rep --page source --csv --print-source sass > $W/$k.csv 2> /dev/null
  timeout 60 $NCU -i $W/$k.ncu-rep --page details > $W/$k-details.txt 2> /dev/null
  grep -E "Grid Size|Duration|Issue Slots Busy|Warp Cycles Per Issued" $W/$k-details.txt | tr -s ' ' | tr '\n' ';'; echo
  python3 $W/summ.py $W/$k.csv | tee $W/$k-summary.txt | head -14
  rm -f $W/$k.csv
done
finish
