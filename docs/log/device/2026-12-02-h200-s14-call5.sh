#!/usr/bin/env bash
# Session 14 call 5: what bounds the 1B decode GEMMs (v8's two chains did not help, so not the wgmma chain): ncu's
# full set on the decode down / o (bn16, 128 CTAs), the read's q (bn16, 4 CTAs) and the SwiGLU decode tile, main's
# bundle (A = session 13's engine, the same GPU code as main).
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s14c5; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s14c5.tgz .); cat $W/marks.txt; exit 0; }
mkdir -p /tmp/A && python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall('/tmp/A')"
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
DBRMT_GRAPHS=off timeout 240 $NCU --clock-control none --set full -k regex:'gemm_sm90_nt_bf16_bf16_(f32_bn16|swiglu_bn128_decode)' \
  --launch-skip 120 --launch-count 8 --csv --page details \
  /tmp/A/dist/dbrmt bench requests --model llama-3.2-1b --requests 1 --tokens 4096 --decode 16 --no-serial --out /tmp/x.jsonl > $W/ncu-full-1b.csv 2> $W/ncu-full-1b.err
mark "ncu full rc $? $(wc -l < $W/ncu-full-1b.csv) lines"
finish
