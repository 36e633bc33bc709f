#!/usr/bin/env bash
# session 7, device call 3: how many stages a kernel should request before griddepcontrol.wait. Branch s7-early-b
# (counts: DBRMT_EARLY_WEIGHTS for the GEMMs, DBRMT_EARLY_STATE for the fused read; off = 0). selftest first (the
# decode rows and read widths bitwise at 255, 0 and 2 early stages), then decode after a 4K prompt, 1B and SmolLM2,
# at each setting, two rounds. Bundle: tmp-device/eb2.tar.xz.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; s=(); W=/tmp/s7c3; rm -rf $W; mkdir -p $W
mark() { s+=("[$((SECONDS-T0))s] $1"); echo "### $1"; }
rm -rf dist && python3 -c "import tarfile; tarfile.open('tmp-device/eb2.tar.xz').extractall()"
(cd /tmp && timeout 110 $R/dist/dbrmt selftest > $W/selftest.log 2>&1) && mark "selftest $(tail -1 $W/selftest.log)" || { mark "selftest FAILED $(tail -1 $W/selftest.log)"; grep -E "FAIL|panick" $W/selftest.log | head -8; }
grep -E "early" $W/selftest.log | head -8 | cut -c1-200
for i in 1 2; do for cfg in "off off" "255 off" "off 255" "1 off" "2 off" "4 off" "off 2"; do set -- $cfg
  for m in llama-3.2-1b smollm2-135m; do
    DBRMT_EARLY_WEIGHTS=$1 DBRMT_EARLY_STATE=$2 timeout 60 dist/dbrmt bench requests --model $m --requests 1 --tokens 4096 --decode 256 --no-serial --out $W/dec-$m-w$1-s$2.jsonl 2> $W/dec-$m-w$1-s$2-$i.log || mark "decode $m w=$1 s=$2 FAILED"
  done; done; done
mark "sweep done"
(cd $W && tar czf $OUT/s7c3.tgz .)
echo "===== decode tokens/s after a 4K prompt (256 new), by early stages (weights, state)"
python3 - $W <<'PY'
import json, glob, os, sys
w = sys.argv[1]
for m in ["llama-3.2-1b", "smollm2-135m"]:
    for cfg in ["off off", "255 off", "off 255", "1 off", "2 off", "4 off", "off 2"]:
        a, b = cfg.split(); p = f"{w}/dec-{m}-w{a}-s{b}.jsonl"
        v = [json.loads(l)["tokens_per_s"] for l in open(p)] if os.path.exists(p) else []
        print(f"{m:<14} weights={a:<4} state={b:<4} {' '.join(f'{x:6.0f}' for x in v)}")
PY
echo "===== summary"; printf '%s\n' "${s[@]}"
