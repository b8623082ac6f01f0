#!/bin/sh
# Installs the Debian packages libcvnet needs to build, test and run its examples.
# Idempotent: it installs only what is missing and says what it installs.
# Usage: scripts/install-deps.sh [--peers]   (--peers adds PyTorch, for reference values and benchmarks)
set -eu

pkgs="build-essential pkg-config libopenblas-dev libopenblas-openmp-dev check libstb-dev libsqlite3-dev zlib1g-dev dataset-fashion-mnist"
if [ "${1:-}" = "--peers" ]; then
    pkgs="$pkgs python3-torch python3-numpy"
fi

missing=""
for p in $pkgs; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    echo "install-deps: all dependencies present"
    exit 0
fi

echo "install-deps: installing$missing"
if [ "$(id -u)" != 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
