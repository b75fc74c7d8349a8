#!/usr/bin/env bash
# Data-parallel throughput on this machine: the same run as one process (all cores) and as
# N ranks over Gloo (cores/N threads each, launched like torchrun), measured side by side in
# one call. Training images/s from metrics.json (every epoch's, excluding evaluation), and
# the share of the training time spent in the gradient all-reduce.
# Usage: bench/data_parallel.sh [RANKS] [CONFIG] [extra normexp args...]
#   default: 2 ranks, configs/ikami/table1/cifar10_resnet110_bn.yaml on synthetic data.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${NORMEXP_BIN:-${NORMEXP_BUILD_DIR:-build}/apps/normexp/normexp}
ranks=${1:-2}
config=${2:-configs/ikami/table1/cifar10_resnet110_bn.yaml}
shift $(($# >= 2 ? 2 : $#))
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cores=$(nproc)
batch=${BENCH_BATCH:-128}
steps=${BENCH_STEPS:-8}
common=(--progress none --set data.name=synthetic --set data.train_size=$((batch * steps))
        --set data.test_size=64 --set train.batch_size="$batch" --set train.epochs=2
        --set train.checkpoint_every=0 "$@")

# images/s of the last epoch (the first warms up), and the all-reduce seconds.
read_metrics() {
  python3 - "$(find "$1" -name metrics.json | head -1)" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
h, e = m["history"], m["effective"]
print("%.1f %.3f %.3f" % (h[-1]["images_per_s"], sum(r["train_time_s"] for r in h),
                          e.get("gradient_allreduce_s", 0)))
PY
}

"$bin" run "$config" --output "$out/one" --set train.threads="$cores" "${common[@]}" >/dev/null 2>&1
read -r one_ips one_t _ <<<"$(read_metrics "$out/one")"

port=$((20000 + RANDOM % 20000))
pids=()
for ((r = 0; r < ranks; r++)); do
  RANK=$r WORLD_SIZE=$ranks LOCAL_RANK=$r LOCAL_WORLD_SIZE=$ranks MASTER_ADDR=127.0.0.1 \
    MASTER_PORT=$port "$bin" run "$config" --output "$out/many" \
    --set train.threads=$((cores / ranks > 0 ? cores / ranks : 1)) "${common[@]}" >/dev/null 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
read -r many_ips many_t many_ar <<<"$(read_metrics "$out/many")"

printf '| run | threads per process | images/s (epoch 2) | all-reduce share of training |\n|---|---|---|---|\n'
printf '| 1 process | %s | %s | - |\n' "$cores" "$one_ips"
printf '| %s ranks (Gloo) | %s | %s | %s |\n' "$ranks" $((cores / ranks > 0 ? cores / ranks : 1)) \
  "$many_ips" "$(awk -v a="$many_ar" -v t="$many_t" 'BEGIN { printf "%.1f %%", 100 * a / t }')"
awk -v a="$many_ips" -v b="$one_ips" -v n="$ranks" \
  'BEGIN { printf "\n%s ranks / 1 process: %.2fx images/s (config %s, batch %s)\n", n, a / b, "'"$config"'", "'"$batch"'" }'
