set -uo pipefail
python3 -c "import tarfile; tarfile.open('tmp-device/s8c2.tar.xz').extractall()"
export DBRMT_REPO_ROOT=$PWD
W=$OUT; T0=$(date +%s)
mark() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/marks.txt; }
for i in 1 2; do for m in smollm2-135m llama-3.2-1b; do for g in on off; do
  DBRMT_GRAPHS=$g timeout 90 dist/dbrmt bench requests --model $m --requests 1 --tokens 4096 --decode 128 --no-serial \
    --out "$W/decode.jsonl" 2> "$W/decode-$m-$g-$i.log"; mark "decode $m graphs $g #$i rc $?"
done; done; done
timeout 60 dist/dbrmt bench profile --model llama-3.2-1b --segment 1024 --tokens 32768 --out $W/profile-1b.jsonl > $W/profile-1b.log 2>&1; mark "profile rc $?"
timeout 330 dist/run.sh gpu > $W/gputests.log 2>&1; mark "gpu tests rc $?"
timeout 150 dist/run.sh selftest > $W/selftest.log 2>&1; mark "selftest rc $?"
echo "===== tests"; grep -E "test result|FAILED|failed|passed" $W/gputests.log | tail -15; tail -5 $W/selftest.log
grep -E "rope|attention " $W/profile-1b.log
echo "===== decode (tokens/s; steps; wait for the GPU)"
for f in $W/decode-*.log; do echo "$(basename $f .log): $(grep -h 'bench: requests' $f | grep -o '[0-9.]* tokens/s') | $(grep -h phases $f | grep -o 'steps [0-9.]* (of which waiting for the GPU at the copy-out [0-9.]*')"; done
cat $W/marks.txt
