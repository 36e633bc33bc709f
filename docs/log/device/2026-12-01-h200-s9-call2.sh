set -uo pipefail
export DBRMT_REPO_ROOT=$PWD
W=$OUT; T0=$(date +%s)
mark() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/marks.txt; }
python3 -c "import tarfile; tarfile.open('tmp-device/s9c1.tar.xz').extractall('A')"
python3 -c "import tarfile; tarfile.open('tmp-device/s9c2.tar.xz').extractall()"
A=A/dist/dbrmt; B=dist/dbrmt
for r in 1 2; do
  for v in A B; do bin=${!v}
    timeout 120 $bin bench matrix --filter decode --out $W/m-$v.jsonl > $W/decode-$v-$r.log 2>&1; mark "decode $v $r rc $?"
  done
done
for v in A B; do bin=${!v}
  timeout 60 $bin bench profile --model llama-3.2-1b --segment 1024 --tokens 32768 --out $W/p-$v.jsonl > $W/profile-1b-$v.log 2>&1; mark "profile 1B $v rc $?"
  timeout 60 $bin bench profile --model llama-160m --segment 512 --tokens 16384 --out $W/p-$v.jsonl > $W/profile-160m-$v.log 2>&1; mark "profile 160M $v rc $?"
done
timeout 150 dist/run.sh selftest > $W/selftest.log 2>&1; mark "selftest rc $?"
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
for m in smollm2-135m llama-3.2-1b; do
DBRMT_GRAPHS=off timeout 120 $NCU --clock-control none -k "regex:armt_read_fused" --launch-skip 300 --launch-count 3 \
  $B bench requests --model $m --requests 1 --tokens 4096 --decode 16 --no-serial --out /tmp/x.jsonl > $W/ncu-read-$m.txt 2>&1; mark "ncu $m rc $?"
done
{
echo "===== selftest"; grep -E "read|passed, |FAIL" $W/selftest.log | cut -c1-150 | tail -8
echo "===== decode"; grep -h "bench: " $W/decode-*.log | grep -v "on the GPU" | cut -c1-120
for v in A B; do echo "===== profile $v"; cat $W/profile-1b-$v.log $W/profile-160m-$v.log | grep -vE "^\s*$" | cut -c1-100; done
echo "===== ncu"; grep -hE "Duration|Grid Size" $W/ncu-read-*.txt
} > $W/summary.txt 2>&1
cat $W/summary.txt; cat $W/marks.txt
