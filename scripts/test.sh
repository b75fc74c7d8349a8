#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run the whole test suite through ctest (CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ctest --test-dir "${NORMEXP_BUILD_DIR:-build}" --output-on-failure -j"$(nproc)" --timeout 900
