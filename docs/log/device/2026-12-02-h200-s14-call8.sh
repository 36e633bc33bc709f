#!/usr/bin/env bash
# Session 14 call 8: the narrow SwiGLU tile (decode gate/up) with 2 or 4 k-blocks a stage instead of 1 (variant cubins
# through DBRMT_CUBINS; longer runs of each weight row per DRAM access: ncu put the tile at 66% of DRAM bandwidth),
# over call 7's bundle with DBRMT_L2_PREFETCH=off everywhere. Bits (every width, decode rows), then decode rows
# alternately: main, ks2, ks4.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s14c8; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s14c8.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
export DBRMT_L2_PREFETCH=off
for v in ks2 ks4; do mkdir -p /tmp/$v && xz -dc tmp-device/$v/gemm_sm90.cubin.xz > /tmp/$v/gemm_sm90.cubin
  DBRMT_CUBINS=/tmp/$v timeout 120 dist/tests/dbrmt-kernels__gpu_gemm gemm_sm90_bytes_do_not_depend --ignored > $W/$v-gemm.log 2>&1
  mark "$v width+decode checks rc $? $(grep -h 'test result' $W/$v-gemm.log | cut -c1-40)"
done
for r in 1 2; do for v in main ks2 ks4; do
  E=X=1; [ $v != main ] && E=DBRMT_CUBINS=/tmp/$v
  env $E timeout 100 dist/dbrmt bench matrix --filter decode --out $W/matrix-$v.jsonl > $W/matrix-decode-$v-$r.log 2>&1
  mark "decode $v rc $? $(grep -hE 'ms/token' $W/matrix-decode-$v-$r.log | grep dbrmt | cut -c8-80 | tr -s ' ' | tr '\n' ' ')"
done; done
finish
