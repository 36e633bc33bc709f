#!/usr/bin/env bash
# Session 13 call 5: branch read-q-runs (merged runs' read q as one group again; otherwise main's h mirror): every GPU
# test and the selftest (dist/run.sh), then concurrent decode (1, 16, 64 requests) against main (A) alternately.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s13c5; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s13c5.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
mkdir -p /tmp/A && python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall('/tmp/A')"
timeout 420 dist/run.sh > $W/run-all.log 2>&1; mark "dist/run.sh rc $?"
grep -hE "test result|passed, " $W/run-all.log | cut -c1-70 | sort | uniq -c | head -12
grep -hE "FAILED|panicked" $W/run-all.log | head -6
for v in new old; do B=dist/dbrmt; [ $v = old ] && B=/tmp/A/dist/dbrmt
  timeout 100 $B bench requests --requests 1,16,64 --tokens 128 --decode 64 --no-serial --out $W/req-$v.jsonl > $W/req-$v.log 2>&1
  mark "requests decode $v rc $? $(grep -hE 'decode ' $W/req-$v.log | grep -oE '[0-9]+ tokens/s' | tr '\n' ' ')"
done
finish
