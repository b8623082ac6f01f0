#!/bin/sh
# Checks the models test_onnx wrote into DIR with onnx.checker (Debian python3-onnx) and ONNX
# Runtime (npm onnxruntime-node, installed into .peers/). Installs what is missing; skips, saying
# so, only when a registry cannot be reached. Usage: tests/onnx/verify.sh DIR
set -u
dir=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
peers=$root/.peers
ORT_VERSION=1.30.0
[ -f "$dir/models.txt" ] || { echo "onnx: no $dir/models.txt (test_onnx did not write models)"; exit 1; }
status=0

if ! /usr/bin/python3 -c 'import onnx' 2>/dev/null; then
    echo "onnx: installing python3-onnx"
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y -q python3-onnx >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q python3-onnx >/dev/null 2>&1; }
    fi
fi
if /usr/bin/python3 -c 'import onnx' 2>/dev/null; then
    /usr/bin/python3 "$root/tests/onnx/check_models.py" "$dir" || status=1
else
    echo "onnx: SKIPPED onnx.checker: python3-onnx could not be installed (no Debian registry?)"
fi

if ! command -v node >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get install -y -q nodejs npm >/dev/null 2>&1
fi
if [ ! -d "$peers/node_modules/onnxruntime-node" ] && command -v npm >/dev/null 2>&1; then
    echo "onnx: installing onnxruntime-node@$ORT_VERSION into .peers/"
    mkdir -p "$peers"
    # its install script fetches GPU files from a host that is not reachable; the CPU build is bundled
    (cd "$peers" && ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund --silent \
        "onnxruntime-node@$ORT_VERSION" >/dev/null 2>&1)
fi
if [ -d "$peers/node_modules/onnxruntime-node" ]; then
    NODE_PATH=$peers/node_modules node "$root/tests/onnx/compare_ort.js" "$dir" || status=1
else
    echo "onnx: SKIPPED ONNX Runtime comparison: onnxruntime-node could not be installed (no npm registry?)"
fi
exit $status
