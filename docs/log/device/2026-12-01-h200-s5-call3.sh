#!/usr/bin/env bash
# session 5, device call 3: issue #15's load run: dbrmt serve on random 1B weights, 64 clients, 1,000 token-id prompts
# of 1K-64K tokens (log-uniform), 16 generated tokens each; every request answered?
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.sm --format=csv,noheader
SERVE_LOAD_ARGS="--per-request --deadline-s 470" timeout 560 dist/run.sh bench $OUT serve > $OUT/serve-load.log 2>&1
echo "### serve load rc $? in $((SECONDS-T0)) s"
grep -v '^{' $OUT/serve-load.log | tail -40
