#!/usr/bin/env bash
# Fuzzes the parsers of untrusted input with libFuzzer (clang, ASan + UBSan):
#   bash bench/fuzz.sh [SECONDS_PER_TARGET] [JOBS]     (defaults: 60 s, 2 targets at a time)
#   FUZZ_TARGETS="config_loader" bash bench/fuzz.sh 600   (some targets only)
# Builds build-fuzz/ (the floors the targets need, clang with the LibTorch of the normal
# build; a few minutes), runs every target of
# fuzz/CMakeLists.txt for SECONDS_PER_TARGET on a scratch copy of its corpus, then merges
# what grew back into fuzz/corpus/<target>/ keeping only inputs that add coverage (small).
# A crash, leak or sanitizer report stops that target; the reproducer is left in
# build-fuzz/findings/<target>/ and the script exits 1. Logs: build-fuzz/logs/<target>.log.
set -euo pipefail
seconds=${1:-60}
jobs=${2:-2}
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build-fuzz
command -v clang++ >/dev/null || { echo "fuzz.sh: needs clang (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }

cmake -S "$root" -B "$build" -G Ninja -DNORMEXP_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=${FUZZ_TARGETS:-$(sed -n 's/^set(NORMEXP_FUZZ_TARGETS \(.*\))$/\1/p' "$root/fuzz/CMakeLists.txt")}
ninja -C "$build" $(for t in $targets; do echo "fuzz_$t"; done) >/dev/null
mkdir -p "$build/logs" "$build/findings"

run_one() {
  local t=$1 work=$build/work/$1
  rm -rf "$work" && mkdir -p "$work" "$build/findings/$t"
  cp "$root/fuzz/corpus/$t/"* "$work/"
  local status=0
  # -rss_limit_mb: the config loader's node budget must hold memory well below this.
  "$build/fuzz/fuzz_$t" "$work" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=8192 \
    -artifact_prefix="$build/findings/$t/" -print_final_stats=1 >"$build/logs/$t.log" 2>&1 || status=$?
  local execs
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$build/logs/$t.log" | tail -1)
  if [ "$status" -ne 0 ]; then
    echo "$t: FAILED after ${execs:-?} runs (exit $status); see $build/logs/$t.log and $build/findings/$t/"
    return 1
  fi
  # Keep the committed corpus small: only inputs that add coverage to what is there.
  "$build/fuzz/fuzz_$t" -merge=1 "$root/fuzz/corpus/$t" "$work" >>"$build/logs/$t.log" 2>&1
  echo "$t: ${seconds} s, ${execs:-?} runs, no crash, no leak, no sanitizer report;" \
       "corpus $(ls "$root/fuzz/corpus/$t" | wc -l) files"
}

failed=0
pids=()
for t in $targets; do
  run_one "$t" &
  pids+=($!)
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 1; done
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done
exit $failed
