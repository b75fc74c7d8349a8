#!/usr/bin/env bash
# Builds normexp's CUDA binaries on THIS machine (Debian 12, nvcc, no GPU needed) against the
# exact LibTorch the GPU machine's python3 has (torch 2.11.0+cu130, the PyPI wheel), and packs
# them into .devicebin/ to carry there: GPU minutes then go to measuring, not compiling (issue 14).
#
#   bash bench/device_prebuild.sh      # ~25 min from scratch on 2 cores, incremental after
#   run(command="bash bench/h200_session.sh", carry=[".devicebin", ".devicedeps"])
#
# .devicebin/: bin/normexp, bin/normexp_ml_tests (stripped); lib/ the shared libraries they
# need that are neither LibTorch's (the GPU machine's own torch/lib and nvidia/*/lib serve
# those, the same wheel) nor glibc's: yaml-cpp, spdlog, fmt, libjpeg-turbo, ... and libstdc++;
# MANIFEST: commit, versions, the newest glibc symbol version required. The wheel is cached
# in $NORMEXP_WHEEL_DIR (default ~/.cache/normexp); only its torch/{lib,include,share} unpacked
# (NORMEXP_TORCH_DIR: use a torch/ folder already unpacked).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
ver=${NORMEXP_DEVICE_TORCH:-2.11.0}
cuda_tag=${NORMEXP_DEVICE_CUDA:-cu130}
cache=${NORMEXP_WHEEL_DIR:-$HOME/.cache/normexp}/torch-$ver
T=${NORMEXP_TORCH_DIR:-$cache/torch}  # or an unpacked wheel's torch/ folder
command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
command -v nvcc >/dev/null || { echo "device_prebuild: nvcc not found (CUDA toolkit)" >&2; exit 1; }

if [ ! -f "$T/share/cmake/Torch/TorchConfig.cmake" ]; then
  mkdir -p "$cache/wheel"
  pip download "torch==$ver" --no-deps -d "$cache/wheel"
  python3 - "$cache" <<'EOF'
import glob, sys, zipfile
cache = sys.argv[1]
(wheel,) = glob.glob(f"{cache}/wheel/torch-*.whl")
with zipfile.ZipFile(wheel) as z:
    for n in z.namelist():
        if n.startswith(("torch/lib/", "torch/include/", "torch/share/", "torch/version.py")):
            z.extract(n, cache)
EOF
  rm -rf "$cache/wheel"
fi
got=$(sed -n "s/^__version__ = '\(.*\)'/\1/p" "$T/version.py")
[ "$got" = "$ver+$cuda_tag" ] || { echo "device_prebuild: wheel is $got, want $ver+$cuda_tag" >&2; exit 1; }

# c10 and torch named explicitly: find_library would otherwise take Debian's 1.13 from /usr/lib.
# Lean: the GPU machine trains and measures; downloading and preparing datasets (curl, OpenSSL,
# libarchive, matio, HDF5, libpng and their dozens of dependencies, ICU's 30 MB among them) stays
# on the CPU machines. Without pkg-config, libjpeg-turbo is found by name (CMakeLists.txt).
lean=(-DCMAKE_DISABLE_FIND_PACKAGE_CURL=ON -DCMAKE_DISABLE_FIND_PACKAGE_OpenSSL=ON
      -DCMAKE_DISABLE_FIND_PACKAGE_LibArchive=ON -DCMAKE_DISABLE_FIND_PACKAGE_HDF5=ON
      -DCMAKE_DISABLE_FIND_PACKAGE_PNG=ON -DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON)
# Gloo off: Debian's Gloo headers are not the Gloo inside this LibTorch. --allow-shlib-undefined:
# libtorch_cuda needs cuSPARSELt and NVSHMEM, which the toolkit here lacks and the GPU machine's
# pip nvidia packages provide at run time; for the same reason the test binaries cannot list
# their tests here (PRE_TEST: ctest lists them where they run).
cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$T/share/cmake" \
  -DTORCH_CUDA_ARCH_LIST=9.0 -DCMAKE_CUDA_ARCHITECTURES=90 -Dc10_LIBRARY="$T/lib/libc10.so" \
  -DTORCH_LIBRARY="$T/lib/libtorch.so" -DNORMEXP_GLOO=OFF \
  -DCMAKE_EXE_LINKER_FLAGS=-Wl,--allow-shlib-undefined "${lean[@]}" \
  -DCMAKE_GTEST_DISCOVER_TESTS_DISCOVERY_MODE=PRE_TEST >/dev/null
ninja -C build-cuda -j"${NORMEXP_JOBS:-2}" normexp normexp_ml_tests

stage=.devicebin.partial
rm -rf "$stage"
mkdir -p "$stage/bin" "$stage/lib"
for b in build-cuda/apps/normexp/normexp build-cuda/tests/normexp_ml_tests; do
  strip -o "$stage/bin/$(basename "$b")" "$b"
done
# Everything ldd resolves outside LibTorch, CUDA and glibc travels along.
LD_LIBRARY_PATH="$T/lib:/usr/local/cuda/lib64" ldd "$stage"/bin/* |
  awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
  grep -v -e "^$T/" -e '^/usr/local/cuda' \
    -e '/lib\(c\|m\|dl\|rt\|pthread\|resolv\|util\)\.so' -e '/ld-linux' -e '/libcuda\.so' |
  while read -r so; do cp -L "$so" "$stage/lib/"; done
strip --strip-unneeded "$stage"/lib/*.so* 2>/dev/null || true
glibc=$(objdump -T "$stage"/bin/* "$stage"/lib/* 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
{
  echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- lib apps tests CMakeLists.txt || echo ' (with uncommitted changes)')"
  echo "libtorch $got, nvcc $(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'), sm_90"
  echo "built $(date -u +%FT%TZ) on $(. /etc/os-release && echo "$PRETTY_NAME"), needs glibc >= ${glibc#GLIBC_}"
  echo "libs: $(ls "$stage/lib" | tr '\n' ' ')"
} >"$stage/MANIFEST"
rm -rf .devicebin
mv "$stage" .devicebin
grep -qx '/.devicebin/' .git/info/exclude 2>/dev/null || echo '/.devicebin/' >>.git/info/exclude
cat .devicebin/MANIFEST
du -sh .devicebin | sed 's/^/.devicebin: /'
