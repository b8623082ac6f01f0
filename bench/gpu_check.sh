#!/bin/bash
# The GPU checklist of docs/benchmarks/gpu.md in one device call.
#
#   bench/gpu_check.sh prepare    here, on the project machine: first runs the three programs on
#                                 the CPU emulation of the CUDA backend (the harness, bench_cuda
#                                 --smoke, quickstart on 256 images: about 2 minutes), so that one
#                                 that fails does so before a GPU's time is spent on it; then
#                                 builds with CUDA=1 and gathers in .gpucheck/ (ignored; about
#                                 45 MB) the three binaries (stripped) and the shared libraries a
#                                 bare GPU machine may lack, all xz-packed, and FashionMNIST
#   bench/gpu_check.sh budget [S] on the GPU machine, in the repository root, with .gpucheck carried
#                                 (the device tool: carry [".gpucheck"], timeout_s S + 60): every
#                                 step below in the order that matters most, within S seconds
#                                 (default 480), each step cut to the time left and skipped when
#                                 under 20 s are left, so that the machine's start, this call and
#                                 a rerun fit a task's 15 minutes of device time
#   bench/gpu_check.sh budget S STEP...  the steps named, in that order, within S seconds
#   bench/gpu_check.sh STEP...    the steps named, each under its own limit
#
# Steps:
#   test       build-cuda/tests/test_cuda (every op on every GPU path against the CPU and PyTorch)
#   bench      build-cuda/bench/bench_cuda (kernels per path, training images/s, training from the
#              loader with and without the copy stream); bench2 runs it twice
#   rounds     bench_cuda on the large layer by Winograd F(2x2) (path 8), all images at once
#              against rounds of 6, 12, 24, 48 and 96 MiB, as tuning timed them (its tuning lines)
#   torch      bench/compare_torch_cuda.py: PyTorch on the same shapes and models
#   accuracy   the quickstart CNN for 3 epochs on FashionMNIST on the GPU, seeds 1 and 2, then seed
#              1 on our implicit GEMM forced onto each tensor-core kernel (the CPU's figures for
#              the same commands are in docs/benchmarks/gpu.md)
#   memcheck   compute-sanitizer --tool memcheck on test_cuda
#   racecheck  compute-sanitizer --tool racecheck on test_cuda
#              (one of test_cuda's cases: CK_RUN_CASE=ops|layers|training|zoo, or memcheck:CASE,
#              racecheck:CASE; budget runs memcheck on the whole harness, 27-31 s on an H200, and
#              racecheck on 'ops', 'layers' and 'training', 27 s and 103 s for the first two on
#              2fb3994; 'zoo', every zoo model on every path, took the rest of 241 s for the
#              whole harness, so budget leaves it out)
#   profile    Nsight Compute (ncu) on the implicit-GEMM convolution of bench_cuda's large layer
#              (256x64x32x32 -> 128): forward, backward data and backward filter, the variant
#              tuning keeps and the two tensor-core ones (past tuning's trials), then Winograd
#              F(2x2)'s forward kernels, with the sections that say what bounds them and the
#              cycles each stall reason costs
#
#   sass       the K loops of the GEMM kernels in machine code, instructions by kind
#              (cuobjdump -sass on bench_cuda, summed up by bench/sass_loops.py)
#
# Each step's output goes to runs/gpu-check as DATE-GPU-STEP.txt, and one line per step (exit
# status, seconds, the line that says how it went) to DATE-GPU-summary.txt. Under the device tool
# ($OUT set; it brings back 8 files at most) they go to a folder of their own instead, packed into
# $OUT/gpu-check.tgz after each step (so a call cut short still brings back what ran), with the
# summary beside it as a plain file.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1

if [ "${1:-}" = prepare ]; then
    set -e
    make --no-print-directory build/tests/test_cuda_emulated build/bench/bench_cuda_emulated \
        build/cuda-emu/examples/quickstart
    CVN_TEST_DATA=tests/ref build/tests/test_cuda_emulated | tail -n 1
    build/bench/bench_cuda_emulated --smoke >/dev/null
    build/cuda-emu/examples/quickstart --device cuda --limit 256 --epochs 1 \
        --out runs/gpucheck-emulated | tail -n 1
    echo "gpu_check: the harness, bench_cuda and quickstart run on the CPU emulation"
    make --no-print-directory CUDA=1 all build-cuda/tests/test_cuda build-cuda/bench/bench_cuda \
        build-cuda/examples/quickstart
    rm -rf .gpucheck
    mkdir -p .gpucheck/bin .gpucheck/lib .gpucheck/data
    # stripped (their debug sections would take 12 MB of the device tool's 64 MiB) and
    # xz-compressed (each holds every kernel for sm_80, sm_90 and PTX: 14 MB, 2.7 MB packed)
    for prog in build-cuda/tests/test_cuda build-cuda/bench/bench_cuda build-cuda/examples/quickstart; do
        strip -o ".gpucheck/bin/$(basename "$prog")" "$prog"
        xz -T2 -6 ".gpucheck/bin/$(basename "$prog")"
    done
    # every library of the binaries but glibc's, GCC's and CUDA's (the GPU machine's image need not
    # have OpenBLAS, Check's subunit or stb), xz-compressed: OpenBLAS alone is 36 MB
    ldd build-cuda/tests/test_cuda build-cuda/bench/bench_cuda build-cuda/examples/quickstart |
        awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | sort -u |
        while read -r name path; do
            case $name in
            libc.so* | libm.so* | libdl.so* | libpthread.so* | librt.so* | libcu* | libstdc++* | \
                libgcc_s*) ;;
            *) xz -T2 -6 -c "$path" > ".gpucheck/lib/$name.xz" ;;
            esac
        done
    cp -L /usr/share/datasets/fashion-mnist/*-ubyte* .gpucheck/data/
    echo "gpu_check: .gpucheck is $(du -sh .gpucheck | cut -f1); carry it to the GPU machine"
    exit 0
fi

if [ -n "${OUT:-}" ]; then
    out=$(mktemp -d)
else
    out=runs/gpu-check
fi
mkdir -p "$out"
# pack: the steps' files so far, into $OUT (under the device tool only)
pack() {
    [ -n "${OUT:-}" ] || return 0
    tar czf "$OUT/gpu-check.tgz" -C "$out" . && cp "$summary" "$OUT/"
}
bin=.gpucheck/bin
for packed in $bin/*.xz; do # the binaries, unpacked once (Python's lzma where xz is missing)
    [ -e "$packed" ] && [ ! -e "${packed%.xz}" ] || continue
    xz -dc "$packed" > "${packed%.xz}" 2>/dev/null ||
        python3 -c 'import lzma, sys; sys.stdout.buffer.write(lzma.open(sys.argv[1]).read())' \
            "$packed" > "${packed%.xz}"
    chmod +x "${packed%.xz}"
done
if [ ! -x $bin/test_cuda ]; then
    echo "gpu_check: no $bin/test_cuda: run bench/gpu_check.sh prepare, then carry .gpucheck" >&2
    exit 2
fi
export LD_LIBRARY_PATH="$root/.gpucheck/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# the packed libraries that this machine lacks, unpacked (Python's lzma where xz is missing); in
# passes, since ldd names a library's own dependencies only once that library is found
for pass in 1 2 3; do
    unpacked=0
    for packed in .gpucheck/lib/*.xz; do
        name=$(basename "${packed%.xz}")
        [ -e "$packed" ] && [ ! -e "${packed%.xz}" ] || continue
        ldd $bin/* 2>/dev/null | grep -q "^[[:space:]]*$name => not found" || continue
        xz -dc "$packed" > "${packed%.xz}" 2>/dev/null ||
            python3 -c 'import lzma, sys; sys.stdout.buffer.write(lzma.open(sys.argv[1]).read())' \
                "$packed" > "${packed%.xz}"
        echo "gpu_check: unpacked $name (pass $pass)"
        unpacked=1
    done
    [ $unpacked = 1 ] || break
done
# CUDA's libraries where /usr/local/cuda lacks one (cuDNN, say): the copies PyTorch's wheels bring
if ldd $bin/test_cuda 2>/dev/null | grep -q 'lib\(cudnn\|cublas\|cudart\).*not found'; then
    for d in /opt/torch/.venv/lib/python3*/site-packages/nvidia/*/lib; do
        [ -d "$d" ] && LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"
    done
fi
export CVN_TEST_DATA=${CVN_TEST_DATA:-tests/ref}
export PATH="$PATH:/usr/local/cuda/bin"
command -v ncu >/dev/null 2>&1 || for d in /opt/nvidia/nsight-compute/*/; do PATH="$PATH:$d"; done
if [ "${1:-}" = _profile ]; then # a step's body: ncu on each convolution mode's kernels (forward
    # 1, backward data 2, backward filter 3) of the large layer, as tuned (path 3) and forced onto
    # tensor cores (path 6, fetching a step ahead into registers; path 7, pipelined), in bench's
    # timed runs only (--profile-from-start off: cvn_cuda_profile starts the capture past warm-up
    # and tuning's trials; on path 3, where tuning picks Winograd for a product, no launch of its
    # mode comes, and ncu says none was profiled). Then Winograd F(2x2) (path 8): the forward's
    # four kernels (filter and input transforms, the batched product, mode 4, and the output
    # transform) and the filter gradient's dy transform, product (mode 4 with B read transposed)
    # and the transform into dw (in rounds of images, the first two come again before the last).
    # With the warp state section, what each stall reason costs per instruction issued (the
    # section's text names only the top one); should ncu not know one of those metrics, the run
    # is repeated without them, as are the rest
    stalls=
    for r in long_scoreboard short_scoreboard wait barrier mio_throttle lg_throttle \
        math_pipe_throttle not_selected dispatch_stall no_instruction branch_resolving; do
        stalls="$stalls${stalls:+,}smsp__average_warps_issue_stalled_${r}_per_issue_active.ratio"
    done
    profile() { # PATH KERNEL-REGEX COUNT
        for metrics in ${stalls:+"--metrics $stalls"} ""; do
            # ncu's demangled names read k_tiled_gemm<(int)1, (bool)0, ...>
            ncu --clock-control none --kernel-name-base demangled --profile-from-start off \
                -k "regex:$2" --launch-count "$3" \
                --section SpeedOfLight --section Occupancy --section LaunchStats \
                --section WarpStateStats --section SchedulerStats --section InstructionStats \
                --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis $metrics \
                $bin/bench_cuda --only "conv 256" --path "$1" && return 0
            [ -n "$metrics" ] || exit 1
            echo "## again without the stall metrics, and from here on"
            stalls=
        done
    }
    for path in 3 6 7; do
        for mode in 1 2 3; do
            echo "## path $path, k_tiled_gemm / k_mma_gemm mode $mode"
            profile $path "k_(tiled|mma)_gemm<.int.$mode," 2
        done
    done
    echo "## path 8, Winograd F(2x2) forward: k_wino_filter, k_wino_input, k_*_gemm mode 4, k_wino_output"
    profile 8 "k_wino_(filter|input|output)<|k_(tiled|mma)_gemm<.int.4, .bool.0, .bool.0" 4
    echo "## path 8, Winograd F(2x2) filter gradient: k_wino_dy, k_*_gemm mode 4 transposed B, k_wino_filter_grad"
    profile 8 "k_wino_(dy|filter_grad)<|k_(tiled|mma)_gemm<.int.4, .bool.0, .bool.1" 3
    exit 0
fi
if [ "${1:-}" = _sass ]; then # a step's body: the GEMM kernels' K loops in bench_cuda's sm_90 code
    set -o pipefail
    cuobjdump -sass -arch sm_90 $bin/bench_cuda | python3 bench/sass_loops.py
    exit
fi
if [ "${1:-}" = _rounds ]; then # a step's body: Winograd F(2x2) on the large layer (path 8), all
    # images at once against rounds of 6 to 96 MiB, each as tuning timed it (bench's tuning lines)
    for mib in 6 12 24 48 96; do
        echo "## rounds of $mib MiB"
        $bin/bench_cuda --only "conv 256" --path 8 --wino-round $mib || exit 1
    done
    exit 0
fi
if [ "${1:-}" = _accuracy ]; then # a step's body, run by the script itself under timeout
    for seed in 1 2; do
        $bin/quickstart --device cuda --data .gpucheck/data --epochs 3 --limit 0 --seed "$seed" ||
            exit 1
    done
    # and seed 1 on our implicit GEMM forced onto tensor cores (3xTF32) throughout: each kernel
    for mma in 1 2; do
        echo "## seed 1, CVN_CUDA_CONV=native CVN_CUDA_MMA=$mma"
        CVN_CUDA_CONV=native CVN_CUDA_MMA=$mma $bin/quickstart --device cuda --data .gpucheck/data \
            --epochs 3 --limit 0 --seed 1 || exit 1
    done
    exit 0
fi
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr -c 'A-Za-z0-9\n' '-')
gpu=${gpu:-no-gpu}
stamp="$(date -u +%Y-%m-%d)-$gpu"
summary="$out/$stamp-summary.txt"
torch_py=${TORCH_PYTHON:-}
for py in /opt/torch/.venv/bin/python3 python3; do
    [ -n "$torch_py" ] && break
    if "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
        torch_py=$py
    fi
done
{
    echo "# $(date -u '+%Y-%m-%d %H:%M UTC') on $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
    missing=$(ldd $bin/test_cuda 2>/dev/null | grep "not found" | awk '{ printf "%s ", $1 }')
    [ -n "$missing" ] && echo "# libraries not found: $missing"
} >> "$summary"

# run NAME LIMIT_S PATTERN COMMAND...: the command's output to a file, a summary line from PATTERN;
# in budget mode the limit is cut to the time left, and the step skipped when under 20 s are left
deadline=
run() {
    local name=$1 limit=$2 pattern=$3
    shift 3
    if [ -n "$deadline" ]; then
        local left=$((deadline - $(date +%s)))
        if [ "$left" -lt 20 ]; then
            printf '%-10s skipped: %ss of the budget left\n' "$name" "$left" | tee -a "$summary"
            return
        fi
        [ "$left" -lt "$limit" ] && limit=$left
    fi
    local file="$out/$stamp-$name.txt" t0 rc
    t0=$(date +%s)
    timeout "$limit" "$@" > "$file" 2>&1
    rc=$?
    local line
    line=$(grep -E "$pattern" "$file" | tail -1)
    [ -n "$line" ] || line=$(tail -1 "$file") # none: how it ended
    [ "$rc" = 124 ] && line="timed out after ${limit}s: $line"
    printf '%-10s rc=%-3s %4ss  %s\n' "$name" "$rc" "$(($(date +%s) - t0))" "$line" |
        tee -a "$summary"
    pack
}

# sanitize TOOL LIMIT_S PATTERN [CASE]: test_cuda under compute-sanitizer, all of it or one case;
# API errors are not reported (test_out_of_device_memory asks cudaMalloc for 4 TiB on purpose, and
# the tests check every status the backend turns an API error into)
sanitize_case=${CK_RUN_CASE:-}
sanitize() {
    local case=${4:-$sanitize_case}
    run "$1${case:+-$case}" "$2" "$3" env ${case:+CK_RUN_CASE=$case} compute-sanitizer \
        --error-exitcode 1 --report-api-errors no --tool "$1" $bin/test_cuda
}

[ $# -gt 0 ] || set -- budget
if [ "$1" = budget ]; then
    deadline=$(($(date +%s) + ${2:-480}))
    shift $(($# < 2 ? $# : 2))
    [ $# -gt 0 ] || set -- test bench rounds torch accuracy memcheck racecheck:ops \
        racecheck:layers racecheck:training sass
fi
unset CK_RUN_CASE # test_cuda's own step runs every case
for step in "$@"; do
    case_of_step= # memcheck:layers -> layers
    [ "${step#*:}" != "$step" ] && case_of_step=${step#*:}
    case $step in
    test) run test 300 'Checks:' $bin/test_cuda ;;
    memcheck | memcheck:*) sanitize memcheck 590 'ERROR SUMMARY|Checks:' "$case_of_step" ;;
    racecheck | racecheck:*)
        sanitize racecheck 590 'hazards|RACECHECK SUMMARY|Checks:' "$case_of_step"
        ;;
    bench) run bench 200 'images/s|zoo' $bin/bench_cuda .gpucheck/data ;;
    bench2) run bench 400 'images/s|zoo' \
        sh -c "$bin/bench_cuda .gpucheck/data && $bin/bench_cuda .gpucheck/data" ;;
    torch)
        if [ -n "$torch_py" ]; then
            run torch 300 'images/s|resnet' "$torch_py" bench/compare_torch_cuda.py
        else
            echo "torch      skipped: no PyTorch with CUDA (set TORCH_PYTHON)" | tee -a "$summary"
            pack
        fi
        ;;
    accuracy) run accuracy 300 'accuracy' "$0" _accuracy ;;
    profile) run profile 300 'Compute \(SM\) Throughput' "$0" _profile ;;
    rounds) run rounds 120 'tuning bwd filter' "$0" _rounds ;;
    sass) run sass 120 'mma +mode 1' "$0" _sass ;;
    *)
        echo "gpu_check: unknown step '$step'" >&2
        exit 2
        ;;
    esac
done
