set -uo pipefail
export DBRMT_REPO_ROOT=$PWD
W=$OUT; T0=$(date +%s)
mark() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/marks.txt; }
python3 -c "import tarfile; tarfile.open('tmp-device/s9c6.tar.xz').extractall()"
# the read's checks first (the k-split among them): stop here if they fail
timeout 90 dist/tests/dbrmt-kernels__gpu_armt --ignored > $W/armt.log 2>&1; rc=$?; mark "gpu_armt rc $rc"
if [ $rc -ne 0 ]; then grep -E "FAIL|panicked|ksplit|k-split|error" $W/armt.log | cut -c1-220 | head -30; exit 1; fi
grep -E "k-split|alone vs in its span" $W/armt.log | cut -c1-200
for r in 1 2; do
  for v in off on; do
    DBRMT_READ_SPLIT=$v timeout 60 dist/dbrmt bench matrix --filter decode --out $W/m-$v.jsonl > $W/decode-$v-$r.log 2>&1; mark "decode split=$v $r rc $?"
  done
done
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
for m in smollm2-135m llama-3.2-1b; do
DBRMT_GRAPHS=off timeout 40 $NCU --clock-control none -k "regex:armt_read_fused" --launch-skip 200 --launch-count 2 \
  dist/dbrmt bench requests --model $m --requests 1 --tokens 4096 --decode 16 --no-serial --out /tmp/x.jsonl > $W/ncu-$m.txt 2>&1; mark "ncu $m rc $?"
done
echo "===== decode (split off / on, one binary)"; for v in off on; do grep -h "bench: " $W/decode-$v-*.log | grep -v "on the GPU" | sed "s/^/$v /" | cut -c1-100; done
echo "===== ncu read (split on)"; for m in smollm2-135m llama-3.2-1b; do echo $m; grep -hE "Duration|Grid Size" $W/ncu-$m.txt; done
timeout 200 dist/run.sh gpu > $W/gputests.log 2>&1; mark "gpu tests rc $?"
grep -hE "test result|passed, |FAIL|panicked" $W/gputests.log | cut -c1-140 | tail -14
timeout 90 dist/run.sh selftest > $W/selftest.log 2>&1; mark "selftest rc $?"
grep -hE "passed, |FAIL" $W/selftest.log | tail -3
cat $W/marks.txt
