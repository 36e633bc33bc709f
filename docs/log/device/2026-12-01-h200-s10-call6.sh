#!/usr/bin/env bash
# Session 10 call 6: main at de7f621 (the decode read: one converter warp per 32-column stage, one-row features): the
# read checks, every GPU test and the selftest; decode against the read before it (its cubin through DBRMT_CUBINS).
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s10c6; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall()"
timeout 90 dist/tests/dbrmt-kernels__gpu_armt --ignored > $W/armt.log 2>&1; rc=$?; mark "gpu_armt rc $rc"
if [ $rc -ne 0 ]; then grep -E "FAIL|panicked|differ" $W/armt.log | cut -c1-200 | head; exit 1; fi
for r in 1 2; do for v in before main; do
  unset DBRMT_CUBINS; [ $v = before ] && export DBRMT_CUBINS=$R/tmp-device/before
  timeout 60 dist/dbrmt bench matrix --filter decode --out $W/m-$v.jsonl > $W/decode-$v-$r.log 2>&1
  grep -h "bench: " $W/decode-$v-$r.log | grep -v "on the GPU" | cut -c1-100 | sed "s/^/$v /"
done; done
unset DBRMT_CUBINS
timeout 240 dist/run.sh gpu > $W/gputests.log 2>&1; mark "gpu tests rc $?"
grep -hE "test result|passed, |FAIL|panicked" $W/gputests.log | cut -c1-140 | tail -12
timeout 100 dist/run.sh selftest > $W/selftest.log 2>&1; mark "selftest rc $?"; grep -hE "passed, |FAIL" $W/selftest.log | tail -2
(cd $W && tar czf $OUT/s10c6.tgz .); cat $W/marks.txt
