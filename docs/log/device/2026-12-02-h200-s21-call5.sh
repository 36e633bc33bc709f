#!/usr/bin/env bash
# Session 21 call 5: attention v4's L2 sections at the one-stream 1B shapes (T = 2048, 4096: 71 / 139 MB of K/V, above
# the sections' 32 MB) and at a two-stream half (8 x 1152): the harness's timed rows with the no-sec and other
# warpgroup-count columns (correctness sections skipped; each timed shape is still checked). B = dist/ of main (not
# used: the harness builds from the tree).
source docs/log/device/lib.sh s21c5
timeout 400 bash cuda/dev/run_attention_sm90.sh --skip-checks --no-simt --shape "1B step" > $W/attn.log 2>&1
mark "attention harness rc $? $(grep -hE '^(PASSED|FAILED)' $W/attn.log | tail -1)"
grep -hE "^  1B step" $W/attn.log | tr -s ' ' | cut -c1-170 | tee -a $W/marks.txt
finish
