#!/usr/bin/env bash
# Session 11 call 4: main at 7f10c3f (the pre-split read + read v6), the GPU test binaries calls 2-3 did not run
# (gemm, layer ops, poison, generate, serve), compute-sanitizer on the pre-split read's checks, and decode rows of
# v6 + pre-split (main) against the pre-split read without v6 (b43da5a's cubin through DBRMT_CUBINS).
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s11c4; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall()"
python3 -c "import lzma; open('tmp-device/prev6/armt_read_fused_sm90.cubin','wb').write(lzma.open('tmp-device/prev6/armt_read_fused_sm90.cubin.xz').read())"
for t in dbrmt-kernels__gpu_gemm dbrmt-kernels__gpu_layer_ops dbrmt-kernels__gpu_poison dbrmt-cli__gpu_generate dbrmt-cli__gpu_serve; do
  timeout 150 dist/tests/$t --ignored --test-threads=1 > $W/$t.log 2>&1; mark "$t rc $? $(grep -h 'test result' $W/$t.log | tail -1 | cut -c1-50)"
  grep -E "FAILED|panicked" $W/$t.log | cut -c1-200 | head -4
done
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in racecheck synccheck; do
  timeout 150 $CS --tool $tool --print-limit 10 dist/tests/dbrmt-kernels__gpu_armt --ignored --test-threads=1 pre_split \
    > $W/sanitizer-$tool.log 2>&1; mark "pre-split read $tool rc $? $(grep -hE 'ERROR SUMMARY|RACECHECK SUMMARY' $W/sanitizer-$tool.log | tail -1)"
done
for r in 1 2 3; do for v in main prev6; do
  unset DBRMT_CUBINS; [ $v = prev6 ] && export DBRMT_CUBINS=$R/tmp-device/prev6
  timeout 30 dist/dbrmt bench matrix --filter decode --out $W/m-$v.jsonl > $W/decode-$v-$r.log 2>&1
  mark "decode $v rc $? $(grep -h 'bench: ' $W/decode-$v-$r.log | grep -v 'on the GPU' | cut -c8-70 | tr '\n' ' ')"
done; done
unset DBRMT_CUBINS
(cd $W && tar czf $OUT/s11c4.tgz .); cat $W/marks.txt
