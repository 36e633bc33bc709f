#!/usr/bin/env bash
# Session 15 call 1: the normed decode GEMMs (B = dist/, main with gemm_sm90_*_normed) against main before them
# (A = /tmp/A/dist). The wgmma chain microbenchmark; tests on B: the normed GEMM checks, layer ops (the RoPE
# prefetch's new check), engine (decode norms fused = apart, decode == prefill, graphs), generation; decode rows
# alternately: B fused, B DBRMT_DECODE_NORM=off, A; memcheck of the normed checks; ncu of the 1B decode kernels.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s15c1; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s15c1.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
mkdir -p /tmp/A && python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall('/tmp/A')"
xz -dc tmp-device/bin/wgmma_chain_dev.xz > /tmp/wgmma_chain_dev && chmod +x /tmp/wgmma_chain_dev
timeout 60 /tmp/wgmma_chain_dev > $W/wgmma-chain.log 2>&1; mark "wgmma chain rc $?"
run_test() { # name filter
  timeout 200 dist/tests/$1 ${2:-} --ignored --test-threads=1 > $W/$1${2:+-$2}.log 2>&1; rc=$?
  mark "B $1 ${2:-} rc $rc $(grep -h 'test result' $W/$1${2:+-$2}.log | tail -1 | cut -c1-50)"
  if [ $rc -ne 0 ]; then grep -E "FAIL|panicked|differ|normed" $W/$1${2:+-$2}.log | cut -c1-260 | head -14; fi
}
run_test dbrmt-kernels__gpu_gemm normed
run_test dbrmt-kernels__gpu_layer_ops
run_test dbrmt-runtime__gpu_engine
run_test dbrmt-cli__gpu_generate
for r in 1 2 3; do for v in on off old; do
  B=dist/dbrmt; [ $v = old ] && B=/tmp/A/dist/dbrmt
  [ $v = off ] && export DBRMT_DECODE_NORM=off || unset DBRMT_DECODE_NORM
  timeout 100 $B bench matrix --filter decode --out $W/matrix-$v.jsonl > $W/matrix-decode-$v-$r.log 2>&1
  mark "decode $v rc $? $(grep -hE 'tokens/s|ms/token' $W/matrix-decode-$v-$r.log | grep dbrmt | cut -c8-90 | tr -s ' ' | tr '\n' ' ')"
done; done
unset DBRMT_DECODE_NORM
timeout 150 compute-sanitizer --tool memcheck dist/tests/dbrmt-kernels__gpu_gemm normed --ignored --test-threads=1 > $W/memcheck.log 2>&1
mark "memcheck normed rc $? $(grep -h 'ERROR SUMMARY' $W/memcheck.log | tail -1)"
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
for v in on off; do
  E=X=1; [ $v = off ] && E=DBRMT_DECODE_NORM=off
  env $E DBRMT_GRAPHS=off timeout 120 $NCU --clock-control none --metrics gpu__time_duration.sum --csv --launch-skip 1500 --launch-count 400 \
    dist/dbrmt bench requests --model llama-3.2-1b --requests 1 --tokens 4096 --decode 16 --no-serial --out /tmp/x.jsonl > $W/ncu-1b-$v.csv 2> $W/ncu-1b-$v.err
  mark "ncu 1b $v rc $? $(grep -c gpu__time_duration $W/ncu-1b-$v.csv) rows"
done
cat $W/wgmma-chain.log | tail -40
finish
