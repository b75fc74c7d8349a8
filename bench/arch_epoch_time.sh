#!/usr/bin/env bash
# Per-epoch training time of each file-004 architecture on synthetic CIFAR-shaped data
# (32x32x3, 10 classes): a few steps of the Table 1 configs, throughput from metrics.json,
# extrapolated to 50,000 images. Usage: bench/arch_epoch_time.sh [extra normexp args...]
# e.g. on a GPU: bench/arch_epoch_time.sh --device cuda --set train.bf16=true --set train.channels_last=true
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${NORMEXP_BIN:-${NORMEXP_BUILD_DIR:-build}/apps/normexp/normexp}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
steps=${BENCH_STEPS:-3}
printf '| architecture | norm | batch | steps | images/s | epoch (50k images) |\n|---|---|---|---|---|---|\n'
for arch in cnn9 resnet110 wrn28_10; do
  batch=${BENCH_BATCH:-128}
  # WRN-28-10 is ~20x the work of the others; keep CPU runs short with a smaller batch.
  [ "$arch" = wrn28_10 ] && batch=${BENCH_WRN_BATCH:-$batch}
  for norm in bn cwo; do
    line=$("$bin" run "configs/ikami/table1/cifar10_${arch}_${norm}.yaml" --output "$out" \
      --progress none --set data.name=synthetic --set data.train_size=$((batch * steps)) \
      --set data.test_size=16 --set train.batch_size="$batch" --set train.epochs=1 \
      --set train.checkpoint_every=0 "$@" 2>/dev/null | grep 'img/s' || true)
    # normexp prints "... ; <wall>s wall, <N> img/s" (training throughput of the epoch).
    ips=$(sed -n 's/.* \([0-9.]*\) img\/s$/\1/p' <<<"$line")
    if [ -z "$ips" ]; then
      printf '| %s | %s | %s | %s | failed | |\n' "$arch" "$norm" "$batch" "$steps"
    else
      printf '| %s | %s | %s | %s | %s | %s |\n' "$arch" "$norm" "$batch" "$steps" "$ips" \
        "$(awk -v ips="$ips" 'BEGIN { s = 50000 / ips; if (s < 7200) printf "%.1f min", s / 60; else printf "%.1f h", s / 3600 }')"
    fi
    rm -rf "${out:?}"/*
  done
done
