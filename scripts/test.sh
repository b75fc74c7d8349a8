#!/usr/bin/env bash
# Set up (scripts/setup.sh), install PyPI's tensorboard in a virtual environment for the test that
# reads normexp's event files with it, then run the whole test suite through ctest (CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# TensorBoard's own reader checks normexp's event files (tests/train/tensorboard_check.py);
# Pillow (with NumPy, which tensorboard brings) checks the FastAA ops (tests/data/pil_reference_test.sh).
build=${NORMEXP_BUILD_DIR:-build}
if [ ! -x "$build/tbvenv/bin/python" ] || ! "$build/tbvenv/bin/python" -c 'import tensorboard, PIL' 2>/dev/null; then
  python3 -m venv "$build/tbvenv"
  "$build/tbvenv/bin/pip" install -q --disable-pip-version-check tensorboard pillow
fi
ctest --test-dir "${NORMEXP_BUILD_DIR:-build}" --output-on-failure -j"$(nproc)" --timeout 900
