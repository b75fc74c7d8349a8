#!/usr/bin/env bash
# The second GPU call of issue 14 (and 20): where the time of the misses of the first call
# goes, kernel by kernel, in ONE `run` call under a deadline (default 330 s), every result
# under $OUT as it goes (bench/device_session.sh: summary.txt, results.tgz).
#
#   device:  bash bench/h200_explain.sh              (carry .devicebin and .devicedeps)
#   here:    bash bench/h200_explain.sh --dry-run    (CPU: every step runs tiny)
#
# Steps, most important first; each runs only if the time left covers its cap:
#   tests    the CUDA-only tests first: they check what changed since the last GPU call
#            (BCN's column_sums, the multi-tensor SGD inside graphs) before it is timed
#   ablate   WRN-28-10 B128 bf16, graphs, side by side: bn, ws_bn, cwo without noise, cwo,
#            cwo with its affine + noise as the op chain (norm.fused: false), and bn and cwo
#            with FastAA + Cutout: what each piece of cwo and of FastAA costs
#   profile  the same workloads eager under the profiler (bench --profile): GPU time per
#            kernel per step, bn vs cwo vs bn + FastAA; and WRN B4 in graphs (busy vs step)
#   vitprof  the ViT-B/16 step (B128 bf16, eager) under the profiler, LN vs BCN: GPU time
#            and launches per step (what BCN's layers cost beyond their kernels)
#   norms    bench norms bf16 --profile: the kernels of BCN, LayerNorm and BatchNorm, and of
#            cwo's affine + noise, fused and as the op chain
#   jpeg     the JPEG loader on the machine's cores (ImageNet input rate vs the R-50 step)
#   estimate the Table 2 cwo configs the first call had no time for
#   compile  the PyTorch peer with torch.compile on WRN-28-10 B128, if time is left
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dry=0
[ "${1:-}" = "--dry-run" ] && dry=1
deadline_s=330
# shellcheck source=bench/device_session.sh
source bench/device_session.sh

if ((dry)); then
  B128=2 B4=1 B_VIT=1 W=1 S=2 R=1 P=1 NORMS=(--shape 2x16x32 --shape 2x8x8x8 --repeats 2 --warmup 1)
else
  B128=128 B4=4 B_VIT=128 W=15 S=30 R=2 P=3 NORMS=(--shape 128x197x768 --shape 256x65x192
    --shape 64x256x56x56 --repeats 30 --warmup 5 --bf16)
fi
T1F=configs/ikami/table1_fastaa
no_noise="norm: {noise: {schedule: none, sigma: 0.0}}"

# A bench whose log ends with profile tables: the summary gets the speed table and the top
# rows of each profile.
pbench() {  # label steps profile-calls configs...
  local label=$1 steps=$2 calls=$3
  shift 3
  timeout -k 10 "$(tlimit 120)" "$bin" bench "$@" --device "$device" --warmup "$W" \
    --steps "$steps" --rounds 1 --profile "$calls" --profile-top 40 \
    --out "$D/json/$label.json" >"$D/logs/$label.log" 2>&1
  local rc=$?
  note "== normexp bench --profile $label (rc $rc)"
  grep -v '^\[' "$D/logs/$label.log" | awk '/^## /{n=0} {if (n++ < 16) print}' |
    tee -a "$summary"
}

want tests 30 && cuda_tests

if want ablate 60; then
  nbench ablate_wrn_b128 "$S" \
    "$(mk abl_bn $T1/cifar100_wrn28_10_bn.yaml "$B128" on)" \
    "$(mk abl_ws_bn $T1/cifar100_wrn28_10_ws_bn.yaml "$B128" on)" \
    "$(variant abl_cwo_no_noise $T1/cifar100_wrn28_10_cwo.yaml \
      "train: {$fast, cuda_graphs: on, batch_size: $B128, device: $device}" "$no_noise")" \
    "$(mk abl_cwo $T1/cifar100_wrn28_10_cwo.yaml "$B128" on)" \
    "$(variant abl_cwo_op_chain $T1/cifar100_wrn28_10_cwo.yaml \
      "train: {$fast, cuda_graphs: on, batch_size: $B128, device: $device}" \
      "norm: {fused: false}")" \
    "$(mk abl_bn_fastaa $T1F/cifar100_wrn28_10_bn.yaml "$B128" on)" \
    "$(mk abl_cwo_fastaa $T1F/cifar100_wrn28_10_cwo.yaml "$B128" on)"
fi

if want profile 60; then
  pbench profile_wrn_b128_eager "$((dry ? 1 : 10))" "$P" \
    "$(mk prof_bn $T1/cifar100_wrn28_10_bn.yaml "$B128" off)" \
    "$(mk prof_cwo $T1/cifar100_wrn28_10_cwo.yaml "$B128" off)" \
    "$(mk prof_bn_fastaa $T1F/cifar100_wrn28_10_bn.yaml "$B128" off)"
  pbench profile_wrn_b4_graphs "$((dry ? 1 : 50))" "$((dry ? 1 : 20))" \
    "$(mk prof_b4_graphs $T2/cifar100_wrn28_10_bn_b4.yaml "$B4" on)"
fi

if want vitprof 60; then
  pbench profile_vitb16_eager "$((dry ? 1 : 10))" "$P" "$(vit prof_vit_ln "{name: ln}")" \
    "$(vit prof_vit_bcn "{name: bcn, alpha: 0.2, stats: tokens}")"
fi

if want norms 30; then
  timeout -k 10 "$(tlimit 60)" "$bin" bench norms --device "$device" "${NORMS[@]}" \
    --profile "$((dry ? 1 : 5))" --out "$D/json/norms_profile.json" >"$D/logs/norms_profile.log" 2>&1
  rc=$?
  note "== bench norms --profile (rc $rc)"
  grep -v '^\[' "$D/logs/norms_profile.log" | awk '/^## /{n=0} {if (n++ < 10) print}' |
    tee -a "$summary"
fi

if want jpeg 60; then
  workers=(--workers 1 --workers 4 --workers 8 --workers 16)
  ((dry)) && workers=(--workers 1 --workers 2)
  jpeg_dir=${TMPDIR:-/tmp}/normexp-h200-jpeg  # outside $D: not packed
  timeout -k 10 "$(tlimit 90)" "$bin" data bench-jpeg --dir "$jpeg_dir" \
    --images "$((dry ? 64 : 1536))" --batch "$((dry ? 16 : 256))" "${workers[@]}" \
    >"$D/logs/jpeg.log" 2>&1
  rc=$?
  note "== data bench-jpeg on $(nproc) cores (rc $rc)"
  grep -v '^\[' "$D/logs/jpeg.log" | tail -n 12 | tee -a "$summary"
  rm -rf "$jpeg_dir"
fi

if want estimate 30; then
  configs=($T2/cifar100_wrn28_10_cwo_b*.yaml)
  ((dry)) && configs=("${configs[@]:0:1}")
  for c in "${configs[@]}"; do
    ((dry)) || want "estimate $(basename "$c")" 25 || break
    sets=(--set train.cuda_graphs=auto --set "train.device=$device" --set "train.bf16=$gpu"
          --set "train.channels_last=$gpu")
    ((dry)) && sets+=(--set train.batch_size=2)
    timeout -k 10 "$(tlimit 45)" "$bin" bench "$c" "${sets[@]}" --warmup "$W" \
      --steps "$((dry ? 1 : 30))" --rounds 1 \
      --out "$D/json/est_table2_$(basename "$c" .yaml).json" >>"$D/logs/estimate.log" 2>&1
    note "== estimate $(basename "$c") (rc $?)"
  done
fi

# Last, as the first call had no time for it: the peer under torch.compile (minutes of
# compiling), capped by what is left.
if want compile 150; then
  if ((dry)); then
    note "-- skipped torch.compile peer: GPU runs only"
  else
    S=40 PEER_CAP=240 peer peer_wrn_b128_compile --model wrn --batch "$B128" --mode compile
  fi
fi

note "== done in $(($(date +%s) - start)) s"
