#!/usr/bin/env bash
# session 7, device call 2: branch s7-early-b (gemm_sm90 and the fused read request weights / state before
# griddepcontrol.wait). Checks: selftest (every kernel check, the decode rows and read widths with the switch on and
# off), the model GPU tests. Then DBRMT_EARLY_WEIGHTS on/off, alternating: decode after a 4K prompt (1B, SmolLM2),
# the 131K prefill rows (1B T=1024, 160M T=512), the matrix decode rows. Bundle: tmp-device/eb.tar.xz.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; s=(); W=/tmp/s7c2; rm -rf $W; mkdir -p $W
mark() { s+=("[$((SECONDS-T0))s] $1"); echo "### $1"; }
rm -rf dist && python3 -c "import tarfile; tarfile.open('tmp-device/eb.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.sm --format=csv,noheader
(cd /tmp && timeout 110 $R/dist/dbrmt selftest > $W/selftest.log 2>&1) && mark "selftest $(tail -1 $W/selftest.log)" || { mark "selftest FAILED $(tail -1 $W/selftest.log)"; grep -E "FAIL|panick" $W/selftest.log | head -8; }
grep -E "weights early|state early" $W/selftest.log | head -8 | cut -c1-220
for t in dbrmt-kernels__gpu_armt dbrmt-runtime__gpu_engine dbrmt-runtime__gpu_requests dbrmt-cli__gpu_generate dbrmt-cli__gpu_serve; do
  if timeout 90 dist/tests/$t --ignored --test-threads=1 > $W/t-$t.log 2>&1; then mark "$t ok $(grep -E '^test result' $W/t-$t.log | tail -1 | cut -c1-60)"; else mark "$t FAILED rc $?"; grep -E "panicked|differ|FAIL|mismatch" -A3 $W/t-$t.log | head -14; fi
done
for i in 1 2; do for sw in on off; do for m in llama-3.2-1b smollm2-135m; do
  DBRMT_EARLY_WEIGHTS=$sw timeout 60 dist/dbrmt bench requests --model $m --requests 1 --tokens 4096 --decode 256 --no-serial --out $W/dec-$m-$sw.jsonl 2> $W/dec-$m-$sw-$i.log; mark "decode $m early=$sw #$i rc $?"
done; done; done
for sw in on off; do for f in 1b-t1024-131k 160m-t512-131k decode; do
  DBRMT_EARLY_WEIGHTS=$sw timeout 90 dist/dbrmt bench matrix --filter $f --out $W/matrix-$sw.jsonl > $W/m-$f-$sw.log 2>&1; mark "matrix $f early=$sw rc $?"
done; done
(cd $W && tar czf $OUT/s7c2.tgz .)
echo "===== early weights on / off (H200)"
python3 - $W <<'PY'
import json, glob, os, sys, collections
w = sys.argv[1]
for m in ["llama-3.2-1b", "smollm2-135m"]:
    for sw in ["on", "off"]:
        v = [json.loads(l)["tokens_per_s"] for l in open(f"{w}/dec-{m}-{sw}.jsonl") if '"decode"' in l] if os.path.exists(f"{w}/dec-{m}-{sw}.jsonl") else []
        print(f"decode 4K+256 {m:<14} early={sw:<3} tokens/s: {' '.join(f'{x:.0f}' for x in v)}")
for sw in ["on", "off"]:
    p = f"{w}/matrix-{sw}.jsonl"
    if not os.path.exists(p): continue
    for l in open(p):
        r = json.loads(l)
        if r.get("kind") == "e2e": print(f"matrix early={sw:<3} {r['row']:<16} {r['method']:<18} {r['ms']:9.1f} ms")
        elif r.get("kind") == "decode": print(f"matrix early={sw:<3} {r['row']:<16} {r['method']:<18} {r['tokens_per_s']:9.0f} tokens/s")
PY
echo "===== summary"; printf '%s\n' "${s[@]}"
