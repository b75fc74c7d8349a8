#!/usr/bin/env bash
# Issue 14 (and 20's GPU half): everything normexp measures on the GPU machine, in ONE `run`
# call that stays under a deadline (default 450 s) and leaves every result under $OUT as it
# goes (in three files: the device tool returns at most 8), so a cut-short call still returns
# what it measured.
#
#   device:  bash bench/h200_session.sh              (carry .devicebin and .devicedeps)
#   here:    bash bench/h200_session.sh --dry-run    (CPU: every step runs tiny, or says why not)
#
# Binaries: .devicebin/ from bench/device_prebuild.sh (built on the CPU machine against the same
# LibTorch 2.11.0+cu130 wheel the GPU machine's python3 has). If they do not start there, the
# fallback builds them on the machine (.devicedeps/build-on-device.sh, minutes of the budget);
# the first lines of summary.txt say which path ran.
#
# Steps, most important first; each runs only if the time left covers its cap:
#   tests    the CUDA-only tests (graph capture, CUDA run + resume, BCN's CUDA kernels)
#   peak     the bf16 matrix peak of this GPU (PyTorch matmul), the TFLOP/s yardstick
#   wrn128   WRN-28-10 B128 bf16: normexp eager vs graphs, then the PyTorch peer (eager)
#   r110     ResNet-110 B128: the same
#   wrn4     WRN-28-10 B4: the same
#   cwo      cwo + noise vs bn on WRN-28-10 B128 (graphs, eager)
#   fastaa   the FastAA + Cutout pipeline's share of a WRN-28-10 step (B128, B4)
#   norms    BCN (fused CUDA kernel and op chain) vs LayerNorm/BatchNorm, bf16 and fp32
#   vit      the ViT-B/16 training step with BCN vs LN (B128 bf16, synthetic ImageNet)
#   imagenet the ResNet-50 step (bn, cwo; B256) vs the JPEG loader on the machine's cores
#   peer+    the peer in graphs mode on the three workloads
#   estimate normexp bench on each CIFAR-100 config of Tables 1-2 (as many as time allows),
#            then `normexp plan ikami_tableN --estimate`: H200-hours of the CIFAR cells
#   compile  the peer with torch.compile (minutes of compiling; only if time is left)
# Output: $OUT/summary.txt (log of steps), $OUT/results.tgz (json/*.json, logs/*, cfg/*) and
# $D/table.md (bench/h200_table.py), printed last.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dry=0
[ "${1:-}" = "--dry-run" ] && dry=1
deadline_s=450
# shellcheck source=bench/device_session.sh
source bench/device_session.sh

# Sizes: the real workloads on the GPU, tiny ones in the dry run (same code paths).
if ((dry)); then
  B128=2 B4=1 B_VIT=1 W=1 S=2 S_SMALL=2 R=1 NORMS=(--shape 2x16x32 --shape 2x8x8x8 --repeats 2 --warmup 1)
else
  B128=128 B4=4 B_VIT=128 W=20 S=40 S_SMALL=150 R=2 NORMS=(--repeats 30 --warmup 5)
fi

wrn_e=$(mk wrn_b128_eager $T1/cifar100_wrn28_10_bn.yaml $B128 off)
wrn_g=$(mk wrn_b128_graphs $T1/cifar100_wrn28_10_bn.yaml $B128 on)
wrncwo_e=$(mk wrn_cwo_b128_eager $T1/cifar100_wrn28_10_cwo.yaml $B128 off)
wrncwo_g=$(mk wrn_cwo_b128_graphs $T1/cifar100_wrn28_10_cwo.yaml $B128 on)
r110_e=$(mk r110_b128_eager $T1/cifar100_resnet110_bn.yaml $B128 off)
r110_g=$(mk r110_b128_graphs $T1/cifar100_resnet110_bn.yaml $B128 on)
b4_e=$(mk wrn_b4_eager $T2/cifar100_wrn28_10_bn_b4.yaml $B4 off)
b4_g=$(mk wrn_b4_graphs $T2/cifar100_wrn28_10_bn_b4.yaml $B4 on)
vit_ln=$(vit vitb16_ln "{name: ln}")
vit_bcn=$(vit vitb16_bcn "{name: bcn, alpha: 0.2, stats: tokens}")


# ---------------------------------------------------------------------------------------
want tests 30 && cuda_tests

if want peak 20; then
  if ((peer_ok)); then
    timeout -k 10 "$(tlimit 60)" python3 bench/peer/matmul_peak.py --device "$device" \
      --out "$D/json/matmul_peak.json" >"$D/logs/peak.log" 2>&1
    note "== matrix peak (rc $?): $(tail -1 "$D/logs/peak.log")"
  else
    note "-- skipped peak: python3 has no torch"
  fi
fi

if want wrn128 90; then
  nbench wrn_b128 "$S" "$wrn_e" "$wrn_g"
  peer peer_wrn_b128_eager --model wrn --batch "$B128" --mode eager
fi
if want r110 70; then
  nbench r110_b128 "$S_SMALL" "$r110_e" "$r110_g"
  peer peer_r110_b128_eager --model resnet --depth 110 --batch "$B128" --mode eager
fi
if want wrn4 60; then
  nbench wrn_b4 "$S_SMALL" "$b4_e" "$b4_g"
  peer peer_wrn_b4_eager --model wrn --batch "$B4" --mode eager
fi
want cwo 50 && nbench cwo_wrn "$S" "$wrn_g" "$wrncwo_g" "$wrn_e" "$wrncwo_e"

if want fastaa 40; then
  timeout -k 10 "$(tlimit 90)" "$bin" data bench configs/ikami/table1_fastaa/cifar10_wrn28_10_cwo.yaml \
    --device "$device" --batch "$B128" --batch "$B4" --set "train.bf16=$gpu" \
    --set "train.channels_last=$gpu" >"$D/logs/fastaa.log" 2>&1
  note "== FastAA + Cutout pipeline vs WRN-28-10 step (rc $?)"
  grep -v '^\[' "$D/logs/fastaa.log" | tail -n 12 | tee -a "$summary"
fi

if want norms 40; then
  for dt in bf16 fp32; do
    args=("${NORMS[@]}")
    if [ $dt = bf16 ]; then
      ((dry)) && { note "-- skipped bench norms bf16: CUDA only"; continue; }
      args+=(--bf16)
    fi
    timeout -k 10 "$(tlimit 90)" "$bin" bench norms --device "$device" "${args[@]}" \
      --out "$D/json/norms_$dt.json" >"$D/logs/norms_$dt.log" 2>&1
    note "== bench norms $dt (rc $?)"
    grep -v '^\[' "$D/logs/norms_$dt.log" | tail -n 10 | tee -a "$summary"
  done
fi

want vit 50 && nbench vitb16 "$S" "$vit_ln" "$vit_bcn"

if want imagenet 60; then
  T6=configs/ikami/table6
  nbench r50_b256 "$((dry ? 1 : 30))" "$(mk r50_bn $T6/imagenet_resnet50_bn.yaml $((dry ? 1 : 256)) auto)" \
    "$(mk r50_cwo $T6/imagenet_resnet50_cwo.yaml $((dry ? 1 : 256)) auto)"
  workers=(--workers 1 --workers 4 --workers 8 --workers 16)
  ((dry)) && workers=(--workers 1 --workers 2)
  # The JPEGs (~400 MB) outside $OUT and $D (packed into results.tgz at every note).
  jpeg_dir=${TMPDIR:-/tmp}/normexp-h200-jpeg
  # 1536 JPEGs: writing them is single-threaded (~15 ms each); 4096 took the whole 90 s cap.
  timeout -k 10 "$(tlimit 90)" "$bin" data bench-jpeg --dir "$jpeg_dir" --images "$((dry ? 64 : 1536))" \
    --batch "$((dry ? 16 : 256))" "${workers[@]}" >"$D/logs/jpeg.log" 2>&1
  rc=$?  # before the note: its $(nproc) would reset $?
  note "== data bench-jpeg on $(nproc) cores (rc $rc): does the loader keep up with the ResNet-50 step?"
  grep -v '^\[' "$D/logs/jpeg.log" | tail -n 10 | tee -a "$summary"
  rm -rf "$jpeg_dir"
fi

if want peer+ 60; then
  if ((dry)); then
    note "-- skipped peer graphs mode: CUDA only"
  else
    peer peer_wrn_b128_graphs --model wrn --batch "$B128" --mode graphs
    peer peer_r110_b128_graphs --model resnet --depth 110 --batch "$B128" --mode graphs
    peer peer_wrn_b4_graphs --model wrn --batch "$B4" --mode graphs
  fi
fi

if want estimate 40; then
  est=()
  configs=($T1/cifar100_*.yaml configs/ikami/table1_fastaa/cifar100_*.yaml $T2/cifar100_*.yaml)
  ((dry)) && configs=("${configs[@]:0:2}")
  for c in "${configs[@]}"; do
    ((dry)) || want "estimate $(basename "$c")" 25 || break
    out="$D/json/est_$(basename "$(dirname "$c")")_$(basename "$c" .yaml).json"
    sets=(--set train.cuda_graphs=auto --set "train.device=$device" --set "train.bf16=$gpu"
          --set "train.channels_last=$gpu")
    ((dry)) && sets+=(--set train.batch_size=2)
    timeout -k 10 "$(tlimit 45)" "$bin" bench "$c" "${sets[@]}" --warmup "$W" --steps "$((dry ? 1 : 30))" --rounds 1 \
      --out "$out" >>"$D/logs/estimate.log" 2>&1 && est+=(--estimate "$out")
  done
  note "== estimate from $((${#est[@]} / 2)) of ${#configs[@]} bench files"
  for t in 1 2 3 4; do
    "$bin" plan ikami_table$t --results "$D/no-results" ${est[@]+"${est[@]}"} 2>&1 |
      grep '^# ' | grep -v 'no bench row' | tee -a "$summary"
  done
fi

if want compile 120; then
  if ((dry)); then
    note "-- skipped torch.compile peer: minutes of compiling, GPU runs only"
  else
    peer peer_wrn_b128_compile --model wrn --batch "$B128" --mode compile
  fi
fi

note "== done in $(($(date +%s) - start)) s"
python3 bench/h200_table.py "$D" >"$D/table.md" 2>"$D/logs/table.log" ||
  echo "(table failed: $(tail -1 "$D/logs/table.log"))" >>"$D/table.md"
pack
cat "$D/table.md"
