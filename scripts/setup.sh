#!/usr/bin/env bash
# Installs what normexp needs and is missing (Debian 12 packages, by name), then configures
# and builds it in ${NORMEXP_BUILD_DIR:-build}. LibTorch: Debian's libtorch-dev (1.13, CPU)
# unless one is already configured — Torch_DIR or CMAKE_PREFIX_PATH pointing at a LibTorch
# (e.g. a CUDA one: python3 -c 'import torch; print(torch.utils.cmake_prefix_path)').
# Extra arguments are passed to cmake's configure step.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${NORMEXP_BUILD_DIR:-build}

have_torch() {
  [ -n "${Torch_DIR:-}" ] && return 0
  local p
  IFS=';:' read -ra parts <<<"${CMAKE_PREFIX_PATH:-}"
  for p in "${parts[@]}"; do
    [ -n "$p" ] && ls "$p"/Torch/TorchConfig.cmake "$p"/share/cmake/Torch/TorchConfig.cmake \
      "$p"/lib/cmake/Torch/TorchConfig.cmake >/dev/null 2>&1 && return 0
  done
  return 1
}

pkgs=(cmake ninja-build g++ ccache libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev
      nlohmann-json3-dev libgtest-dev libarchive-dev libssl-dev libcurl4-openssl-dev gnuplot-nox
      libopenblas0-pthread zlib1g-dev dataset-fashion-mnist libgloo-dev
      libhdf5-dev libboost-dev python3-venv libturbojpeg0-dev libmatio-dev libpng-dev)
# libopenblas0-pthread: Debian's LibTorch calls the system libblas.so.3 for Linear layers and
# matmul; without it that is the reference BLAS, ~10x slower (transformers, MLP heads).
# libboost-dev: Boost.CRC's CRC-32C for TensorBoard event files; python3-venv: the test command
# installs PyPI's tensorboard in a virtual environment to read those files back.
# libhdf5-dev: ModelNet40's HDF5 files (Ikami et al. 2021 Table 5).
# libturbojpeg0-dev: ImageNet's JPEGs; libmatio-dev: the devkit's meta.mat; libpng-dev: the one
# PNG among ImageNet's JPEGs, which `data prepare imagenet` converts.
# libgloo-dev: the headers of the Gloo that Debian's LibTorch uses (data-parallel CPU runs).
# dataset-fashion-mnist: the IDX files data.name fashion_mnist reads (/usr/share/datasets).
have_torch || pkgs+=(libtorch-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -S . -B "$build_dir" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release "$@"
elif (($#)); then
  cmake -S . -B "$build_dir" "$@"
fi
cmake --build "$build_dir" -j"$(nproc)"
