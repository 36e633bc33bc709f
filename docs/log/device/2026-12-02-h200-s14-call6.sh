#!/usr/bin/env bash
# Session 14 call 6: the narrow widths' A operand from registers (GEMM_SM90_NARROW_RS=1: only the problem's real rows
# loaded, the rest zero; the wgmma then reads only B from shared memory), as a cubin through DBRMT_CUBINS over main's
# bundle (B = dist/, 1cdc844 with the swapped-operand probe). Bits first (every width bitwise, decode rows == segment
# rows, engine decode == prefill), then the probe, decode rows alternately, ncu of the 1B decode kernels.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s14c6; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s14c6.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
RS=/tmp/rs; mkdir -p $RS && xz -dc tmp-device/rs/gemm_sm90.cubin.xz > $RS/gemm_sm90.cubin
t() { # tag env test filter
  local tag=$1 e=$2 name=$3 filt=$4
  env $e timeout 200 dist/tests/$name $filt --ignored --test-threads=1 > $W/$tag-$name.log 2>&1; rc=$?
  mark "$tag $name $filt rc $rc $(grep -h 'test result' $W/$tag-$name.log | tail -1 | cut -c1-50)"
  if [ $rc -ne 0 ]; then grep -E "FAIL|panicked|differ|rel_err" $W/$tag-$name.log | cut -c1-300 | head -10; fi
}
t rs DBRMT_CUBINS=$RS dbrmt-kernels__gpu_gemm gemm_sm90_bytes_do_not_depend
t rs DBRMT_CUBINS=$RS dbrmt-runtime__gpu_engine ""
t main X=1 dbrmt-kernels__gpu_gemm swapped
for r in 1 2 3; do for v in rs main; do
  E=X=1; [ $v = rs ] && E=DBRMT_CUBINS=$RS
  env $E timeout 100 dist/dbrmt bench matrix --filter decode --out $W/matrix-$v.jsonl > $W/matrix-decode-$v-$r.log 2>&1
  mark "decode $v rc $? $(grep -hE 'ms/token' $W/matrix-decode-$v-$r.log | grep dbrmt | cut -c8-80 | tr -s ' ' | tr '\n' ' ')"
done; done
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
DBRMT_CUBINS=$RS DBRMT_GRAPHS=off timeout 150 $NCU --clock-control none --metrics gpu__time_duration.sum --csv --launch-skip 1500 --launch-count 400 \
  dist/dbrmt bench requests --model llama-3.2-1b --requests 1 --tokens 4096 --decode 16 --no-serial --out /tmp/x.jsonl > $W/ncu-1b-rs.csv 2> $W/ncu-1b-rs.err
mark "ncu 1b rs rc $? $(grep -c gpu__time_duration $W/ncu-1b-rs.csv) rows"
finish
