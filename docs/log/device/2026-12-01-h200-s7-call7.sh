#!/usr/bin/env bash
# session 7, device call 7: branch s7-rows128 at 2057162 (128-thread row blocks only for launches of more than 64 rows; rms_norm with 256 virtual threads, the bits of the 256-thread kernel;
# decode keeps 256). selftest, the GPU tests, then the step profiles (1B T=1024, 160M T=512: the rows kernels' lines against
# call 5's 1B profile and BENCHMARKS.md's 160M), decode, the 131K rows. Bundle: tmp-device/r2.tar.xz.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; s=(); W=/tmp/s7c7; rm -rf $W; mkdir -p $W
mark() { s+=("[$((SECONDS-T0))s] $1"); echo "### $1"; }
rm -rf dist && python3 -c "import tarfile; tarfile.open('tmp-device/r2.tar.xz').extractall()"
(cd /tmp && timeout 120 $R/dist/dbrmt selftest > $W/selftest.log 2>&1) && mark "selftest $(tail -1 $W/selftest.log)" || { mark "selftest FAILED $(tail -1 $W/selftest.log)"; grep -E "FAIL|panick" $W/selftest.log | head -8; }
for t in dbrmt-kernels__gpu_layer_ops dbrmt-runtime__gpu_engine dbrmt-runtime__gpu_requests dbrmt-cli__gpu_generate dbrmt-cli__gpu_serve; do
  if timeout 90 dist/tests/$t --ignored --test-threads=1 > $W/t-$t.log 2>&1; then mark "$t ok $(grep -E '^test result' $W/t-$t.log | tail -1 | cut -c1-60)"; else mark "$t FAILED rc $?"; grep -E "panicked|differ|FAIL|mismatch" -A3 $W/t-$t.log | head -14; fi
done
timeout 60 dist/dbrmt bench profile --model llama-3.2-1b --segment 1024 --tokens 32768 --out $W/profile.jsonl > $W/p-1b.log 2>&1; mark "profile 1B rc $?"
timeout 60 dist/dbrmt bench profile --model llama-160m --segment 512 --tokens 16384 --out $W/profile.jsonl > $W/p-160m.log 2>&1; mark "profile 160M rc $?"
for i in 1 2; do for m in llama-3.2-1b smollm2-135m; do
  timeout 60 dist/dbrmt bench requests --model $m --requests 1 --tokens 4096 --decode 128 --no-serial --out $W/dec-$m.jsonl 2> $W/dec-$m-$i.log || mark "decode $m FAILED"
done; done
for f in 1b-t1024-131k 160m-t512-131k; do
  timeout 90 dist/dbrmt bench matrix --filter $f --out $W/matrix.jsonl > $W/m-$f.log 2>&1; mark "matrix $f rc $?"
done
(cd $W && tar czf $OUT/s7c7.tgz .)
cat $W/p-1b.log $W/p-160m.log | grep -E "bench: profile|rms_norm|rope|to bf16|fused"
python3 - $W <<'PY'
import json, os, sys
w = sys.argv[1]
for m in ["llama-3.2-1b", "smollm2-135m"]:
    p = f"{w}/dec-{m}.jsonl"
    v = [json.loads(l)["tokens_per_s"] for l in open(p)] if os.path.exists(p) else []
    print(f"decode 4K+128 {m:<14} tokens/s {' '.join(f'{x:.0f}' for x in v)}")
for l in open(f"{w}/matrix.jsonl"):
    r = json.loads(l)
    if r.get("kind") == "e2e": print(f"matrix {r['row']:<16} {r['method']:<18} {r['ms']:9.1f} ms")
PY
echo "===== summary"; printf '%s\n' "${s[@]}"
