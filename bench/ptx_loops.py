#!/usr/bin/env python3
"""The K loop of each tiled-GEMM kernel instance (kernels/cuda/tiled_gemm.cuh) in PTX
instructions per step of 8: FMAs (k_tiled_gemm) or tensor-core mma (k_mma_gemm), global loads
(cp.async copies in the pipelined one) and the rest. A proxy for speed where no GPU is lent
(the GPU's own count is Nsight Compute's, bench/gpu_check.sh profile); needs only nvcc.

    bench/ptx_loops.py [--root DIR] [--runs-only] [--common-path]

--root DIR   count another checkout (a worktree of an older commit, say); default this one
--runs-only  with the tap-major loads' element-by-element fallback taken out, as the loop runs
             where the channel count divides into a thread's run
--common-path  with the TF32 split's full form taken out of the tensor-core kernels, as the
             loop runs where no element is inf, NaN or 2^127 and up (tf32_special)

Each line: the kernel (tiled: FP32, mma: 3xTF32, async: 3xTF32 pipelined), mode (0 matrix, 1 forward, 2 backward data, 3 backward filter), ta / tb (for a
convolution tb is the tap-major K order), the tile, then the counts of the loop from its head to
its back edge, both sides of each branch counted."""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

FALLBACK = "            if (run) {\n"  # tile_loader::fetch's and ::each's branches to the run
RUNS_ONLY = "            if (true) {\n"
SPECIAL = "    if (special)\n"  # split_tf32_n's branch to the full split
NO_SPECIAL = "    if (false && special)\n"
INSTANCE = re.compile(r"_Z\d+k_(tiled|mma)_gemmILi(\d)ELb(\d)ELb(\d)ELi(\d+)ELi(\d+)E(?:Lb(\d)E)?")
MATH = ("fma.rn.f32", "mma.sync")
LOADS = ("ld.global", "cp.async.ca.shared.global")
BRANCH = re.compile(r"^(@%p\d+ )?bra(\.uni)?\s+(\$L__BB\d+_\d+);")


def ptx(root, runs_only, common_path):
    nvcc = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
    with tempfile.TemporaryDirectory() as tmp:
        includes = []
        if runs_only or common_path:
            src = open(os.path.join(root, "kernels/cuda/tiled_gemm.cuh")).read()
            for on, old, new, where in ((runs_only, FALLBACK, RUNS_ONLY, "tile_loader"),
                                        (common_path, SPECIAL, NO_SPECIAL, "split_tf32_n")):
                if not on:
                    continue
                if src.count(old) != (2 if old == FALLBACK else 1):
                    sys.exit("ptx_loops: the branch in %s is not where expected" % where)
                src = src.replace(old, new)
            os.makedirs(os.path.join(tmp, "cuda"))
            with open(os.path.join(tmp, "cuda/tiled_gemm.cuh"), "w") as f:
                f.write(src)
            includes.append("-I" + tmp)  # found before kernels/cuda/tiled_gemm.cuh
        out = os.path.join(tmp, "backend.ptx")
        subprocess.run([nvcc, "-O2", "-std=c++17", *includes, "-I" + os.path.join(root, "lib"),
                        "-I" + os.path.join(root, "kernels"), "-DCVN_WITH_CUDA", "-gencode",
                        "arch=compute_90,code=compute_90", "-ptx",
                        os.path.join(root, "kernels/cuda/backend_cuda.cu"), "-o", out], check=True)
        return open(out).read()


def loops(text):
    for entry in re.split(r"\n\.visible \.entry |\n\.entry ", text)[1:]:
        m = INSTANCE.match(entry.split("(")[0])
        if not m:
            continue
        lines = [l.strip() for l in entry.split("\n")]
        labels = {l[:-1]: i for i, l in enumerate(lines) if re.match(r"^\$L__BB\d+_\d+:$", l)}
        fmas = [i for i, l in enumerate(lines) if l.startswith(MATH)]
        if not fmas:
            continue
        head = tail = None  # the first branch after the FMAs back to a label before them
        for i in range(fmas[0], len(lines)):
            b = BRANCH.match(lines[i])
            if b and labels.get(b.group(3), len(lines)) < fmas[0]:
                head, tail = labels[b.group(3)], i
                break
        if head is None:
            continue
        body = [l for l in lines[head:tail + 1]
                if l and l[0] not in "${}" and not l.startswith(("//", ".pragma"))]
        fma = sum(l.startswith(MATH) for l in body)
        loads = sum(l.startswith(LOADS) for l in body)
        yield m.groups(), len(body), fma, loads


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(__file__), ".."))
    ap.add_argument("--runs-only", action="store_true")
    ap.add_argument("--common-path", action="store_true")
    a = ap.parse_args()
    for (kernel, mode, ta, tb, bm, bn, asy), n, math, loads in loops(ptx(a.root, a.runs_only, a.common_path)):
        if asy == "1":
            kernel = "async"
        print("%-5s mode %s ta%s tb%s %sx%s: %4d PTX instructions, %3d %s, %2d global loads, %3d other"
              % (kernel, mode, ta, tb, bm, bn, n, math, "fma" if kernel == "tiled" else "mma",
                 loads, n - math))


if __name__ == "__main__":
    main()
