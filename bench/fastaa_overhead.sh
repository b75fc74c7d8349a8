#!/usr/bin/env bash
# Cost of the FastAA input pipeline (policy + crop/flip + normalize + Cutout) beside a
# WRN-28-10 training step, at B = 128 and B = 4 (Ikami et al. 2021 Tables 1-2). Random images of CIFAR's
# shape: no data needed. The issue's bar: under 5% of a B = 128 step on the GPU.
# Usage: bench/fastaa_overhead.sh [extra normexp data bench args...]
# e.g. on a GPU: bench/fastaa_overhead.sh --device cuda --set train.bf16=true --set train.channels_last=true
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${NORMEXP_BIN:-${NORMEXP_BUILD_DIR:-build}/apps/normexp/normexp}
config=${BENCH_CONFIG:-configs/ikami/table1_fastaa/cifar10_wrn28_10_cwo.yaml}
"$bin" data bench "$config" --batch 128 --batch 4 "$@"
