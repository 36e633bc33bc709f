#!/usr/bin/env bash
# Session 17 call 5: v13.2, the one-launch decode MLP streaming only 3 of down's stages before the barrier (B = dist/;
# variant gemm_sm90 cubins through DBRMT_CUBINS: a10 = v13.1's whole ring, a1 = one stage), and B without the
# cooperative attribute (DBRMT_MLP_COOPERATIVE=off). The kernel check and the engine's decode checks on B, then decode
# rows alternately: two launches (DBRMT_DECODE_MLP=off), a3, a3 without the attribute, a10, a1; ncu of the 1B on B.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s17c5; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s17c5.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
for v in a1 a10; do mkdir -p /tmp/var/$v; python3 -c "import lzma; open('/tmp/var/$v/gemm_sm90.cubin','wb').write(lzma.open('tmp-device/$v/gemm_sm90.cubin.xz').read())"; done
timeout 150 dist/tests/dbrmt-kernels__gpu_gemm decode_mlp --ignored --test-threads=1 > $W/gemm-mlp.log 2>&1; rc=$?
mark "gpu_gemm decode_mlp rc $rc $(grep -h 'test result' $W/gemm-mlp.log | tail -1 | cut -c1-50)"
if [ $rc -ne 0 ]; then grep -E "FAIL|panicked" $W/gemm-mlp.log | cut -c1-250 | head -10; finish; fi
timeout 150 dist/tests/dbrmt-runtime__gpu_engine decode_ --ignored --test-threads=1 > $W/engine-decode.log 2>&1
mark "gpu_engine decode_ rc $? $(grep -h 'test result' $W/engine-decode.log | tail -1 | cut -c1-50)"
DBRMT_MLP_COOPERATIVE=off timeout 150 dist/tests/dbrmt-runtime__gpu_engine decode_mlp --ignored --test-threads=1 > $W/engine-mlp-nocoop.log 2>&1
mark "gpu_engine decode_mlp (no cooperative attribute) rc $? $(grep -h 'test result' $W/engine-mlp-nocoop.log | tail -1 | cut -c1-50)"
timeout 100 dist/dbrmt bench matrix --filter decode --out $W/warm.jsonl > $W/warm.log 2>&1; mark "decode warm-up rc $?"
for r in 1 2 3; do for v in two a3 a3-nocoop a10 a1; do
  case $v in two) E="DBRMT_DECODE_MLP=off";; a3-nocoop) E="DBRMT_MLP_COOPERATIVE=off";; a10|a1) E="DBRMT_CUBINS=/tmp/var/$v";; *) E="X_=1";; esac
  env $E timeout 100 dist/dbrmt bench matrix --filter decode --out $W/matrix-$v.jsonl > $W/matrix-decode-$v-$r.log 2>&1
  mark "decode $v rc $? $(grep -hE 'tokens/s' $W/matrix-decode-$v-$r.log | grep dbrmt | cut -c8-90 | tr -s ' ' | tr '\n' ' ')"
done; done
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
DBRMT_GRAPHS=off timeout 120 $NCU --clock-control none --metrics gpu__time_duration.sum,dram__bytes_read.sum.per_second --csv --launch-skip 1500 --launch-count 400 \
    dist/dbrmt bench requests --model llama-3.2-1b --requests 1 --tokens 4096 --decode 16 --no-serial --out /tmp/x.jsonl > $W/ncu-1b-a3.csv 2> $W/ncu-1b-a3.err
mark "ncu 1b a3 rc $? $(grep -c gpu__time_duration $W/ncu-1b-a3.csv) rows"
finish
