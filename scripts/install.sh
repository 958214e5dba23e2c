#!/usr/bin/env bash
# Installs the Debian 12 packages tilenorm builds with (run as root). Packages already present are
# not touched, so a second run is fast and needs no network.
#   --with-peers   also install the benchmark peers (oneDNN with the OpenCL headers and loader its
#                  CMake config needs, libtorch) and hyperfine
#   --with-fuzz    also install clang 14 and its libFuzzer runtime (the `fuzz` preset)
#   --with-tidy    also install clang-tidy 14 (the `tidy` preset)
#   --with-format  also install clang-format 14 (the format check of .ci/run)
set -euo pipefail

packages=(build-essential cmake ninja-build pkg-config git
          libgtest-dev libgmock-dev libbenchmark-dev
          libhwy-dev libcli11-dev libfmt-dev nlohmann-json3-dev
          python3-dev pybind11-dev python3-torch python3-pytest python3-onnx)
for arg in "$@"; do
  case "$arg" in
    --with-peers) packages+=(libdnnl-dev ocl-icd-opencl-dev opencl-headers libtorch-dev hyperfine) ;;
    --with-fuzz) packages+=(clang-14 libclang-rt-14-dev) ;;
    --with-tidy) packages+=(clang-tidy) ;;
    --with-format) packages+=(clang-format) ;;
    *) echo "install.sh: unknown option '$arg' (--with-peers, --with-fuzz, --with-tidy," \
            "--with-format)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install.sh: all ${#packages[@]} packages present"
  exit 0
fi
echo "install.sh: installing ${missing[*]}"
sudo_cmd=()
[[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
