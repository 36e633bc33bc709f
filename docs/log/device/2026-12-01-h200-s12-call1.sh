#!/usr/bin/env bash
# Prepared in session 11 on branch read-decode-q, not run (no device time left): the next session's first call
# (~5 min on an H200). The decode read making its own q projection (armt_read_fused_sm90_split_q_n32_f32;
# docs/log/armt_read_fused_sm90.md §12, Next 0): its check against the q GEMM + the pre-split read (bitwise) and the
# reference, the engine tests (decode == prefill rests on it), decode with DBRMT_READ_Q on and off in one binary,
# synccheck on the read's checks, the selftest.
# Before the call (here, NVCC set): on branch read-decode-q, `cargo xtask bundle --gpu`, cp dist.tar.xz
# tmp-device/A.tar.xz; carry ["tmp-device"].
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=${OUT:-/tmp}/pending; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf ${OUT:-/tmp}/pending.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall()"
timeout 150 dist/tests/dbrmt-kernels__gpu_armt --ignored --test-threads=1 > $W/armt.log 2>&1; rc=$?
mark "gpu_armt rc $rc $(grep -h 'test result' $W/armt.log | cut -c1-40)"
grep -E "split_q|FAIL|panicked" $W/armt.log | cut -c1-220 | head -12
[ $rc -ne 0 ] && finish
for t in dbrmt-runtime__gpu_engine dbrmt-runtime__gpu_requests dbrmt-cli__gpu_generate; do
  timeout 150 dist/tests/$t --ignored --test-threads=1 > $W/$t.log 2>&1; rc=$?; mark "$t rc $rc $(grep -h 'test result' $W/$t.log | tail -1 | cut -c1-50)"
  [ $rc -ne 0 ] && { grep -E "FAIL|panicked" $W/$t.log | cut -c1-220 | head -8; finish; }
done
for r in 1 2 3; do for v in on off; do
  DBRMT_READ_Q=$v timeout 30 dist/dbrmt bench matrix --filter decode --out $W/m-$v.jsonl > $W/decode-$v-$r.log 2>&1
  mark "decode READ_Q=$v rc $? $(grep -h 'bench: ' $W/decode-$v-$r.log | grep -v 'on the GPU' | cut -c8-70 | tr '\n' ' ')"
done; done
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
timeout 120 $CS --tool synccheck dist/tests/dbrmt-kernels__gpu_armt --ignored --test-threads=1 pre_split > $W/synccheck.log 2>&1
mark "synccheck rc $? $(grep -h 'ERROR SUMMARY' $W/synccheck.log | tail -1)"
(cd /tmp && timeout 150 $R/dist/dbrmt selftest > $W/selftest.log 2>&1); mark "selftest rc $? $(grep -hE 'passed, ' $W/selftest.log | tail -1)"
grep -h FAIL $W/selftest.log | cut -c1-180 | head -4
finish
