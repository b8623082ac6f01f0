#!/usr/bin/env python3
"""The K loop of each tiled-GEMM kernel instance (kernels/cuda/tiled_gemm.cuh) in PTX
instructions per step of 8: FMAs (k_tiled_gemm) or tensor-core mma (k_mma_gemm), global loads
(cp.async copies in the pipelined one) and the rest. A proxy for speed where no GPU is lent
(the GPU's own count is Nsight Compute's, bench/gpu_check.sh profile); needs only nvcc.

    bench/ptx_loops.py [--root DIR] [--runs-only] [--common-path] [--ptxas [--one-block]]

--root DIR   count another checkout (a worktree of an older commit, say); default this one
--runs-only  with the tap-major loads' element-by-element fallback taken out, as the loop runs
             where the channel count divides into a thread's run
--common-path  with the TF32 split's full form taken out of the tensor-core kernels, as the
             loop runs where no element is inf, NaN or 2^127 and up (tf32_special)
--ptxas      also each instance's registers and spilled bytes (stores) from ptxas for sm_90
--one-block  with launch bounds of one block per SM instead of two, so that ptxas is not held to
             128 registers: the registers each kernel would take if free

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

FALLBACK = "            if (run) {\n"  # tile_loader's branches to the run (fetch, each)
RUNS_ONLY = "            if (true) {\n"
SPECIAL = "    if (special)\n"  # split_tf32_n's branch to the full split
NO_SPECIAL = "    if (false && special)\n"
TWO_BLOCKS = "__launch_bounds__(GEMM_THREADS, 2)"
ONE_BLOCK = "__launch_bounds__(GEMM_THREADS, 1)"
INSTANCE = re.compile(r"_Z\d+k_(tiled|mma)_gemmILi(\d)ELb(\d)ELb(\d)ELi(\d+)ELi(\d+)E(?:Lb(\d)E)?")
MATH = ("fma.rn.f32", "mma.sync")
LOADS = ("ld.global", "cp.async.ca.shared.global")
BRANCH = re.compile(r"^(@%p\d+ )?bra(\.uni)?\s+(\$L__BB\d+_\d+);")


def compile_(root, runs_only, common_path, ptxas, one_block):
    """the PTX text, and {mangled name: (registers, spilled bytes)} from ptxas when asked"""
    nvcc = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
    with tempfile.TemporaryDirectory() as tmp:
        includes = []
        if runs_only or common_path or one_block:
            src = open(os.path.join(root, "kernels/cuda/tiled_gemm.cuh")).read()
            for on, old, new, where in ((runs_only, FALLBACK, RUNS_ONLY, "tile_loader"),
                                        (common_path, SPECIAL, NO_SPECIAL, "split_tf32_n"),
                                        (one_block, TWO_BLOCKS, ONE_BLOCK, "the kernels")):
                if not on:
                    continue
                if old not in src:
                    sys.exit("ptx_loops: the text in %s is not where expected" % where)
                src = src.replace(old, new)
            os.makedirs(os.path.join(tmp, "cuda"))
            with open(os.path.join(tmp, "cuda/tiled_gemm.cuh"), "w") as f:
                f.write(src)
            includes.append("-I" + tmp)  # found before kernels/cuda/tiled_gemm.cuh
        cmd = [nvcc, "-O2", "-std=c++17", *includes, "-I" + os.path.join(root, "lib"),
               "-I" + os.path.join(root, "kernels"), "-DCVN_WITH_CUDA",
               os.path.join(root, "kernels/cuda/backend_cuda.cu")]
        out = os.path.join(tmp, "backend.ptx")
        subprocess.run(cmd + ["-gencode", "arch=compute_90,code=compute_90", "-ptx", "-o", out],
                       check=True)
        regs = {}
        if ptxas:
            r = subprocess.run(cmd + ["-gencode", "arch=compute_90,code=sm_90", "-Xptxas", "-v",
                                      "-c", "-o", os.path.join(tmp, "backend.o")],
                               check=True, capture_output=True, text=True)
            name = spill = None
            for line in r.stderr.splitlines():
                m = re.search(r"Compiling entry function '(\w+)'", line)
                if m:
                    name = m.group(1)
                m = re.search(r"(\d+) bytes spill stores", line)
                if m:
                    spill = int(m.group(1))
                m = re.search(r"Used (\d+) registers", line)
                if m and name:
                    regs[name] = (int(m.group(1)), spill)
        return open(out).read(), regs


def loops(text):
    for entry in re.split(r"\n\.visible \.entry |\n\.entry ", text)[1:]:
        name = entry.split("(")[0].strip()
        m = INSTANCE.match(name)
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
        yield name, m.groups(), len(body), fma, loads


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(__file__), ".."))
    ap.add_argument("--runs-only", action="store_true")
    ap.add_argument("--common-path", action="store_true")
    ap.add_argument("--ptxas", action="store_true")
    ap.add_argument("--one-block", action="store_true")
    a = ap.parse_args()
    text, regs = compile_(a.root, a.runs_only, a.common_path, a.ptxas, a.one_block)
    for name, (kernel, mode, ta, tb, bm, bn, asy), n, math, loads in loops(text):
        if asy == "1":
            kernel = "async"
        line = ("%-5s mode %s ta%s tb%s %sx%s: %4d PTX instructions, %3d %s, %2d global loads, %3d other"
                % (kernel, mode, ta, tb, bm, bn, n, math, "fma" if kernel == "tiled" else "mma",
                   loads, n - math))
        if a.ptxas:
            line += "; %3d registers, %3d bytes spilled" % regs.get(name, (-1, -1))
        print(line)


if __name__ == "__main__":
    main()
