set -uo pipefail
export DBRMT_REPO_ROOT=$PWD
W=$OUT; T0=$(date +%s)
mark() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/marks.txt; }
python3 -c "import tarfile; tarfile.open('tmp-device/s9c1.tar.xz').extractall('A')"
python3 -c "import tarfile; tarfile.open('tmp-device/s9c4.tar.xz').extractall()"
A=A/dist/dbrmt; C=dist/dbrmt
for r in 1 2; do
  for v in A C; do bin=${!v}
    timeout 120 $bin bench matrix --filter decode --out $W/m-$v.jsonl > $W/decode-$v-$r.log 2>&1; mark "decode $v $r rc $?"
  done
done
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
for m in smollm2-135m llama-3.2-1b; do
DBRMT_GRAPHS=off timeout 120 $NCU --clock-control none -k "regex:armt_read_fused" --launch-skip 200 --launch-count 2 \
  $C bench requests --model $m --requests 1 --tokens 4096 --decode 16 --no-serial --out /tmp/x.jsonl > $W/ncu-$m.txt 2>&1; mark "ncu $m rc $?"
done
for v in A C; do bin=${!v}
  timeout 60 $bin bench profile --model llama-3.2-1b --segment 1024 --tokens 32768 --out $W/p.jsonl > $W/profile-1b-$v.log 2>&1; mark "profile 1B $v rc $?"
  timeout 60 $bin bench profile --model llama-160m --segment 512 --tokens 16384 --out $W/p.jsonl > $W/profile-160m-$v.log 2>&1; mark "profile 160M $v rc $?"
done
for f in 1b-t1024-131k 160m-t512-131k; do
  timeout 120 $C bench matrix --filter $f --out $W/matrix.jsonl > $W/matrix-$f.log 2>&1; mark "matrix $f rc $?"
done
timeout 330 dist/run.sh gpu > $W/gputests.log 2>&1; mark "gpu tests rc $?"
timeout 150 dist/run.sh selftest > $W/selftest.log 2>&1; mark "selftest rc $?"
{
echo "===== tests"; grep -hE "test result|passed, |FAIL|panicked" $W/gputests.log $W/selftest.log | cut -c1-140 | tail -16
echo "===== decode (A main, C read v3: z in smem + unswizzled u)"; for v in A C; do grep -h "bench: " $W/decode-$v-*.log | grep -v "on the GPU" | sed "s/^/$v /" | cut -c1-100; done
echo "===== ncu read"; for m in smollm2-135m llama-3.2-1b; do echo $m; grep -hE "Duration|Grid Size" $W/ncu-$m.txt; done
for v in A C; do echo "===== profile $v"; grep -hE "steps of|read" $W/profile-1b-$v.log $W/profile-160m-$v.log | cut -c1-110; done
echo "===== matrix"; cat $W/matrix-*.log | grep "bench: " | cut -c1-120
} > $W/summary.txt 2>&1
cat $W/summary.txt; cat $W/marks.txt
