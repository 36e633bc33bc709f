set -uo pipefail
python3 -c "import tarfile; tarfile.open('tmp-device/s8c4.tar.xz').extractall()"
export DBRMT_REPO_ROOT=$PWD
W=$OUT; T0=$(date +%s)
mark() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/marks.txt; }
timeout 120 dist/dbrmt bench kernels --out $W/kernels.jsonl > $W/kernels.log 2>&1; mark "kernels rc $?"
timeout 60 dist/dbrmt bench profile --model llama-3.2-1b --segment 1024 --tokens 32768 --out $W/profile.jsonl > $W/profile-1b.log 2>&1; mark "profile 1B rc $?"
timeout 60 dist/dbrmt bench profile --model llama-160m --segment 512 --tokens 16384 --out $W/profile.jsonl > $W/profile-160m.log 2>&1; mark "profile 160M rc $?"
for f in 1b-t1024-131k 160m-t512-131k decode; do
  timeout 120 dist/dbrmt bench matrix --filter $f --out $W/matrix.jsonl > $W/matrix-$f.log 2>&1; mark "matrix $f rc $?"
done
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
DBRMT_GRAPHS=off timeout 150 $NCU --clock-control none --metrics gpu__time_duration.sum --launch-skip 6000 --launch-count 700 --csv \
  --log-file $W/ncu-decode-smollm2.csv dist/dbrmt bench requests --model smollm2-135m --requests 1 --tokens 4096 --decode 64 --no-serial --out /tmp/x.jsonl > $W/ncu.log 2>&1
mark "ncu decode smollm2 rc $?"
timeout 330 dist/run.sh gpu > $W/gputests.log 2>&1; mark "gpu tests rc $?"
timeout 150 dist/run.sh selftest > $W/selftest.log 2>&1; mark "selftest rc $?"
{
echo "===== tests"; grep -E "test result|FAILED|panicked" $W/gputests.log | tail -12; grep -E "graphs|PDL on|passed, " $W/selftest.log | tail -4
echo "===== profiles"; grep -E "bench: profile|rope|attention |rms_norm|to bf16|o projection|down projection" $W/profile-*.log | cut -c1-150
echo "===== matrix"; grep -h "bench: " $W/matrix-*.log | grep -v "^bench: matrix" | cut -c1-160
echo "===== o / down (TFLOP/s)"
python3 - $W/kernels.jsonl <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for r in rows:
    if r.get("op") == "gemm" and (" o " in r.get("shape", "") + " " or " down" in r.get("shape", "")):
        print(f'{r["shape"]:<14} {r["method"]:<22} {r.get("ms", 0):7.3f} ms {r.get("tflops", 0):5.0f}')
PY
python3 - $W/ncu-decode-smollm2.csv <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
h = rows[0]; rows = rows[1:]
ki, mi, vi = h.index("Kernel Name"), h.index("Metric Name"), h.index("Metric Value")
t = collections.defaultdict(lambda: [0, 0.0])
for r in rows:
    if r[mi] != "gpu__time_duration.sum": continue
    v = float(r[vi].replace(",", "")); u = r[h.index("Metric Unit")] if "Metric Unit" in h else "ns"
    v = v / 1000 if u in ("ns", "nsecond") else (v if u in ("us", "usecond") else v * 1000)
    k = r[ki].split("(")[0][:60]; t[k][0] += 1; t[k][1] += v
tot = sum(x[1] for x in t.values()); n = sum(x[0] for x in t.values())
print(f"===== ncu SmolLM2 decode: {n} kernels, {tot:.0f} us of kernel time")
for k, (c, us) in sorted(t.items(), key=lambda x: -x[1][1]): print(f"  {k:<60} {c:5d} {us:9.1f} us  {us/c:7.2f} us each")
PY
} > $W/summary.txt 2>&1
cat $W/summary.txt; cat $W/marks.txt
