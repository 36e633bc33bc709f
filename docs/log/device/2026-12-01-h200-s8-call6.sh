set -uo pipefail
python3 -c "import tarfile; tarfile.open('tmp-device/s8c6.tar.xz').extractall()"
export DBRMT_REPO_ROOT=$PWD
W=$OUT; T0=$(date +%s)
mark() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/marks.txt; }
timeout 290 dist/run.sh gpu > $W/gputests.log 2>&1; mark "gpu tests rc $?"
grep -E "^test |test result|FAILED|panicked|run.sh" $W/gputests.log | grep -v "\.\.\. ok$" | tail -25
grep -c "\.\.\. ok$" $W/gputests.log
cat $W/marks.txt
