#!/usr/bin/env bash
# session 7, device call 4: branch s7-early-b at 7f5fd50 (the GEMMs, the fused read and attention call pdl_entry()
# after their barrier set-up; no early loads): model GPU tests, selftest, then decode (bench requests 1 x 4K + 128,
# as call 1 for main) and the matrix's decode and 131K rows. Then the GEMM harness's 2-CTA cluster variant (TMA
# multicast of B, never run before) against the exported kernels on the long o/down shapes (#12's misses).
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; s=(); W=/tmp/s7c4; rm -rf $W; mkdir -p $W
mark() { s+=("[$((SECONDS-T0))s] $1"); echo "### $1"; }
rm -rf dist && python3 -c "import tarfile; tarfile.open('tmp-device/f.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.sm --format=csv,noheader
(cd /tmp && timeout 110 $R/dist/dbrmt selftest > $W/selftest.log 2>&1) && mark "selftest $(tail -1 $W/selftest.log)" || { mark "selftest FAILED $(tail -1 $W/selftest.log)"; grep -E "FAIL|panick" $W/selftest.log | head -8; }
for t in dbrmt-kernels__gpu_armt dbrmt-kernels__gpu_layer_ops dbrmt-kernels__gpu_poison dbrmt-runtime__gpu_engine dbrmt-runtime__gpu_requests dbrmt-cli__gpu_generate dbrmt-cli__gpu_serve; do
  if timeout 90 dist/tests/$t --ignored --test-threads=1 > $W/t-$t.log 2>&1; then mark "$t ok $(grep -E '^test result' $W/t-$t.log | tail -1 | cut -c1-60)"; else mark "$t FAILED rc $?"; grep -E "panicked|differ|FAIL|mismatch" -A3 $W/t-$t.log | head -14; fi
done
for i in 1 2; do for m in llama-3.2-1b smollm2-135m; do
  timeout 60 dist/dbrmt bench requests --model $m --requests 1 --tokens 4096 --decode 128 --no-serial --out $W/dec-$m.jsonl 2> $W/dec-$m-$i.log; mark "decode $m #$i $(grep -h 'bench: requests' $W/dec-$m-$i.log | cut -c60-100)"
done; done
for f in decode 1b-t1024-131k 160m-t512-131k; do
  timeout 90 dist/dbrmt bench matrix --filter $f --out $W/matrix.jsonl > $W/m-$f.log 2>&1; mark "matrix $f rc $?"
done
python3 - $W <<'PY'
import json, sys
for l in open(sys.argv[1] + "/matrix.jsonl"):
    r = json.loads(l)
    if r.get("kind") == "e2e": print(f"matrix {r['row']:<18} {r['method']:<18} {r['ms']:9.1f} ms")
    elif r.get("kind") == "decode": print(f"matrix {r['row']:<18} {r['method']:<18} {r['tokens_per_s']:9.0f} tokens/s")
PY
# the cluster variant: the harness builds itself (~1.5 min), checks CL=2 bitwise against the exported kernels, times
timeout 330 cuda/dev/run_gemm_sm90.sh --cluster both --bn 128,160,192,224,256 --shape down --reps 10 > $W/cluster-down.log 2>&1; mark "harness cluster down rc $?"
timeout $((560 - SECONDS + T0 > 30 ? 560 - SECONDS + T0 : 30)) cuda/dev/run_gemm_sm90.sh --skip-checks --cluster both --bn 128,160,192,224,256 --shape " o" --reps 10 > $W/cluster-o.log 2>&1; mark "harness cluster o rc $?"
(cd $W && tar czf $OUT/s7c4.tgz .)
grep -E "FAIL|cl2|CL2|cluster|TF/s|%" $W/cluster-down.log | tail -40
echo "===== summary"; printf '%s\n' "${s[@]}"
