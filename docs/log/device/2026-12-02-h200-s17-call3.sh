#!/usr/bin/env bash
# Session 17 call 3: v14, the narrow widths' B stages prefetched into L2 ahead of the ring (B = dist/: 8 stages
# ahead; variant gemm_sm90 cubins through DBRMT_CUBINS: main = 3e73b7e's, a4 / a16 = 4 / 16 ahead). The GEMM checks
# (widths, decode rows, normed) and the engine's decode checks on B; then decode rows alternately B, main, a4, a16;
# ncu of the 1B decode on B and main; requests and generation on B.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s17c3; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s17c3.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
for v in main a4 a16; do mkdir -p /tmp/var/$v; python3 -c "import lzma; open('/tmp/var/$v/gemm_sm90.cubin','wb').write(lzma.open('tmp-device/$v/gemm_sm90.cubin.xz').read())"; done
timeout 200 dist/tests/dbrmt-kernels__gpu_gemm gemm_sm90 --ignored --test-threads=1 > $W/gemm.log 2>&1; rc=$?
mark "gpu_gemm gemm_sm90 rc $rc $(grep -h 'test result' $W/gemm.log | tail -1 | cut -c1-50)"
if [ $rc -ne 0 ]; then grep -E "FAIL|panicked" $W/gemm.log | cut -c1-250 | head -12; fi
timeout 150 dist/tests/dbrmt-runtime__gpu_engine decode --ignored --test-threads=1 > $W/engine-decode.log 2>&1
mark "gpu_engine decode rc $? $(grep -h 'test result' $W/engine-decode.log | tail -1 | cut -c1-50)"
grep -E "FAIL|panicked" $W/engine-decode.log | cut -c1-250 | head -8
timeout 100 dist/dbrmt bench matrix --filter decode --out $W/warm.jsonl > $W/warm.log 2>&1; mark "decode warm-up rc $?"
for r in 1 2 3 4; do for v in a8 main a4 a16; do
  E="X_=1"; [ $v != a8 ] && E="DBRMT_CUBINS=/tmp/var/$v"
  env $E timeout 100 dist/dbrmt bench matrix --filter decode --out $W/matrix-$v.jsonl > $W/matrix-decode-$v-$r.log 2>&1
  mark "decode $v rc $? $(grep -hE 'tokens/s' $W/matrix-decode-$v-$r.log | grep dbrmt | cut -c8-90 | tr -s ' ' | tr '\n' ' ')"
done; done
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
for v in a8 main; do
  E="X_=1"; [ $v != a8 ] && E="DBRMT_CUBINS=/tmp/var/$v"
  env $E DBRMT_GRAPHS=off timeout 120 $NCU --clock-control none --metrics gpu__time_duration.sum,dram__bytes_read.sum.per_second --csv --launch-skip 1500 --launch-count 400 \
      dist/dbrmt bench requests --model llama-3.2-1b --requests 1 --tokens 4096 --decode 16 --no-serial --out /tmp/x.jsonl > $W/ncu-1b-$v.csv 2> $W/ncu-1b-$v.err
  mark "ncu 1b $v rc $? $(grep -c gpu__time_duration $W/ncu-1b-$v.csv) rows"
done
for t in dbrmt-runtime__gpu_requests dbrmt-cli__gpu_generate; do
  timeout 200 dist/tests/$t --ignored --test-threads=1 > $W/$t.log 2>&1; rc=$?
  mark "$t rc $rc $(grep -h 'test result' $W/$t.log | tail -1 | cut -c1-50)"
  if [ $rc -ne 0 ]; then grep -E "FAIL|panicked" $W/$t.log | cut -c1-250 | head -8; fi
done
finish
