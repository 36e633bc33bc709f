"""Warp-stall samples of one ncu SourceCounters report, by opcode, by reason and by SASS line.

Usage: ncu -i REPORT --page source --csv --print-source sass > X.csv; python3 stall_summary.py X.csv
(the device scripts' `stall_profile`, lib.sh). Written for session 19; sessions 18-19's scripts carried it inline.
"""
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
