#!/bin/sh
# make bench: libcvnet's kernel benchmark, then PyTorch on the same ops in the same run when
# Debian's python3-torch is installed (scripts/install-deps.sh --peers), and the ratio per line
# (PyTorch time / libcvnet time: above 1 means libcvnet is faster). With CUDA=1 it also runs the
# GPU benchmark and, where a CUDA PyTorch is found ($TORCH_PYTHON), its GPU peer script.
set -eu
build=${1:-build}
cuda=${2:-0}
threads=${THREADS:-2}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$build/bench/bench_ops" --threads "$threads" | tee "$out/cvn.txt"
echo
"$build/bench/bench_conv" --threads "$threads"
echo
"$build/bench/bench_hpo"
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
    echo
    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/compare_torch.py --threads "$threads" > "$out/torch.txt"
    echo "# ratio PyTorch / libcvnet (time; > 1: libcvnet faster), $(head -1 "$out/torch.txt" | cut -c3-)"
    awk -F'  +' 'NR == FNR { if ($0 !~ /^#/) t[$1] = $2 + 0; next }
                 /^#/ { next }
                 ($1 in t) { printf "%-34s libcvnet %8.3f ms  torch %8.3f ms  ratio %5.2f\n", $1, $2 + 0, t[$1], t[$1] / ($2 + 0) }' \
        "$out/torch.txt" "$out/cvn.txt"
    echo
    /usr/bin/python3 bench/compare_pytorch.py --threads "$threads" --bin "$build/bench/bench_train_cnn"
else
    echo "(python3-torch not installed: no PyTorch comparison; scripts/install-deps.sh --peers adds it)"
    "$build/bench/bench_train_cnn" --threads "$threads"
fi
echo
"$build/bench/bench_loader" --threads "$threads"
if [ -d data/cifar10 ]; then "$build/bench/bench_loader" --threads "$threads" --data cifar10:data/cifar10 --steps 30; fi
echo
THREADS=$threads bench/compare_onnxruntime.sh "$build"
if [ "$cuda" = 1 ]; then
    echo
    "$build/bench/bench_cuda"
    py=${TORCH_PYTHON:-/usr/bin/python3}
    if "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
        "$py" bench/compare_torch_cuda.py
    else
        echo "(no CUDA PyTorch at $py: set TORCH_PYTHON to compare on the GPU)"
    fi
fi
