#!/bin/sh
# AArch64 check of the NEON kernels from an x86 machine (Debian/Ubuntu).
#
#  1. compiles ops/simd_neon.c with the cross compiler, warnings as errors
#     (needs only: apt-get install gcc-aarch64-linux-gnu);
#  2. when the arm64 build dependencies are installed through multiarch
#       dpkg --add-architecture arm64 && apt-get update &&
#       apt-get install libopenblas-dev:arm64 zlib1g-dev:arm64 check:arm64
#     configures the whole tree with --host=aarch64-linux-gnu out of tree and
#     builds the library and tests/test_ops;
#  3. when qemu-aarch64 is also there (apt-get install qemu-user), runs
#     tests/test_ops under it: by default its "simd" case (the NEON kernels
#     against the scalar references), with PIXART_NEON_FULL=1 every case.
# Each step that cannot run says why and is skipped; a step that runs and
# fails makes the script fail.
#
# usage: tools/check-neon-build.sh [build-dir]   (default /tmp/pixart-neon-build)
set -eu

srcdir=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-/tmp/pixart-neon-build}
host=aarch64-linux-gnu
CC=${CC:-$host-gcc}
mkdir -p "$build"

if ! command -v "$CC" >/dev/null 2>&1; then
    echo "SKIP: $CC not found (apt-get install gcc-aarch64-linux-gnu)"
    exit 0
fi

echo "== 1. $CC: ops/simd_neon.c"
"$CC" -std=gnu11 -O2 -Wall -Wextra -Wno-unused-parameter -Werror -ffp-contract=off \
    -I"$srcdir" -I"$srcdir/ops" -c "$srcdir/ops/simd_neon.c" -o "$build/simd_neon.o"
echo "ok: NEON kernels compile for $host"

multiarch_pc=/usr/lib/$host/pkgconfig
if [ ! -f "$multiarch_pc/openblas.pc" ] || [ ! -f "$multiarch_pc/check.pc" ] || [ ! -f "$multiarch_pc/zlib.pc" ]; then
    echo "SKIP 2-3: arm64 OpenBLAS/zlib/check not installed in $multiarch_pc (see the header of $0)"
    exit 0
fi
if [ ! -x "$srcdir/configure" ]; then
    echo "SKIP 2-3: $srcdir/configure missing (run autoreconf -fi in the source tree)"
    exit 0
fi

echo "== 2. configure --host=$host and build libpixart + tests/test_ops in $build"
cd "$build"
# pkg-config: the target's .pc files only, and no host system paths
PKG_CONFIG_LIBDIR=$multiarch_pc:/usr/share/pkgconfig \
    "$srcdir/configure" -q --host=$host --disable-shared CC="$CC" >configure.log 2>&1 ||
    { tail -20 configure.log; exit 1; }
make -j"$(nproc)" libpixart.la tests/test_ops >make.log 2>&1 || { tail -30 make.log; exit 1; }
if grep -q 'warning:' make.log; then
    grep 'warning:' make.log
    echo "FAIL: warnings in the $host build"
    exit 1
fi
echo "ok: library and tests/test_ops build for $host"

if ! command -v qemu-aarch64 >/dev/null 2>&1; then
    echo "SKIP 3: qemu-aarch64 not found (apt-get install qemu-user)"
    exit 0
fi
# One thread: under emulation the spin-waiting worker threads of the arm64
# (pthreads) OpenBLAS make a multithreaded run crawl. The "simd" case takes a
# fraction of a second; every case (GEMM, attention and convolution through
# the arm64 OpenBLAS) a few minutes.
if [ "${PIXART_NEON_FULL:-0}" = 1 ]; then
    echo "== 3. tests/test_ops (all cases) under qemu-aarch64"
    case_env=
else
    echo "== 3. tests/test_ops, case simd (NEON kernels against the references), under qemu-aarch64"
    echo "   (PIXART_NEON_FULL=1 runs every case)"
    case_env="CK_RUN_CASE=simd"
fi
env $case_env PIXART_DATA="$srcdir/data" PIXART_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 CK_FORK=no \
    CK_TIMEOUT_MULTIPLIER=20 CK_VERBOSITY=verbose qemu-aarch64 -L /usr/$host ./tests/test_ops
echo "ok: tests/test_ops passes on $host under qemu-aarch64"
