#!/usr/bin/env bash
# Session 11 call 5: main at c5f2a01 (the pre-split read; v6 reverted; the same kernels as b43da5a, which call 2
# checked): gpu_armt, gpu_generate, gpu_serve again on this build; then a per-kernel ledger of one decoded token
# (ncu gpu__time_duration of every launch of a short decode, graphs off; the last token's launches are the table's).
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s11c5; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall()"
for t in dbrmt-kernels__gpu_armt dbrmt-cli__gpu_generate dbrmt-cli__gpu_serve; do
  timeout 150 dist/tests/$t --ignored --test-threads=1 > $W/$t.log 2>&1; mark "$t rc $? $(grep -h 'test result' $W/$t.log | tail -1 | cut -c1-50)"
  grep -E "FAILED|panicked" $W/$t.log | cut -c1-200 | head -4
done
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
for m in smollm2-135m llama-3.2-1b; do
  DBRMT_GRAPHS=off timeout 200 $NCU --clock-control none --metrics gpu__time_duration.sum --csv \
    dist/dbrmt bench requests --model $m --requests 1 --tokens 4096 --decode 3 --no-serial --out /tmp/x.jsonl > $W/ledger-$m.csv 2> $W/ledger-$m.err
  mark "ledger $m rc $? $(grep -c gpu__time_duration $W/ledger-$m.csv) launches"
done
(cd $W && tar czf $OUT/s11c5.tgz .); cat $W/marks.txt
