#!/usr/bin/env bash
# Session 10 call 7: which half of the decode read v4 makes call 6's 1B decode hang and the selftest's "decode graphs
# on = off" (1B shape, 1000 + 40 pushed) differ: v4 as embedded, v1 (one converter warp per stage) alone, the one-row
# features alone, as cubins through DBRMT_CUBINS into main@de7f621's bundle.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s10c7; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall()"
for v in v4 v1 row0 before; do
  unset DBRMT_CUBINS; [ $v != v4 ] && export DBRMT_CUBINS=$R/tmp-device/$v
  timeout 25 dist/dbrmt bench matrix --filter 1b-decode --out $W/m.jsonl > $W/decode-$v.log 2>&1; mark "$v 1B decode rc $? $(grep -h 'bench: 1b' $W/decode-$v.log | cut -c30-90)"
done
for v in row0 v1; do export DBRMT_CUBINS=$R/tmp-device/$v
  (cd /tmp && timeout 110 $R/dist/dbrmt selftest > $W/selftest-$v.log 2>&1); mark "$v selftest rc $? $(grep -hE 'passed, ' $W/selftest-$v.log | tail -1)"
  grep -h FAIL $W/selftest-$v.log | cut -c1-160 | head -4
done
unset DBRMT_CUBINS
(cd $W && tar czf $OUT/s10c7.tgz .); cat $W/marks.txt
