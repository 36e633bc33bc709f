#!/usr/bin/env bash
# Session 13 call 6: the embedding's bf16 mirror (branch embed-mirror, B = dist/) against the h-mirror engine of call 3
# (A): embed checks (gpu_layer_ops), engine, requests and generation tests, the 160M profile, 160M 131K and decode rows.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s13c6; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s13c6.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
mkdir -p /tmp/A && python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall('/tmp/A')"
for t in dbrmt-kernels__gpu_layer_ops dbrmt-runtime__gpu_engine dbrmt-runtime__gpu_requests dbrmt-cli__gpu_generate; do
  timeout 150 dist/tests/$t --ignored --test-threads=1 > $W/$t.log 2>&1; rc=$?; mark "$t rc $rc $(grep -h 'test result' $W/$t.log | tail -1 | cut -c1-50)"
  if [ $rc -ne 0 ]; then grep -E "FAIL|panicked" $W/$t.log | cut -c1-220 | head -10; finish; fi
done
timeout 90 dist/dbrmt bench profile --model llama-160m --segment 512 --tokens 131072 --out $W/profile.jsonl > $W/profile-160m.log 2>&1
mark "profile 160m rc $? $(grep -hE 'cells, ' $W/profile-160m.log | cut -c8-100) $(grep -hE 'embed|read: q' $W/profile-160m.log | tr -s ' ' | tr '\n' ' ')"
for r in 1 2; do for f in 160m-t512-131k decode; do for v in new old; do
  B=dist/dbrmt; [ $v = old ] && B=/tmp/A/dist/dbrmt
  timeout 100 $B bench matrix --filter $f --out $W/matrix-$v.jsonl > $W/matrix-$f-$v-$r.log 2>&1
  mark "matrix $f $v rc $? $(grep -hE 'dbrmt-diagonal|ms/token' $W/matrix-$f-$v-$r.log | cut -c8-80 | tr -s ' ' | tr '\n' ' ')"
done; done; done
finish
