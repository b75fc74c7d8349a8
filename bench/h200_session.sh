#!/usr/bin/env bash
# Issue 7's measurements on the GPU machine, in stages that each fit one `run` call (10 min):
#
#   call 1: bash .devicedeps/build-on-device.sh >$OUT/build.log 2>&1 && bash bench/h200_session.sh test bench
#   call 2: bash .devicedeps/build-on-device.sh >$OUT/build.log 2>&1 && bash bench/h200_session.sh peer compile
#   (the second build is incremental on a warm machine, a full one on a fresh machine)
#
# Stages (any order, several per call):
#   test   the full suite on the CUDA build (CUDA-only tests run instead of skipping)
#   bench  normexp bench: WRN-28-10 B128 bf16, ResNet-110 B128, WRN-28-10 B4 (eager vs CUDA
#          graphs), cwo + noise vs bn, the FastAA pipeline's share, BCN vs LN/BN
#   peer   normexp bench again, each workload right before the PyTorch peer (eager, graphs)
#          on the same workload
#   compile  the PyTorch peer with torch.compile (minutes of compiling per model)
#   estimate  normexp bench every CIFAR-100 config of Tables 1-2 (the workloads of Tables 1-4;
#          CIFAR-10 cells share them) with bf16, channels_last and graphs where possible, then
#          normexp plan ikami_table1..4 --estimate: the H200-hours of all CIFAR cells
#   imagenet  issue 18: the ResNet-50 training step (bn and cwo, B256, bf16, channels_last) and
#          the JPEG loader (data bench-jpeg, 1/4/8/16 workers) on the machine's cores: does
#          the loader keep up with the GPU? Needs libjpeg-turbo in the device build: pack with
#          NORMEXP_EXTRA_DEBS="libturbojpeg0-dev libturbojpeg0" ../shared/device/pack.sh
# Everything lands in $OUT/h200.tar.gz (JSON + logs) and a short table in $OUT/summary.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/normexp-h200}
work=/tmp/normexp-h200-work
mkdir -p "$OUT" "$work/json" "$work/logs" "$work/cfg"
torch_lib=$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="/opt/devicedeps/usr/lib/x86_64-linux-gnu:$torch_lib:${LD_LIBRARY_PATH:-}"
bin=${NORMEXP_BIN:-build-cuda/apps/normexp/normexp}
summary="$OUT/summary.txt"
note() { echo "$*" | tee -a "$summary"; }

# A bench variant: a config that inherits a table config and sets train options.
variant() {  # name base "train: {...}" [more YAML lines]
  local name=$1 base=$2
  shift 2
  { echo "name: $name"; echo "base: $(realpath "$base")"; printf '%s\n' "$@"; } >"$work/cfg/$name.yaml"
  echo "$work/cfg/$name.yaml"
}
T1=configs/ikami/table1
T2=configs/ikami/table2
fast="bf16: true, channels_last: true"
wrn_e=$(variant wrn_b128_eager $T1/cifar100_wrn28_10_bn.yaml "train: {$fast, cuda_graphs: off}")
wrn_g=$(variant wrn_b128_graphs $T1/cifar100_wrn28_10_bn.yaml "train: {$fast, cuda_graphs: on}")
wrncwo_e=$(variant wrn_cwo_b128_eager $T1/cifar100_wrn28_10_cwo.yaml "train: {$fast, cuda_graphs: off}")
wrncwo_g=$(variant wrn_cwo_b128_graphs $T1/cifar100_wrn28_10_cwo.yaml "train: {$fast, cuda_graphs: on}")
r110_e=$(variant r110_b128_eager $T1/cifar100_resnet110_bn.yaml "train: {$fast, cuda_graphs: off}")
r110_g=$(variant r110_b128_graphs $T1/cifar100_resnet110_bn.yaml "train: {$fast, cuda_graphs: on}")
r110cwo_e=$(variant r110_cwo_b128_eager $T1/cifar100_resnet110_cwo.yaml "train: {$fast, cuda_graphs: off}")
r110cwo_g=$(variant r110_cwo_b128_graphs $T1/cifar100_resnet110_cwo.yaml "train: {$fast, cuda_graphs: on}")
b4_e=$(variant wrn_b4_eager $T2/cifar100_wrn28_10_bn_b4.yaml "train: {$fast, cuda_graphs: off}")
b4_g=$(variant wrn_b4_graphs $T2/cifar100_wrn28_10_bn_b4.yaml "train: {$fast, cuda_graphs: on}")

nbench() {  # label steps configs...
  local label=$1 steps=$2
  shift 2
  "$bin" bench "$@" --warmup 30 --steps "$steps" --rounds 3 --out "$work/json/$label.json" \
    >"$work/logs/$label.log" 2>&1
  local rc=$?
  note "== normexp bench $label (rc $rc)"
  grep -v '^\[' "$work/logs/$label.log" | tee -a "$summary"
}

peer() {  # label args...
  local label=$1
  shift
  timeout 300 python3 bench/peer/train_bench.py "$@" --warmup 30 --steps 150 \
    --out "$work/json/$label.json" >"$work/logs/$label.log" 2>&1
  note "== peer $label (rc $?): $(tail -1 "$work/logs/$label.log")"
}

for stage in "$@"; do
  case $stage in
    test)
      nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv \
        >"$work/logs/gpu.txt" 2>&1
      note "== $(tail -1 "$work/logs/gpu.txt"); $("$bin" --version)"
      (cd build-cuda && ctest -j8 --output-on-failure >"$work/logs/ctest.log" 2>&1)
      note "== ctest rc $?: $(grep -E 'tests passed|tests failed' "$work/logs/ctest.log")"
      grep -E '^\s+[0-9]+ - .*(Failed|Skipped|Not Run)' "$work/logs/ctest.log" | head -20 | tee -a "$summary"
      ;;
    bench)
      nbench wrn_b128 50 "$wrn_e" "$wrn_g"
      nbench r110_b128 100 "$r110_e" "$r110_g"
      nbench wrn_b4 200 "$b4_e" "$b4_g"
      nbench cwo_wrn 50 "$wrn_g" "$wrncwo_g" "$wrn_e" "$wrncwo_e"
      nbench cwo_r110 100 "$r110_g" "$r110cwo_g" "$r110_e" "$r110cwo_e"
      NORMEXP_BIN=$bin bash bench/fastaa_overhead.sh --device cuda --set train.bf16=true \
        --set train.channels_last=true >"$work/logs/fastaa.log" 2>&1
      note "== FastAA pipeline vs WRN-28-10 step (rc $?)"; grep -v '^\[' "$work/logs/fastaa.log" | tee -a "$summary"
      "$bin" bench norms --device cuda --bf16 --out "$work/json/bcn_norms_bf16.json" \
        >"$work/logs/norms.log" 2>&1
      note "== bench norms bf16 (rc $?)"; grep -v '^\[' "$work/logs/norms.log" | tee -a "$summary"
      ;;
    peer)
      common=(--bf16 --channels-last --classes 100)
      nbench wrn_b128_again 50 "$wrn_e" "$wrn_g"
      peer wrn_b128_eager --model wrn --batch 128 "${common[@]}" --mode eager
      peer wrn_b128_graphs --model wrn --batch 128 "${common[@]}" --mode graphs
      nbench r110_b128_again 100 "$r110_e" "$r110_g"
      peer r110_b128_eager --model resnet --depth 110 --batch 128 "${common[@]}" --mode eager
      peer r110_b128_graphs --model resnet --depth 110 --batch 128 "${common[@]}" --mode graphs
      nbench wrn_b4_again 200 "$b4_e" "$b4_g"
      peer wrn_b4_eager --model wrn --batch 4 "${common[@]}" --mode eager
      peer wrn_b4_graphs --model wrn --batch 4 "${common[@]}" --mode graphs
      ;;
    compile)
      common=(--bf16 --channels-last --classes 100)
      peer wrn_b128_compile --model wrn --batch 128 "${common[@]}" --mode compile
      peer wrn_b4_compile --model wrn --batch 4 "${common[@]}" --mode compile
      peer r110_b128_compile --model resnet --depth 110 --batch 128 "${common[@]}" --mode compile
      ;;
    estimate)
      est=()
      for c in $T1/cifar100_*.yaml configs/ikami/table1_fastaa/cifar100_*.yaml $T2/cifar100_*.yaml; do
        out="$work/json/est_$(basename "$(dirname "$c")")_$(basename "$c" .yaml).json"
        "$bin" bench "$c" --set train.bf16=true --set train.channels_last=true \
          --set train.cuda_graphs=auto --warmup 15 --steps 30 --rounds 1 --out "$out" \
          >>"$work/logs/estimate.log" 2>&1 && est+=(--estimate "$out")
      done
      note "== estimate from $(( ${#est[@]} / 2 )) bench files"
      for t in 1 2 3 4; do
        "$bin" plan ikami_table$t --results "$work/no-results" "${est[@]}" 2>&1 |
          grep '^# ' | grep -v 'no bench row' | tee -a "$summary"
      done
      ;;
    imagenet)
      T6=configs/ikami/table6
      r50=$(variant r50_bn_b256 $T6/imagenet_resnet50_bn.yaml "train: {$fast, cuda_graphs: auto}")
      r50cwo=$(variant r50_cwo_b256 $T6/imagenet_resnet50_cwo.yaml "train: {$fast, cuda_graphs: auto}")
      nbench r50_b256 30 "$r50" "$r50cwo"
      "$bin" data bench-jpeg --dir "$work/jpeg" --images 4096 --batch 256 --workers 1 \
        --workers 4 --workers 8 --workers 16 >"$work/logs/jpeg.log" 2>&1
      note "== data bench-jpeg, $(nproc) cores (rc $?)"; grep -v '^\[' "$work/logs/jpeg.log" | tee -a "$summary"
      ;;
    *) echo "unknown stage '$stage' (test, bench, peer, compile, estimate, imagenet)" >&2; exit 2 ;;
  esac
done
tar -C "$work" -czf "$OUT/h200.tar.gz" json logs cfg
