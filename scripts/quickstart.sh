#!/usr/bin/env bash
# Set up (scripts/setup.sh), then train the quick start (Ikami et al. 2021's 9-layer CNN, narrow, on
# Fashion-MNIST at the paper's lr 0.1, with BN and with cwo) and print the comparison table.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bin="${NORMEXP_BUILD_DIR:-build}"/apps/normexp/normexp
# The two cells of configs/tables/quickstart.yaml (BN vs cwo). --resume: a completed run is
# skipped, so re-running this script only reports. Extra arguments go to both runs.
# Both go to a results root of their own, and the table is made from it alone: the committed
# Fashion-MNIST grid (results/fmnist_cnn9_cwo) holds runs of the same cwo config (the same
# hash), which would otherwise fill the cwo cell in place of the run made here.
out=${NORMEXP_QUICKSTART_RESULTS:-quickstart-results}
"$bin" run configs/quickstart.yaml --set norm.name=bn --set '~norm.c' --set '~norm.noise' \
  --output "$out" --resume "$@"
"$bin" run configs/quickstart.yaml --output "$out" --resume "$@"
"$bin" report quickstart --results "$out"
