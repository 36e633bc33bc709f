# Shared pieces of the device scripts (docs/log/device/*.sh, from session 20 on): `source docs/log/device/lib.sh NAME`
# in the repository root on the GPU host, after which:
#   $W           the work folder (/tmp/NAME), tarred into $OUT/NAME.tgz by `finish`
#   mark TEXT    prints "[seconds] TEXT" and keeps it in $W/marks.txt (the call's table)
#   finish       packs $W into $OUT and prints the marks; ends the script
#   run_test BIN [FILTER...]   runs dist/tests/BIN --ignored, marks its result line, prints failures; returns its rc
#   stall_profile KERNEL FILTER [ENV...]   ncu warp-stall sampling of one launch of KERNEL inside
#                `dbrmt bench matrix --filter FILTER` (launch 13), summarised by stall_summary.py into $W
#   smi_on NAME / smi_off NAME   nvidia-smi's SM clock, power and clock event reasons sampled every 100 ms between
#                the two into $W/smi-NAME.csv; smi_off marks smi_summary.py's line (clock under the power cap or not)
#   $CS, $NCU    compute-sanitizer and ncu
# It also unpacks tmp-device/B.tar.xz (the bundle: `cargo xtask bundle --gpu`, copied there, carried as tmp-device).
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R
NAME=${1:?"lib.sh needs the call's name"}; W=/tmp/$NAME; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/$NAME.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
run_test() {
  local bin=$1; shift
  timeout 300 dist/tests/$bin "$@" --ignored --test-threads=1 > $W/$bin.log 2>&1; local rc=$?
  mark "$bin $* rc $rc $(grep -h 'test result' $W/$bin.log | tail -1 | cut -c1-50)"
  [ $rc -ne 0 ] && grep -E "FAIL|panicked" $W/$bin.log | cut -c1-250 | head -8
  return $rc
}
stall_profile() {
  local k=$1 filter=$2; shift 2
  env "$@" DBRMT_GRAPHS=off timeout 150 $NCU --clock-control none -k regex:"^$k\$" --launch-skip 12 --launch-count 1 \
    --section SourceCounters --section WarpStateStats --section SpeedOfLight -o $W/$k \
    dist/dbrmt bench matrix --filter $filter --out /tmp/x.jsonl > $W/$k.log 2>&1
  mark "$k ncu rc $?"
  timeout 60 $NCU -i $W/$k.ncu-rep --page source --csv --print-source sass > $W/$k.csv 2> /dev/null
  timeout 60 $NCU -i $W/$k.ncu-rep --page details > $W/$k-details.txt 2> /dev/null
  python3 $R/docs/log/device/stall_summary.py $W/$k.csv | tee $W/$k-summary.txt | head -40
  gzip $W/$k.csv; rm -f $W/$k.ncu-rep
}
smi_on() {
  nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_event_reasons.active \
    --format=csv,noheader,nounits -lms 100 > $W/smi-$1.csv 2>&1 & SMI=$!
}
smi_off() { kill $SMI 2>/dev/null; wait $SMI 2>/dev/null; mark "smi $1: $(python3 $R/docs/log/device/smi_summary.py $W/smi-$1.csv)"; }
