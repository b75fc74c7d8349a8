#!/usr/bin/env bash
# FastAA's ops against Pillow itself: tests/data/fastaa_pil_reference.py applies every op of
# the policy's ranges with PIL to 560 random images, FastAAOps.MatchPillowReferenceWhenGiven
# compares normexp's batched ops with them pixel for pixel.
#   pil_reference_test.sh PYTHON AUGMENT_TESTS
# Exits 77 (ctest: skipped) when PYTHON lacks Pillow or NumPy; scripts/test.sh installs both
# in the build's virtual environment, so CI runs it.
set -euo pipefail
py=$1 tests=$2
if ! "$py" -c 'import PIL, numpy' 2>/dev/null; then
  echo "no Pillow/NumPy for $py: skipped"
  exit 77
fi
ref=$(mktemp --suffix=.json)
trap 'rm -f "$ref"' EXIT
"$py" "$(dirname "$0")/fastaa_pil_reference.py" "$ref"
"$py" -c 'import PIL; print("Pillow", PIL.__version__)'
NORMEXP_PIL_REFERENCE=$ref "$tests" --gtest_filter=FastAAOps.MatchPillowReferenceWhenGiven
