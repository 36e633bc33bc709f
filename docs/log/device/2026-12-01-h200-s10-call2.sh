#!/usr/bin/env bash
# Session 10 call 2: where the fused read's time goes, per SASS line (ncu source page, stall sampling): the SmolLM2 and
# 1B decode reads (32-column tiles, one row) and a 1B prefill read (128 x 128 tiles); the step profiles of main.
# (Recorded after the run: the script as it ran, tmp-device/src_summary.py is -s10-src_summary.py here.)
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s10c2; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall()"
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
src() {  # name, then the command
  local n=$1; shift
  timeout 90 $NCU --clock-control none --set full --import-source no -k "regex:armt_read_fused" --launch-skip ${SKIP:-200} --launch-count 1 \
    -o $W/$n "$@" > $W/$n.log 2>&1; mark "ncu $n rc $?"
  timeout 60 $NCU -i $W/$n.ncu-rep --page source --csv --print-source sass > $W/$n-sass.csv 2>&1
  timeout 60 $NCU -i $W/$n.ncu-rep --page details --csv > $W/$n-details.csv 2>&1
  echo "===== $n"; python3 tmp-device/src_summary.py $W/$n-sass.csv 22 | tee $W/$n-top.txt
  grep -E '"(Duration|Elapsed Cycles|Registers Per Thread|Achieved Occupancy|Issue Slots Busy|No Eligible)"' $W/$n-details.csv | awk -F'","' '{print "   ", $(NF-2), $(NF-1), $NF}' | head -8
}
DBRMT_GRAPHS=off src read-decode-smollm2 dist/dbrmt bench requests --model smollm2-135m --requests 1 --tokens 4096 --decode 16 --no-serial --out /tmp/x.jsonl
DBRMT_GRAPHS=off src read-decode-1b dist/dbrmt bench requests --model llama-3.2-1b --requests 1 --tokens 4096 --decode 16 --no-serial --out /tmp/x.jsonl
SKIP=20 src read-prefill-1b dist/dbrmt bench profile --model llama-3.2-1b --segment 1024 --tokens 16384 --out /tmp/p.jsonl
for m in "llama-3.2-1b 1024" "llama-160m 512"; do set -- $m
  timeout 90 dist/dbrmt bench profile --model $1 --segment $2 --tokens 32768 --out $W/profile-$1.jsonl > $W/profile-$1.log 2>&1; mark "profile $1 rc $?"
  grep -E " ms" $W/profile-$1.log | head -24
done
for r in 1 2; do timeout 60 dist/dbrmt bench matrix --filter decode --out $W/m.jsonl > $W/decode-$r.log 2>&1; grep -h "bench: " $W/decode-$r.log | grep -v "on the GPU" | cut -c1-100; done
rm -f $W/*.ncu-rep.tmp; (cd $W && tar czf $OUT/s10c2.tgz --exclude='*.ncu-rep' . ) ; ls -la $OUT
cat $W/marks.txt
