# Sourced by the GPU session scripts (bench/h200_session.sh, bench/h200_explain.sh): the
# deadline, the notes and the packing of results under $OUT, and the binaries with their
# environment (prebuilt .devicebin/, else the fallback build on the machine). The caller sets
# `dry` (1: CPU dry run), `root` (the repository) and `deadline_s` (its default deadline).
OUT=${OUT:-/tmp/normexp-h200}
# The steps write under $D. $OUT gets three files, refreshed at every note: the device tool
# brings back at most 8 files from $OUT (two folders down at most), and a call cut short
# brings back what is there: summary.txt, results.tgz ($D: json/, logs/, cfg/) and, at the
# end, table.md.
D=${NORMEXP_H200_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/normexp-h200.XXXXXX")}
mkdir -p "$D/json" "$D/logs" "$D/cfg" "$OUT"
summary=$D/summary.txt
: >"$summary"
start=$(date +%s)
deadline=$((start + ${NORMEXP_DEADLINE_S:-$deadline_s}))
pack() {
  cp "$summary" "$OUT/summary.txt"
  [ -f "$D/table.md" ] && cp "$D/table.md" "$OUT/table.md"
  tar czf "$OUT/results.tgz.part" -C "$D" . && mv -f "$OUT/results.tgz.part" "$OUT/results.tgz"
}
note() { echo "$*" | tee -a "$summary"; pack; }
left() { echo $((deadline - $(date +%s))); }

# A step runs when at least `cap` seconds are left, under a timeout of what is left.
# NORMEXP_STEPS="tests norms" runs only the steps named (a later call skips what an earlier
# one measured).
want() {  # name cap
  local l
  if [ -n "${NORMEXP_STEPS:-}" ] && [[ " $NORMEXP_STEPS " != *" ${1%% *} "* ]]; then
    note "-- skipped $1: not in NORMEXP_STEPS"
    return 1
  fi
  l=$(left)
  if ((l < $2)); then
    note "-- skipped $1: ${l}s left, needs ${2}s"
    return 1
  fi
  return 0
}
# A command's timeout: what is left (less 5 s for the table), at most its own cap, so one
# slow step cannot eat the steps after it. The dry run's CPU steps get no caps.
tlimit() {  # [cap]
  local l cap=${1:-100000}
  l=$(($(left) - 5))
  ((dry)) || ((l <= cap)) || l=$cap
  echo $((l > 1 ? l : 1))
}

# ---------------------------------------------------------------------------------------
# Binaries and environment
if ((dry)); then
  bin=${NORMEXP_BIN:-build/apps/normexp/normexp}
  tests=${NORMEXP_TESTS:-build/tests/normexp_ml_tests}
  device=cpu
  note "== dry run on $(nproc) CPU cores: tiny batches and step counts, CUDA-only parts skipped"
else
  device=cuda
  site=$(python3 -c 'import torch, os; print(os.path.dirname(os.path.dirname(torch.__file__)))')
  torch_lib=$site/torch/lib
  # The pip CUDA libraries (cuDNN, cuBLAS, NCCL...), which libtorch_cuda finds by RUNPATH too.
  nv=$(find "$site/nvidia" -maxdepth 3 -type d -name lib 2>/dev/null | tr '\n' ':')
  export LD_LIBRARY_PATH="$root/.devicebin/lib:$torch_lib:$nv${LD_LIBRARY_PATH:-}"
  bin=.devicebin/bin/normexp
  tests=.devicebin/bin/normexp_ml_tests
  # The machine's libstdc++ first; Debian 12's (lib/compat, needs glibc 2.36) if it is older.
  ok=0
  if "$bin" --version >"$D/logs/prebuilt.log" 2>&1; then
    ok=1
  elif LD_LIBRARY_PATH="$root/.devicebin/lib/compat:$LD_LIBRARY_PATH" "$bin" --version \
      >>"$D/logs/prebuilt.log" 2>&1; then
    export LD_LIBRARY_PATH="$root/.devicebin/lib/compat:$LD_LIBRARY_PATH"
    ok=1
  fi
  if ((ok)); then
    note "== path: prebuilt binaries ($(head -3 .devicebin/MANIFEST 2>/dev/null | tr '\n' ' '))"
  else
    note "== path: FALLBACK build on the machine (prebuilt did not start: $(tail -2 "$D/logs/prebuilt.log" | tr '\n' ' '))"
    # Capped: a build that cannot finish in 5 minutes leaves the rest of the budget to report it.
    timeout -k 10 "$(tlimit 300)" bash .devicedeps/build-on-device.sh >"$D/logs/build.log" 2>&1
    note "   build rc $? in $(($(date +%s) - start)) s"
    export LD_LIBRARY_PATH="/opt/devicedeps/usr/lib/x86_64-linux-gnu:$LD_LIBRARY_PATH"
    bin=build-cuda/apps/normexp/normexp
    tests=build-cuda/tests/normexp_ml_tests
  fi
  nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.mem,temperature.gpu,power.limit \
    --format=csv >"$D/logs/gpu.txt" 2>&1
  note "== GPU: $(tail -1 "$D/logs/gpu.txt")"
fi
note "== normexp: $("$bin" --version 2>&1 | head -1)"
note "== python: $(python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())' 2>&1 | tail -1)"
peer_ok=0
python3 -c 'import torch' >/dev/null 2>&1 && peer_ok=1


# ---------------------------------------------------------------------------------------
# Configs and the commands that measure them. The caller sets the sizes W (warm-up steps)
# and R (rounds).
# A bench variant: a config that inherits a shipped config and sets train options.
variant() {  # name base "train: {...}" [more YAML lines]
  local name=$1 base=$2
  shift 2
  { echo "name: $name"; echo "base: $(realpath "$base")"; printf '%s\n' "$@"; } >"$D/cfg/$name.yaml"
  echo "$D/cfg/$name.yaml"
}
T1=configs/ikami/table1
T2=configs/ikami/table2
gpu=true  # bf16 and channels_last: GPU only
((dry)) && gpu=false
fast="bf16: $gpu, channels_last: $gpu"
mk() {  # name base batch graphs
  variant "$1" "$2" "train: {$fast, cuda_graphs: $4, batch_size: $3, device: $device}"
}

# ViT-B/16 at 224 px (no shipped ImageNet ViT recipe: a DeiT-like one); needs B_VIT.
vit() {  # name norm-yaml
  { echo "name: $1"; echo "data: {name: imagenet}"; echo "model: {name: vit, preset: vit_b16}"
    echo "norm: $2"; echo "optim: {name: adamw, lr: 1.0e-3, weight_decay: 0.05}"
    echo "schedule: {name: cosine}"
    echo "train: {$fast, cuda_graphs: auto, batch_size: $B_VIT, epochs: 300, device: $device}"
  } >"$D/cfg/$1.yaml"
  echo "$D/cfg/$1.yaml"
}

nbench() {  # label steps configs...
  local label=$1 steps=$2
  shift 2
  timeout -k 10 "$(tlimit 120)" "$bin" bench "$@" --device "$device" --warmup "$W" --steps "$steps" \
    --rounds "$R" --out "$D/json/$label.json" >"$D/logs/$label.log" 2>&1
  local rc=$?
  note "== normexp bench $label (rc $rc)"
  grep -v '^\[' "$D/logs/$label.log" | tail -n 12 | tee -a "$summary"
}

peer() {  # label args...
  local label=$1
  shift
  if ((!peer_ok)); then
    note "-- skipped peer $label: python3 has no torch"
    return
  fi
  local extra=(--bf16 --channels-last)
  ((dry)) && extra=(--threads 2)
  timeout -k 10 "$(tlimit "${PEER_CAP:-120}")" python3 bench/peer/train_bench.py "$@" "${extra[@]}" --classes 100 \
    --device "$device" --warmup "$W" --steps "$S" --out "$D/json/$label.json" \
    >"$D/logs/$label.log" 2>&1
  note "== peer $label (rc $?): $(tail -1 "$D/logs/$label.log")"
}

# The CUDA-only tests (graph capture, CUDA runs and resume, BCN's kernels), in two processes:
# a CUDA error that poisons one (a sticky fault) leaves the other's verdicts.
cuda_tests() {
  local part filter
  for part in graphs bcn; do
    filter='TrainStep.*:CudaRun.*:CudaGraph.*'
    [ $part = bcn ] && filter='Bcn*.*:AffineNoise.*:ChannelScale.*:ScaleChannels.*'
    timeout -k 10 "$(tlimit 70)" "$tests" --gtest_filter="$filter" >"$D/logs/tests_$part.log" 2>&1
    note "== CUDA-only tests, $part (rc $?): $(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$D/logs/tests_$part.log" | tr '\n' ' ')"
    grep -E '^\[  FAILED  \]|^\[  SKIPPED \]' "$D/logs/tests_$part.log" | head -20 | tee -a "$summary"
  done
}
