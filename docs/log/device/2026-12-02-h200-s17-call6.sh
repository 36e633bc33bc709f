#!/usr/bin/env bash
# Session 17 call 6: the memory's query weights (mem_q, 4 MB at the 1B) kept in L2 by an access-policy window on the
# engine's stream (B = dist/; DBRMT_L2_WINDOW=off: main). The engine's decode checks and generation on B; decode rows
# alternately on / off with graphs (a captured node may or may not carry the stream's window) and without; the 1B
# 131K prefill row on / off; ncu of the 1B decode's memory query launch with caches kept (--cache-control none).
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s17c6; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s17c6.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
timeout 150 dist/tests/dbrmt-runtime__gpu_engine decode --ignored --test-threads=1 > $W/engine-decode.log 2>&1
mark "gpu_engine decode rc $? $(grep -h 'test result' $W/engine-decode.log | tail -1 | cut -c1-50)"
grep -E "FAIL|panicked" $W/engine-decode.log | cut -c1-250 | head -8
timeout 100 dist/tests/dbrmt-cli__gpu_generate --ignored --test-threads=1 > $W/generate.log 2>&1
mark "gpu_generate rc $? $(grep -h 'test result' $W/generate.log | tail -1 | cut -c1-50)"
timeout 100 dist/dbrmt bench matrix --filter decode --out $W/warm.jsonl > $W/warm.log 2>&1; mark "decode warm-up rc $?"
for r in 1 2 3; do for v in on off on-nograph off-nograph; do
  case $v in off) E="DBRMT_L2_WINDOW=off";; on-nograph) E="DBRMT_GRAPHS=off";; off-nograph) E="DBRMT_L2_WINDOW=off DBRMT_GRAPHS=off";; *) E="X_=1";; esac
  env $E timeout 100 dist/dbrmt bench matrix --filter decode --out $W/matrix-$v.jsonl > $W/matrix-decode-$v-$r.log 2>&1
  mark "decode $v rc $? $(grep -hE 'tokens/s' $W/matrix-decode-$v-$r.log | grep dbrmt | cut -c8-90 | tr -s ' ' | tr '\n' ' ')"
done; done
for v in on off; do
  E="X_=1"; [ $v = off ] && E="DBRMT_L2_WINDOW=off"
  env $E timeout 100 dist/dbrmt bench matrix --filter 1b-t1024-131k --out $W/matrix-1b-$v.jsonl > $W/matrix-1b-$v.log 2>&1
  mark "1b 131k $v rc $? $(grep -hE 'dbrmt-diagonal' $W/matrix-1b-$v.log | cut -c8-90 | tr -s ' ')"
done
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
for v in on off; do
  E="X_=1"; [ $v = off ] && E="DBRMT_L2_WINDOW=off"
  env $E DBRMT_GRAPHS=off timeout 100 $NCU --clock-control none --cache-control none --metrics gpu__time_duration.sum --csv --kernel-name regex:gemm_sm90_nt_bf16_bf16_f32_bn16 --launch-skip 300 --launch-count 120 \
      dist/dbrmt bench requests --model llama-3.2-1b --requests 1 --tokens 4096 --decode 16 --no-serial --out /tmp/x.jsonl > $W/ncu-memq-$v.csv 2> $W/ncu-memq-$v.err
  mark "ncu bn16 $v rc $? $(grep -c gpu__time_duration $W/ncu-memq-$v.csv) rows"
done
finish
