#!/usr/bin/env bash
# session 7, device call 5: branch s7-read-split (the fused read's φ·A as tf32 + one bf16 correction product in the
# engine, with narrow column tiles; DBRMT_MEMORY=tf32x3 gives the 3×TF32 read). selftest (both splits at every width),
# the GPU tests, then default against DBRMT_MEMORY=tf32x3: decode (1 x 4K + 128), the 131K rows, and the 1B step
# profile. Bundle: tmp-device/rs.tar.xz.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; s=(); W=/tmp/s7c5; rm -rf $W; mkdir -p $W
mark() { s+=("[$((SECONDS-T0))s] $1"); echo "### $1"; }
rm -rf dist && python3 -c "import tarfile; tarfile.open('tmp-device/rs.tar.xz').extractall()"
(cd /tmp && timeout 120 $R/dist/dbrmt selftest > $W/selftest.log 2>&1) && mark "selftest $(tail -1 $W/selftest.log)" || { mark "selftest FAILED $(tail -1 $W/selftest.log)"; grep -E "FAIL|panick" $W/selftest.log | head -8; }
grep -E "armt_read_fused" $W/selftest.log | cut -c1-160 | head -16
for t in dbrmt-kernels__gpu_armt dbrmt-runtime__gpu_engine dbrmt-runtime__gpu_requests dbrmt-cli__gpu_generate dbrmt-cli__gpu_serve; do
  if timeout 90 dist/tests/$t --ignored --test-threads=1 > $W/t-$t.log 2>&1; then mark "$t ok $(grep -E '^test result' $W/t-$t.log | tail -1 | cut -c1-60)"; else mark "$t FAILED rc $?"; grep -E "panicked|differ|FAIL|mismatch" -A3 $W/t-$t.log | head -14; fi
done
for i in 1 2; do for mem in default tf32x3; do for m in llama-3.2-1b smollm2-135m; do
  env $([ $mem = tf32x3 ] && echo DBRMT_MEMORY=tf32x3) timeout 60 dist/dbrmt bench requests --model $m --requests 1 --tokens 4096 --decode 128 --no-serial --out $W/dec-$m-$mem.jsonl 2> $W/dec-$m-$mem-$i.log || mark "decode $m $mem FAILED"
done; done; done
mark "decode A/B done"
for mem in default tf32x3; do for f in 1b-t1024-131k 160m-t512-131k; do
  env $([ $mem = tf32x3 ] && echo DBRMT_MEMORY=tf32x3) timeout 90 dist/dbrmt bench matrix --filter $f --out $W/matrix-$mem.jsonl > $W/m-$f-$mem.log 2>&1; mark "matrix $f $mem rc $?"
done; done
for mem in default tf32x3; do
  env $([ $mem = tf32x3 ] && echo DBRMT_MEMORY=tf32x3) timeout 60 dist/dbrmt bench profile --model llama-3.2-1b --segment 1024 --tokens 32768 --out $W/profile-$mem.jsonl > $W/p-$mem.log 2>&1; mark "profile 1B $mem rc $?"
done
(cd $W && tar czf $OUT/s7c5.tgz .)
echo "===== default (tf32 + bf16) against DBRMT_MEMORY=tf32x3"
python3 - $W <<'PY'
import json, os, sys
w = sys.argv[1]
for m in ["llama-3.2-1b", "smollm2-135m"]:
    for mem in ["default", "tf32x3"]:
        p = f"{w}/dec-{m}-{mem}.jsonl"
        v = [json.loads(l)["tokens_per_s"] for l in open(p)] if os.path.exists(p) else []
        print(f"decode 4K+128 {m:<14} {mem:<8} tokens/s {' '.join(f'{x:.0f}' for x in v)}")
for mem in ["default", "tf32x3"]:
    p = f"{w}/matrix-{mem}.jsonl"
    if os.path.exists(p):
        for l in open(p):
            r = json.loads(l)
            if r.get("kind") == "e2e": print(f"matrix {mem:<8} {r['row']:<16} {r['method']:<18} {r['ms']:9.1f} ms")
PY
grep -h -E "read|step" $W/p-*.log | head -20
echo "===== summary"; printf '%s\n' "${s[@]}"
