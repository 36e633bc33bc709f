#!/usr/bin/env bash
# session 7, device call 8: main at the session's end (kernels as dcb823a): every GPU test and selftest via dist/run.sh,
# then the many-requests prefill at shapes where one request underfills the GPU (160M T = 512 and 1B T = 256,
# 16 x 8K packed against one after another), for #14's 1.5x target. Bundle: tmp-device/final.tar.xz.
set -uo pipefail
R=$PWD; T0=$SECONDS; W=/tmp/s7c8; rm -rf $W; mkdir -p $W
rm -rf dist && python3 -c "import tarfile; tarfile.open('tmp-device/final.tar.xz').extractall()"
timeout 330 dist/run.sh > $W/gpu-tests.log 2>&1; echo "### dist/run.sh rc $? after $((SECONDS-T0)) s"
grep -E "^test result|passed, |FAILED|panicked" $W/gpu-tests.log | sort | uniq -c | head -20
export DBRMT_REPO_ROOT=$R
timeout 60 dist/dbrmt bench requests --model llama-160m --segment 512 --requests 16 --tokens 8192 --out $W/req.jsonl 2> $W/req-160m.log; echo "### 160M rc $?"
timeout 60 dist/dbrmt bench requests --model llama-3.2-1b --segment 256 --requests 16 --tokens 8192 --out $W/req.jsonl 2> $W/req-1b-t256.log; echo "### 1B T=256 rc $?"
grep -h "bench: requests" $W/req-*.log | cut -c1-170
(cd $W && tar czf $OUT/s7c8.tgz .)
echo "### done after $((SECONDS-T0)) s"
