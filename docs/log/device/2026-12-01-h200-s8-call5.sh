set -uo pipefail
python3 -c "import tarfile; tarfile.open('tmp-device/s8c5.tar.xz').extractall()"
export DBRMT_REPO_ROOT=$PWD
W=$OUT; T0=$(date +%s)
mark() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/marks.txt; }
timeout 60 dist/dbrmt bench profile --model llama-3.2-1b --segment 1024 --tokens 32768 --out $W/profile.jsonl > $W/profile-1b.log 2>&1; mark "profile 1B rc $?"
timeout 60 dist/dbrmt bench profile --model llama-160m --segment 512 --tokens 16384 --out $W/profile.jsonl > $W/profile-160m.log 2>&1; mark "profile 160M rc $?"
timeout 120 dist/dbrmt bench kernels --out $W/kernels.jsonl > $W/kernels.log 2>&1; mark "kernels rc $?"
for f in 1b-t1024-131k 160m-t512-131k 8b-t1024-131k decode; do
  timeout 120 dist/dbrmt bench matrix --filter $f --out $W/matrix.jsonl > $W/matrix-$f.log 2>&1; mark "matrix $f rc $?"
done
timeout 150 dist/run.sh selftest > $W/selftest.log 2>&1; mark "selftest rc $?"
{
echo "===== selftest"; grep -E "rope|graphs|PDL on|passed, |FAIL" $W/selftest.log | cut -c1-170 | tail -14
echo "===== profiles"; cat $W/profile-1b.log $W/profile-160m.log | cut -c1-110
echo "===== matrix"; cat $W/matrix-*.log | grep "bench: " | cut -c1-160
echo "===== o / down (TFLOP/s)"
python3 - $W/kernels.jsonl <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for r in rows:
    if r.get("op") == "gemm" and (" o " in r.get("shape", "") + " " or " down" in r.get("shape", "")):
        if r["method"] in ("gemm_v1", "cublas", "cublas-batched"): continue
        print(f'{r["shape"]:<14} {r["method"]:<22} {r.get("ms", 0):7.3f} ms {r.get("tflops", 0):5.0f}')
PY
} > $W/summary.txt 2>&1
cat $W/summary.txt; cat $W/marks.txt
