#!/usr/bin/env bash
# Builds normexp's CUDA binaries on THIS machine (Debian 12, nvcc, no GPU needed) against the
# exact LibTorch the GPU machine's python3 has (torch 2.11.0+cu130, the PyPI wheel), and packs
# them into .devicebin/ to carry there: GPU minutes then go to measuring, not compiling (issue 14).
#
#   bash bench/device_prebuild.sh          # ~25 min from scratch on 2 cores, incremental after
#   bash bench/device_prebuild.sh --check  # then run them here on the CPU (see the end)
#   bash bench/device_prebuild.sh --check-all [CTEST ARGS]  # the whole suite here (~20 min)
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
check=0 all=0
case "${1:-}" in
  --check) check=1 ;;
  --check-all) check=1 all=1 ;;
esac
((all)) && shift
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
        if n.startswith(("torch/lib/", "torch/include/", "torch/share/", "torch/version.py")) or \
                n.endswith(".dist-info/METADATA"):
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
# Debian 12's libstdc++ and libgcc_s need glibc 2.36 and 2.35: they go to lib/compat/, used
# only where the machine's own libstdc++ is older than the one we built with (h200_session.sh
# tries without them first).
mkdir -p "$stage/lib/compat"
mv "$stage"/lib/libstdc++.so.* "$stage"/lib/libgcc_s.so.* "$stage/lib/compat/" 2>/dev/null || true
glibc=$(objdump -T "$stage"/bin/* "$stage"/lib/*.so* 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
glibcxx=$(objdump -T "$stage"/bin/* "$stage"/lib/*.so* 2>/dev/null | grep -o 'GLIBCXX_[0-9.]*' | sort -uV | tail -1)
{
  echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- lib apps tests CMakeLists.txt || echo ' (with uncommitted changes)')"
  echo "libtorch $got, nvcc $(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'), sm_90"
  echo "built $(date -u +%FT%TZ) on $(. /etc/os-release && echo "$PRETTY_NAME"), needs glibc >= ${glibc#GLIBC_}, libstdc++ >= ${glibcxx#GLIBCXX_} (else lib/compat: glibc >= 2.36)"
  echo "libs: $(cd "$stage/lib" && ls -d *.so* compat/* | tr '\n' ' ')"
} >"$stage/MANIFEST"
rm -rf .devicebin
mv "$stage" .devicebin
grep -qx '/.devicebin/' .git/info/exclude 2>/dev/null || echo '/.devicebin/' >>.git/info/exclude
cat .devicebin/MANIFEST
du -sh .devicebin | sed 's/^/.devicebin: /'

# --check: the packed binaries on THIS CPU with the wheel's LibTorch, as far as a machine
# without a GPU can take them: the test suite (CUDA tests skip) and the GPU session's dry run.
# The three CUDA libraries libtorch_cuda needs that the toolkit here lacks come from the pip
# packages the wheel names (cuSPARSELt, NVSHMEM, cuFile); nothing of them runs without a GPU.
# This is how a LibTorch-2.x-only failure (std::filesystem bound into libtorch.so, see
# CMakeLists.txt) is found before the GPU machine's minutes are spent.
((check)) || exit 0
nv=$cache/nvidia-libs
if [ ! -f "$nv/.done" ]; then
  meta=$(ls "$T"/../torch-*.dist-info/METADATA)
  want=$(sed -n 's/^Requires-Dist: \(nvidia-\(cusparselt\|nvshmem\)-cu[0-9]*==[0-9.]*\).*/\1/p' "$meta")
  tk=$(sed -n 's/^Requires-Dist: cuda-toolkit\[.*\]==\([0-9.]*\).*/\1/p' "$meta")
  mkdir -p "$nv/wheels"
  pip download --no-deps -d "$nv/wheels" $want >/dev/null
  pip download -d "$nv/wheels/tk" "cuda-toolkit[cufile]==$tk" >/dev/null
  python3 - "$nv" <<'EOF'
import glob, os, sys, zipfile
nv = sys.argv[1]
for w in glob.glob(f"{nv}/wheels/*.whl") + glob.glob(f"{nv}/wheels/tk/nvidia_cufile*.whl"):
    with zipfile.ZipFile(w) as z:
        for n in z.namelist():
            if ".so" in os.path.basename(n):
                with open(os.path.join(nv, os.path.basename(n)), "wb") as f:
                    f.write(z.read(n))
EOF
  rm -rf "$nv/wheels"
  touch "$nv/.done"
fi
export LD_LIBRARY_PATH="$PWD/.devicebin/lib:$T/lib:$nv:/usr/local/cuda/lib64"
if ((all)); then
  # --check-all: every target of build-cuda (the seven test binaries, the fuzz replays) and
  # the whole ctest suite against LibTorch 2.11 on this CPU, the Fashion-MNIST learning tests
  # among them; CUDA-only tests skip, and so do those needing what the lean build leaves out
  # (OpenSSL, libarchive, libcurl, Gloo). TensorBoard's reader: the venv scripts/test.sh made.
  ninja -C build-cuda -j"${NORMEXP_JOBS:-2}"
  [ -e build-cuda/tbvenv ] || [ ! -d build/tbvenv ] || ln -s "$PWD/build/tbvenv" build-cuda/tbvenv
  exec ctest --test-dir build-cuda --output-on-failure -j"$(nproc)" --timeout 900 "$@"
fi
.devicebin/bin/normexp --version
.devicebin/bin/normexp_ml_tests --gtest_filter='-FashionMnist.*' --gtest_brief=1
NORMEXP_BIN=.devicebin/bin/normexp NORMEXP_TESTS=.devicebin/bin/normexp_ml_tests \
  bash tests/bench/h200_dry_run_test.sh "$PWD"
