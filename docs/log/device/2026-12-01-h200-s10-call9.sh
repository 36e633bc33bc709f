#!/usr/bin/env bash
# Session 10 call 9: the GPU test binaries call 8 did not run (main at 08e8ff2, whose kernels HEAD still has: the one-row
# read features), under a 250 s cap.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R
python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall()"
for t in dbrmt-kernels__gpu_gemm dbrmt-kernels__gpu_layer_ops dbrmt-kernels__gpu_poison dbrmt-runtime__gpu_requests dbrmt-cli__gpu_generate dbrmt-cli__gpu_serve; do
  left=$((250 - (SECONDS - T0))); [ $left -lt 10 ] && { echo "$t: no time left"; continue; }
  timeout $left dist/tests/$t --ignored --test-threads=1 > /tmp/$t.log 2>&1; rc=$?
  echo "[$((SECONDS-T0))s] $t rc $rc $(grep -hE '^test result' /tmp/$t.log | tail -1 | cut -c1-70)"
  [ $rc -ne 0 ] && grep -hE "panicked|FAIL|differ" /tmp/$t.log | head -5
done
