#!/usr/bin/env bash
# bench/h200_table.py prints the GPU call's table last, from whatever the call left: files
# missing, cut short, empty, of the wrong shape, with nulls and zeros. It must print every
# row it can and never exit non-zero. Catches: a TypeError on a null figure, a division by a
# zero images/s, an AttributeError on an array where an object was expected (or the
# reverse), one odd file costing the sections after it.
set -uo pipefail
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
mkdir -p "$d/json"
j() { printf '%s\n' "$2" >"$d/json/$1.json"; }
j wrn_b128 '[{"name": "wrn_b128_eager", "images_per_s": 1000.0, "train_tflop_per_s": 200.0, "device": "H200"},
             {"name": "wrn_b128_graphs", "images_per_s": null, "cuda_graphs": "captured"}]'
j peer_wrn_b128_eager '[]'
j peer_wrn_b128_graphs '{"images_per_s": 1200.0}'
j r110_b128 '{"not": "an array"}'
j peer_r110_b128_eager '{"images_per_s": "fast"}'
j wrn_b4 '[{"name": "wrn_b4_eager"}, {"name": "wrn_b4_graphs", "images_per_s": 0}]'
j matmul_peak '[1, 2]'
j cwo_wrn '[{"name": "wrn_b128_graphs", "images_per_s": 900.0}, {"name": "wrn_cwo_b128_graphs", "images_per_s": 0}]'
j vitb16 '[{"name": "vitb16_ln", "images_per_s": 500}, "junk"]'
j norms_bf16 '[]'
j norms_fp32 '{"results": [{"shape": "16x197x768", "baseline": "LayerNorm", "forward_ms": {"ratio": 1.1}}, 7,
                {"shape": "64x256x56x56", "baseline": "batchnorm2d", "backward_ms": {"whole_map_ratio": 1.25}}]}'
printf 'not json' >"$d/json/norms_bf16.json"
out=$(python3 "$1/bench/h200_table.py" "$d" 2>&1)
rc=$?
fail() { echo "FAIL: $*"; echo "$out"; exit 1; }
((rc == 0)) || fail "exit $rc"
grep -q '^## normexp on H200' <<<"$out" || fail "no heading with the device"
grep -q '^| WRN-28-10 B128 | 1000.0 | – (captured) | – | – | 1200.0 | – | 200.0 | – |' <<<"$out" ||
  fail "the WRN-28-10 row is not as expected"
grep -q '^| ResNet-110 B128 | – |' <<<"$out" || fail "no ResNet-110 row"
grep -q '^| WRN-28-10 B4 | – | 0.0 |' <<<"$out" || fail "no WRN B4 row"
grep -q '^| graphs | 900.0 | 0.0 | – % per step' <<<"$out" || fail "no cwo row"
grep -q '^ViT-B/16 training step: LN 500.0 img/s, BCN – img/s' <<<"$out" || fail "no ViT line"
grep -q '^| 16x197x768 | LayerNorm | +10.0 | – |' <<<"$out" || fail "no norms row"
grep -q '^| 64x256x56x56 | batchnorm2d | .* | – / +25.0 / – |$' <<<"$out" || fail "no whole-map figures"
grep -q 'section of the table failed' <<<"$out" && fail "a section failed"
echo "table printed from odd files"
