#!/usr/bin/env bash
# bench/h200_explain.sh --dry-run must run through on CPU, as h200_session.sh's must: its one
# GPU call is the second of a 15-minute budget. Catches: a step exiting non-zero (a renamed
# config key or bench option makes normexp exit 2), a profile that is not written (the JSON
# rows without "profile"), more files under $OUT than the device tool returns.
set -uo pipefail
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
OUT=$out/out NORMEXP_H200_DIR=$out/work NORMEXP_DEADLINE_S=1200 \
  bash "$1/bench/h200_explain.sh" --dry-run >"$out/stdout" 2>&1
rc=$?
summary=$out/out/summary.txt
fail() { echo "FAIL: $*"; cat "$summary" 2>/dev/null; exit 1; }
((rc == 0)) || fail "the script exited $rc"
n=$(find "$out/out" -type f | wc -l)
((n <= 8)) || fail "$n files under \$OUT (the device tool returns 8)"
grep -q '== done in' "$summary" || fail "the script did not reach its end"
bad=$(grep -E '\(rc [1-9][0-9]*\)' "$summary") && fail "steps failed: $bad"
grep -q -- '-- skipped .*: [0-9]*s left' "$summary" && fail "a step ran out of time in a 1200 s dry run"
mkdir -p "$out/x" && tar xzf "$out/out/results.tgz" -C "$out/x" || fail "no readable results.tgz"
for j in ablate_wrn_b128 est_table2_cifar100_wrn28_10_cwo_b128; do
  [ -s "$out/x/json/$j.json" ] || fail "no json/$j.json in results.tgz"
done
python3 - "$out/x/json" <<'PY' || fail "a profile is missing"
import json, sys
d = sys.argv[1]
for name in ("profile_wrn_b128_eager", "profile_wrn_b4_graphs"):
    rows = json.load(open(f"{d}/{name}.json"))
    assert rows and all(r["profile"]["rows"] for r in rows), name
norms = json.load(open(f"{d}/norms_profile.json"))["results"]
assert norms and all(r["profile"]["bcn"]["rows"] for r in norms), "norms_profile"
PY
grep -q '| train (random-resized crop + flip) | 1 |' "$out/x/logs/jpeg.log" || fail "no JPEG loader rows"
for part in graphs bcn; do
  grep -q "CUDA-only tests, $part (rc 0)" "$summary" || fail "the CUDA-only tests ($part) did not run"
done
echo "dry run through in $(sed -n 's/== done in //p' "$summary")"
