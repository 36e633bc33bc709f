#!/usr/bin/env python3
"""Summarises an nvidia-smi sampling CSV (lib.sh's smi_on / smi_off: timestamp, SM MHz, memory MHz, W, °C, clock event
reasons; no header, no units) over its busy samples (> 200 W): the SM clock's median / min / max, the power's median
/ max, and how many samples carried each clock event reason (0x4: software power cap)."""
import statistics as st
import sys

rows = [line.split(", ") for line in open(sys.argv[1]) if line.count(",") >= 5]
rows = [r for r in rows if r[1].strip().isdigit()]
busy = [r for r in rows if float(r[3]) > 200] or rows
if not busy:
    print("no samples")
    sys.exit()
sm = [int(r[1]) for r in busy]
watts = [float(r[3]) for r in busy]
reasons = {}
for r in busy:
    reasons[r[5].strip()] = reasons.get(r[5].strip(), 0) + 1
print(f"{len(busy)}/{len(rows)} busy samples: SM MHz median {st.median(sm)} min {min(sm)} max {max(sm)}; "
      f"W median {st.median(watts):.0f} max {max(watts):.0f}; reasons {reasons}")
