set -uo pipefail
python3 -c "import tarfile; tarfile.open('tmp-device/s8c3.tar.xz').extractall()"
export DBRMT_REPO_ROOT=$PWD
W=$OUT; T0=$(date +%s)
mark() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/marks.txt; }
for i in 1 2; do for g in on off; do
  DBRMT_GRAPHS=$g timeout 120 dist/dbrmt bench matrix --filter decode --out $W/matrix-$g.jsonl > $W/matrix-$g-$i.log 2>&1; mark "matrix decode graphs $g #$i rc $?"
done; done
for i in 1 2; do for m in smollm2-135m llama-3.2-1b; do for g in on off; do
  DBRMT_GRAPHS=$g timeout 90 dist/dbrmt bench requests --model $m --requests 1 --tokens 4096 --decode 128 --no-serial \
    --out "$W/decode.jsonl" 2> "$W/decode-$m-$g-$i.log"; mark "decode $m graphs $g #$i rc $?"
done; done; done
for m in smollm2-135m llama-3.2-1b; do
  DBRMT_PDL=off timeout 90 dist/dbrmt bench requests --model $m --requests 1 --tokens 4096 --decode 128 --no-serial \
    --out "$W/decode.jsonl" 2> "$W/decode-$m-on-pdloff.log"; mark "decode $m graphs on pdl off rc $?"
done
timeout 330 dist/run.sh gpu > $W/gputests.log 2>&1; mark "gpu tests rc $?"
timeout 150 dist/run.sh selftest > $W/selftest.log 2>&1; mark "selftest rc $?"
echo "===== tests"; grep -E "test result|FAILED|panicked" $W/gputests.log | tail -12; grep -E "graphs|PDL on" $W/selftest.log; tail -3 $W/selftest.log
echo "===== matrix decode rows"; grep -h "decode" $W/matrix-*.log | grep -v "^\[" | cut -c1-150
echo "===== bench requests decode (tokens/s; steps; wait for the GPU)"
for f in $W/decode-*.log; do echo "$(basename $f .log): $(grep -h 'bench: requests' $f | grep -o '[0-9.]* tokens/s') | $(grep -h phases $f | grep -o 'steps [0-9.]* (of which waiting for the GPU at the copy-out [0-9.]*')"; done
cat $W/marks.txt
