#!/usr/bin/env bash
# session 6, second lease, call 1: a stable copy of the tree at /var/tmp/s6/repo with the bundle; GGUF part 0 kept.
set -uo pipefail
W=/var/tmp/s6; mkdir -p $W/parts
cp models/smollm2/parts/gguf.xz.* $W/parts/
rm -rf $W/repo && mkdir -p $W/repo && cp -a . $W/repo/ && rm -rf $W/repo/models/smollm2/parts
cd $W/repo && rm -rf dist && tar xzf tmp-device/dist.tgz && ls dist && ls -la $W/parts
