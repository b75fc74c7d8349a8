#!/usr/bin/env bash
# Fills the Fashion-MNIST table (configs/tables/fmnist.yaml) on this machine, at a reduced size
# stated here, and checks cwo's noise range: Ikami et al. 2021's question "is cwo on par with BN?" on
# real data that every machine has (Debian's dataset-fashion-mnist).
#
#   bench/fmnist_grid.sh [--seeds 0,1] [--epochs 4] [--train-size 15000] [--test-size 5000]
#                        [--archs cnn9,resnet14,wrn10_1] [--norms cwo,bn,gn,ws_bn,ws_gn]
#                        [--sigmas 0.0,0.2,0.4,0.6,0.8,1.0]
#
# 1. Grid: architectures x norms x seeds, each with the same --sets.
# 2. Noise: every cwo config at each sigma (first seed): no run may diverge.
# --archs/--norms/--sigmas pick a subset (the README's 30-epoch runs: --epochs 30 --seeds 0
# --norms bn,cwo --sigmas 0.0); an empty --sigmas skips the noise runs.
# Then `normexp report fmnist` with the same --sets, and the time it all took. Runs go to
# results/ with --resume, so a re-run only trains what is missing and re-reports.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${NORMEXP_BIN:-build/apps/normexp/normexp}
seeds=0,1 epochs=4 train=15000 test=5000
archs=cnn9,resnet14,wrn10_1 norms=cwo,bn,gn,ws_bn,ws_gn sigmas=0.0,0.2,0.4,0.6,0.8,1.0
while (($#)); do
  case $1 in
    --seeds) seeds=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --train-size) train=$2; shift 2 ;;
    --test-size) test=$2; shift 2 ;;
    --archs) archs=$2; shift 2 ;;
    --norms) norms=$2; shift 2 ;;
    --sigmas) sigmas=$2; shift 2 ;;
    *) echo "fmnist_grid.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
sets=(--set "train.epochs=$epochs" --set "data.train_size=$train" --set "data.test_size=$test")
start=$(date +%s)
failed=()
run() {
  local rc=0
  "$bin" run "$@" "${sets[@]}" --resume --progress none >/dev/null 2>&1 || rc=$?
  # 130/143: stopped by SIGINT/SIGTERM (checkpoint written). Bash goes on after a signal its
  # child handled, so stop the grid here rather than start the next run.
  if ((rc == 130 || rc == 143)); then
    echo "fmnist_grid.sh: stopped at: $* (exit $rc); run it again to continue" >&2
    exit "$rc"
  fi
  ((rc == 0)) || failed+=("$*")
}
IFS=, read -ra seed_list <<<"$seeds"
IFS=, read -ra arch_list <<<"$archs"
IFS=, read -ra norm_list <<<"$norms"
IFS=, read -ra sigma_list <<<"$sigmas"
for arch in "${arch_list[@]}"; do
  [ -f "configs/fmnist/${arch}_bn.yaml" ] || { echo "fmnist_grid.sh: no configs/fmnist/${arch}_*.yaml" >&2; exit 2; }
done
for norm in "${norm_list[@]}"; do
  [ -f "configs/fmnist/cnn9_${norm}.yaml" ] || { echo "fmnist_grid.sh: unknown norm $norm" >&2; exit 2; }
done
for seed in "${seed_list[@]}"; do
  for arch in "${arch_list[@]}"; do
    for norm in "${norm_list[@]}"; do
      echo "grid: $arch $norm seed $seed" >&2
      run "configs/fmnist/${arch}_${norm}.yaml" --seed "$seed"
    done
  done
done
grid_s=$(($(date +%s) - start))
for arch in "${arch_list[@]}"; do
  for sigma in "${sigma_list[@]}"; do
    echo "noise: $arch sigma $sigma" >&2
    run "configs/fmnist/${arch}_cwo.yaml" --seed "${seed_list[0]}" --set "norm.noise.sigma=$sigma"
  done
done
total_s=$(($(date +%s) - start))

echo "## Fashion-MNIST grid: $epochs epochs, first $train training / $test test images, seeds $seeds"
"$bin" report fmnist "${sets[@]}"
echo
echo "## cwo over the noise level (seed ${seed_list[0]}): final test error %, or the run's status"
python3 - "${seed_list[0]}" "$epochs" "$train" "$archs" "$sigmas" <<'PY'
import glob, json, sys
seed, epochs, train = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
archs = sys.argv[4].split(",")
sigmas = [float(s) for s in sys.argv[5].split(",") if s]
print("| arch | " + " | ".join("σ=%.1f" % s for s in sigmas) + " |")
print("|---|" + "---|" * len(sigmas))
for arch in archs:
    cells = {}
    for f in glob.glob("results/fmnist_%s_cwo/*/seed%d/metrics.json" % (arch, seed)):
        try:
            m = json.load(open(f))
            c = m["config"]
            if c["train"]["epochs"] != epochs or c["data"]["train_size"] != train:
                continue
            s = round(c["norm"]["noise"]["sigma"], 3)
            cells[s] = "%.2f" % m["final"]["test_err"] if m["status"] == "completed" else m["status"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
    print("| %s | " % arch + " | ".join(cells.get(round(s, 3), "missing") for s in sigmas) + " |")
PY
echo
echo "grid ${grid_s}s, grid + noise ${total_s}s on $(nproc) cores ($(uname -m)); $(date -u +%Y-%m-%d)"
if ((${#failed[@]})); then
  printf 'failed: %s\n' "${failed[@]}"
  exit 1
fi
