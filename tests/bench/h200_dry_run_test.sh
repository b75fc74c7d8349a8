#!/usr/bin/env bash
# bench/h200_session.sh --dry-run must run through on CPU: the GPU session gets one call of a
# few minutes, so the script must not meet its first broken config key, missing option or
# table crash there. Catches: a step exiting non-zero (a renamed config key makes `bench`
# exit 2), a step that silently stops running (its JSON missing), the table script failing.
set -uo pipefail
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
OUT=$out/out NORMEXP_H200_DIR=$out/work NORMEXP_DEADLINE_S=1200 \
  bash "$1/bench/h200_session.sh" --dry-run >"$out/stdout" 2>&1
rc=$?
fail() { echo "FAIL: $*"; cat "$out/out/summary.txt" 2>/dev/null; exit 1; }
((rc == 0)) || fail "the script exited $rc"
# The device tool brings back at most 8 files from $OUT, two folders down at most: the
# results must travel in a few files, not as the dozens the steps write.
n=$(find "$out/out" -type f | wc -l)
((n <= 8)) || fail "$n files under \$OUT (the device tool returns 8): $(ls -R "$out/out")"
[ -z "$(find "$out/out" -mindepth 3 -type f)" ] || fail "files more than two folders down in \$OUT"
summary=$out/out/summary.txt
grep -q '== done in' "$summary" || fail "the script did not reach its end"
bad=$(grep -E '\(rc [1-9][0-9]*\)' "$summary") && fail "steps failed: $bad"
grep -q -- '-- skipped .*: [0-9]*s left' "$summary" && fail "a step ran out of time in a 1200 s dry run"
mkdir -p "$out/x" && tar xzf "$out/out/results.tgz" -C "$out/x" || fail "no readable results.tgz"
for j in wrn_b128 r110_b128 wrn_b4 cwo_wrn norms_fp32 vitb16 r50_b256; do
  [ -s "$out/x/json/$j.json" ] || fail "no json/$j.json in results.tgz"
done
ls "$out"/x/json/est_*.json >/dev/null 2>&1 || fail "no estimate bench file"
grep -q '^| WRN-28-10 B128 | [0-9]' "$out/out/table.md" || fail "table.md has no WRN-28-10 row: $(cat "$out/out/table.md")"
for part in graphs bcn; do
  grep -q "CUDA-only tests, $part (rc 0)" "$summary" || fail "the CUDA-only tests ($part) did not run"
done
echo "dry run through in $(sed -n 's/== done in //p' "$summary")"
