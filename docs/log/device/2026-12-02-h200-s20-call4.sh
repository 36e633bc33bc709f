#!/usr/bin/env bash
# Session 20 call 4: the two-stream rule's window (each group's o product 4..16 waves of tiles) at its edges: 1B at
# T = 512 (4.8 waves), 1024 (8.7) and 2048 (16.5), 32K tokens, two streams forced (DBRMT_TWO_STREAMS=force) against
# off, three rounds alternating; the two-stream gpu test.
source docs/log/device/lib.sh s20c4
run_test dbrmt-runtime__gpu_engine two_stream
for r in 1 2 3; do for v in force off; do
  for row in 1b-t512-32k 1b-t1024-32k 1b-t2048-32k; do
    timeout 60 env DBRMT_TWO_STREAMS=$v dist/dbrmt bench matrix --filter $row --out $W/m-$row-$v.jsonl > $W/m-$row-$v-$r.log 2>&1
    mark "$row $v rc $? $(grep -hE 'dbrmt-diag' $W/m-$row-$v-$r.log | cut -c24-70 | tr -s ' ' | tr '\n' ';')"
  done
done; done
finish
