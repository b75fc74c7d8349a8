#!/usr/bin/env bash
# Set up (scripts/setup.sh), then train the quick start: a small cwo CNN on synthetic data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
"${NORMEXP_BUILD_DIR:-build}"/apps/normexp/normexp run configs/quickstart.yaml "$@"
