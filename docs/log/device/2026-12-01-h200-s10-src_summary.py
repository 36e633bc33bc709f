# Summarise ncu's source page (SASS, CSV): totals, the top lines by stall samples with their offsets, and for each
# retry branch of an mbarrier wait the SYNCS line it loops on (which barrier the warps wait at).
import csv, sys, re
rows = list(csv.reader(open(sys.argv[1], errors="replace")))
top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
head = next((i for i, r in enumerate(rows) if any(c.strip() == "Source" for c in r)), None)
if head is None:
    print("no source table;", rows[:3]); sys.exit()
h = rows[head]
def col(*names):
    for n in names:
        for i, c in enumerate(h):
            if c.strip().startswith(n): return i
    return None
src, addr = col("Source"), col("# Address", "Address")
allc, noti = col("Warp Stall Sampling (All"), col("Warp Stall Sampling (Not")
exe = col("Instructions Executed")
body = [r for r in rows[head + 1:] if len(r) == len(h) and r[src].strip()]
num = lambda s: float((s or "0").replace(",", "") or 0)
base = int(body[0][addr], 16) if addr is not None else 0
tot = sum(num(r[allc]) for r in body)
print(f"lines {len(body)} samples {tot:.0f} not-issued {sum(num(r[noti]) for r in body):.0f}")
by_addr = {int(r[addr], 16): i for i, r in enumerate(body)} if addr is not None else {}
order = sorted(range(len(body)), key=lambda i: -num(body[i][allc]))
for i in order[:top]:
    r = body[i]; off = int(r[addr], 16) - base if addr is not None else i
    extra = ""
    m = re.search(r"BRA\s+(0x[0-9a-f]+)", r[src])
    if m and addr is not None:
        t = by_addr.get(int(m.group(1), 16))
        if t is not None:
            tgt = body[t][src].strip()
            if "SYNCS" not in tgt and t + 1 < len(body): tgt = body[t + 1][src].strip()
            extra = " <- " + re.sub(r"\s+", " ", tgt)[:70]
    print(f"{num(r[allc]):6.0f} {100*num(r[allc])/max(tot,1):5.1f}% {off:#07x} {re.sub(r'[ ]+', ' ', r[src].strip())[:60]}{extra}")
# stall reasons per line are in columns named like "stall_..."? list any per-reason columns once
reasons = [(i, c) for i, c in enumerate(h) if "stall" in c.lower() and i not in (allc, noti)]
if reasons:
    sums = sorted(((sum(num(r[i]) for r in body), c) for i, c in reasons), reverse=True)[:10]
    print("reasons:", "; ".join(f"{c.strip()[:40]} {v:.0f}" for v, c in sums))
