#!/bin/sh
# libcvnet against ONNX Runtime (onnxruntime-node, CPU provider) on the reference CNN exported by
# our ONNX writer: time per image at batch 1 and batch 64 on the FashionMNIST test set, same
# thread count, medians of RUNS passes, in one run. Usage: bench/compare_onnxruntime.sh [BUILD]
set -eu
build=${1:-build}
threads=${THREADS:-2}
runs=${RUNS:-5}
peers=$(pwd)/.peers/node_modules
if [ ! -d "$peers/onnxruntime-node" ] || ! command -v node >/dev/null 2>&1; then
    echo "(onnxruntime-node not installed in .peers/: tests/onnx/verify.sh installs it; no ONNX Runtime comparison)"
    exit 0
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# a briefly trained model: the timing does not depend on the weights
NODE_PATH=$peers "$build/examples/onnx_export" --limit 1280 --epochs 1 --threads "$threads" \
    --runs "$runs" --b1-images 1000 --out "$out" > "$out/log.txt"
echo "# ONNX Runtime vs libcvnet, reference CNN, $threads threads, medians of $runs passes"
sed -n '/^runtime /,/^largest/p' "$out/log.txt"
