#!/usr/bin/env bash
# Session 18 call 10: where the fused write's CTA spends its ~67 µs (calls 6–9: the same time whatever the products,
# the chains or the stages did): ncu's source counters on the check's first launch, then the SASS lines with the most
# warp-stall samples and their reasons.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s18c10; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s18c10.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
timeout 150 $NCU --clock-control none -k regex:armt_write_fused --launch-count 1 --section SourceCounters --section WarpStateStats \
  -o $W/wf dist/tests/dbrmt-kernels__gpu_armt armt_write_fused --ignored --test-threads=1 > $W/ncu.log 2>&1
mark "ncu rc $?"
timeout 100 $NCU -i $W/wf.ncu-rep --page source --csv --print-source sass > $W/source.csv 2> $W/source.err
mark "source rc $? $(wc -l < $W/source.csv) lines"
python3 - "$W/source.csv" > $W/top.txt <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], errors="replace")))
hdr = next((i for i, r in enumerate(rows) if any("Warp Stall Sampling (All" in c for c in r)), None)
if hdr is None:
    print("no header; first rows:"); [print(r[:8]) for r in rows[:5]]; sys.exit()
h = rows[hdr]; col = next(i for i, c in enumerate(h) if "Warp Stall Sampling (All" in c)
src = next((i for i, c in enumerate(h) if c.strip() == "Source"), 1)
data = []
for r in rows[hdr + 1:]:
    try: data.append((float(r[col] or 0), r))
    except (ValueError, IndexError): pass
tot = sum(d[0] for d in data) or 1
print("total samples", tot)
stall_cols = [i for i, c in enumerate(h) if c.startswith("stall_") or "Stall" in c]
for s, r in sorted(data, key=lambda x: -x[0])[:40]:
    print(f"{100*s/tot:5.1f}%  {r[src][:90]}")
print("columns:", [h[i] for i in stall_cols][:30])
PY
mark "top $(head -3 $W/top.txt | tr '\n' ' ')"
head -45 $W/top.txt
finish
