#!/usr/bin/env bash
# Fetches the Debian packages that the CUDA test and benchmark build needs and unpacks them into
# bench/gpu/deps (git-ignored), for a GPU machine that has CMake and nvcc but no network and maybe
# not these packages. Run it here, where Debian's package registry is reachable (amd64 only):
#
#   bench/gpu/fetch_deps.sh        # then carry bench/gpu/deps with the source tree
#
# run.sh puts the prefix first in CMake's, pkg-config's and the shell's search paths, so the
# build uses these packages, ninja and pkgconf even where the machine has its own. CMake itself is
# not carried: Debian's build needs about 59 MB of shared libraries (ICU alone is 31 MB).
set -euo pipefail
cd "$(dirname "$0")"
DEPS=$PWD/deps
[ "$(dpkg --print-architecture)" = amd64 ] || { echo "fetch_deps.sh: amd64 only" >&2; exit 1; }

# What CMakeLists.txt finds with run.sh's options (peers off): fmt, nlohmann_json, CLI11,
# GTest (its config references gmock's libraries too), Google Benchmark (bench/ owns the GPU
# benchmark; its config checks that the shared library exists), libhwy through pkg-config; plus
# ninja for the presets' generator and pkgconf for pkg_check_modules.
pkgs=(libfmt-dev libfmt9 nlohmann-json3-dev libcli11-dev libhwy-dev libhwy1 libgtest-dev
      libgmock-dev libbenchmark-dev libbenchmark1debian pkgconf-bin libpkgconf3 ninja-build)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get -o APT::Sandbox::User=root download "${pkgs[@]}" >/dev/null) ||
  { echo "fetch_deps.sh: apt-get download failed (run apt-get update first?)" >&2; exit 1; }

rm -rf "$DEPS"
mkdir -p "$DEPS/bin"
for f in "$tmp"/*.deb; do
  dpkg-deb -x "$f" "$DEPS"
  # shellcheck disable=SC2016  # dpkg-deb expands the ${...} fields
  dpkg-deb -W --showformat='${Package} ${Version}\n' "$f" >>"$DEPS/MANIFEST"
done
rm -rf "$DEPS/usr/share/doc" "$DEPS/usr/share/man" "$DEPS/usr/share/lintian"

# .pc files name /usr; make them relative to their own folder so the prefix can move.
while IFS= read -r pc; do
  rel=${pc#"$DEPS"/}
  up=$(dirname "$rel" | sed 's|[^/]*|..|g')
  sed -i -E "s#=/usr(/|\$)#=\${pcfiledir}/$up/usr\1#" "$pc"
done < <(find "$DEPS" -name '*.pc')

ln -s ../usr/bin/ninja "$DEPS/bin/ninja"
cat >"$DEPS/bin/pkg-config" <<'EOF'
#!/bin/sh
# pkgconf from Debian's pkgconf-bin, with its library beside it.
d=$(cd "$(dirname "$0")/.." && pwd)
LD_LIBRARY_PATH=$d/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
  exec "$d/usr/bin/pkgconf" "$@"
EOF
chmod +x "$DEPS/bin/pkg-config"

cat "$DEPS/MANIFEST"
echo "bench/gpu/deps: $(du -sh "$DEPS" | cut -f1) in $(find "$DEPS" -type f | wc -l) files" \
  "(carry limit: 64 MiB with the source tree)"
