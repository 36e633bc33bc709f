#!/usr/bin/env bash
# Session 14 call 2: why the norm tails made decode slower (call 1: SmolLM2 1.35 vs 1.19 ms a token, 1B 1.55 vs 1.34).
# v1 = the bundle's cubins (every storing thread fences), v2 = tmp-device/v2 (one fence a CTA, DBRMT_CUBINS). ncu
# durations of every decode kernel (graphs off) tails on (v1, v2) and off; v2's tail checks; decode rows alternately.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s14c2; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s14c2.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
V2=/tmp/v2; mkdir -p $V2; for f in tmp-device/v2/*.xz; do xz -dc $f > $V2/$(basename $f .xz); done
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
for t in "dbrmt-kernels__gpu_gemm norm_tail" "dbrmt-kernels__gpu_armt pre_split" "dbrmt-runtime__gpu_engine norm_tails"; do
  set -- $t
  DBRMT_CUBINS=$V2 timeout 150 dist/tests/$1 $2 --ignored --test-threads=1 > $W/v2-$1.log 2>&1; rc=$?
  mark "v2 $1 $2 rc $rc $(grep -h 'test result' $W/v2-$1.log | tail -1 | cut -c1-50)"
done
ncu_run() { # tag model skip count env...
  local tag=$1 model=$2 skip=$3 count=$4; shift 4
  env DBRMT_GRAPHS=off "$@" timeout 150 $NCU --clock-control none --metrics gpu__time_duration.sum --csv --launch-skip $skip --launch-count $count \
    dist/dbrmt bench requests --model $model --requests 1 --tokens 4096 --decode 16 --no-serial --out /tmp/x.jsonl > $W/ncu-$tag.csv 2> $W/ncu-$tag.err
  mark "ncu $tag rc $? $(grep -c gpu__time_duration $W/ncu-$tag.csv) rows"
}
ncu_run smol-v1 smollm2-135m 3000 540
ncu_run smol-v2 smollm2-135m 3000 540 DBRMT_CUBINS=$V2
ncu_run smol-off smollm2-135m 3000 610 DBRMT_NORM_TAIL=off
ncu_run 1b-v1 llama-3.2-1b 1500 340
ncu_run 1b-v2 llama-3.2-1b 1500 340 DBRMT_CUBINS=$V2
ncu_run 1b-off llama-3.2-1b 1500 400 DBRMT_NORM_TAIL=off
for r in 1 2; do for v in v1 v2 off; do
  case $v in v1) E="";; v2) E="DBRMT_CUBINS=$V2";; off) E="DBRMT_NORM_TAIL=off";; esac
  env $E timeout 100 dist/dbrmt bench matrix --filter decode --out $W/matrix-$v.jsonl > $W/matrix-decode-$v-$r.log 2>&1
  mark "decode $v rc $? $(grep -hE 'ms/token' $W/matrix-decode-$v-$r.log | grep dbrmt | cut -c8-80 | tr -s ' ' | tr '\n' ' ')"
done; done
finish
