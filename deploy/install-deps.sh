#!/bin/sh
# Installs the Debian 12 packages alignd needs to build, run and test.
# Idempotent: prints nothing and changes nothing when all are present.
# Usage: deploy/install-deps.sh [--test]   (--test adds test-only tools)
set -eu

BUILD_PKGS="build-essential cmake pkg-config \
libmicrohttpd-dev libjansson-dev libuv1-dev libopenblas-dev libsqlite3-dev \
libinih-dev libpcre2-dev libutf8proc-dev libpng-dev libjpeg62-turbo-dev \
libpq-dev libsystemd-dev"
TEST_PKGS="libcmocka-dev curl python3 python3-yaml systemd clang libclang-rt-14-dev chromium \
postgresql"

want="$BUILD_PKGS"
[ "${1:-}" = "--test" ] && want="$want $TEST_PKGS"

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
# Node.js may come from elsewhere (NodeSource bundles npm and conflicts with
# Debian's npm package): ask for it only when the commands are absent.
if [ "${1:-}" = "--test" ]; then
    command -v node >/dev/null 2>&1 || missing="$missing nodejs"
    command -v npm >/dev/null 2>&1 || missing="$missing npm"
fi
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# Update the index only when a package cannot be found in the current one.
if ! $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1; then
    $SUDO apt-get update -qq >/dev/null
    $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
