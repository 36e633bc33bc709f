set -uo pipefail
python3 -c "import tarfile; tarfile.open('tmp-device/s8c1.tar.xz').extractall()"
export DBRMT_REPO_ROOT=$PWD
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,power.draw --format=csv
OUT=$OUT bash docs/log/device/pending-next.sh
timeout 60 dist/dbrmt bench profile --model llama-3.2-1b --segment 1024 --tokens 32768 --out $OUT/profile-1b.jsonl > $OUT/profile-1b.log 2>&1
timeout 60 dist/dbrmt bench profile --model llama-160m --segment 512 --tokens 16384 --out $OUT/profile-160m.jsonl > $OUT/profile-160m.log 2>&1
tail -22 $OUT/profile-1b.log | cut -c1-100
