#!/usr/bin/env python3
"""The K loop of each tiled-GEMM kernel instance (kernels/cuda/tiled_gemm.cuh) in the machine
code the GPU runs: instructions by kind, from `cuobjdump -sass` of a CUDA binary. The PTX counts
of bench/ptx_loops.py miss what ptxas adds (register moves, spills); these do not.

    cuobjdump -sass -arch sm_90 BINARY | bench/sass_loops.py [--list NAME]

Needs cuobjdump, which the GPU machine has and the project machine lacks: `bench/gpu_check.sh
sass` runs it there. Each line: the kernel (tiled: FP32, mma: 3xTF32, async: 3xTF32 pipelined), mode (0 matrix, 1 forward,
2 backward data, 3 backward filter), ta / tb, the tile, then the loop's instructions (both sides
of each branch counted, as in the file): math (FFMA or HMMA), register moves, shared loads and
stores, global loads, cp.async copies (LDGSTS), local (spill) loads and stores. --list NAME prints the loop of the instance
whose mangled name contains NAME."""
import argparse
import collections
import re
import sys

INSTANCE = re.compile(r"_Z\d+k_(tiled|mma)_gemmILi(\d)ELb(\d)ELb(\d)ELi(\d+)ELi(\d+)E(?:Lb(\d)E)?")
LINE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")
BRANCH = re.compile(r"\bBRA\b.*?0x([0-9a-f]+)")
KINDS = (("math", ("FFMA", "HMMA")), ("moves", ("MOV", "IMAD.MOV")), ("lds", ("LDS",)),
         ("sts", ("STS",)), ("ldg", ("LDG.",)), ("ldgsts", ("LDGSTS",)), ("local", ("LDL", "STL")))


def functions(text):
    """(mangled name, [(address, instruction)]) for each function of the dump"""
    for part in text.split("Function : ")[1:]:
        name = part.split(None, 1)[0]
        code = [(int(a, 16), op) for a, op in LINE.findall(part)]
        yield name, code


def k_loop(code):
    """the backward branch's span that holds the most math: the K loop"""
    best, best_math = None, 0
    for addr, op in code:
        b = BRANCH.search(op)
        if not b or int(b.group(1), 16) >= addr:
            continue
        body = [o for a, o in code if int(b.group(1), 16) <= a <= addr]
        math = sum(opcode(o).startswith(KINDS[0][1]) for o in body)
        if math > best_math:
            best, best_math = body, math
    return best


def opcode(op):
    return re.sub(r"^@!?U?P[T\d]+\s+", "", op).split()[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--list", metavar="NAME")
    a = ap.parse_args()
    for name, code in functions(sys.stdin.read()):
        m = INSTANCE.match(name)
        body = k_loop(code) if m else None
        if not body:
            continue
        if a.list:
            if a.list in name:
                print("# " + name)
                print("\n".join(body))
            continue
        counts = collections.Counter()
        for op in body:
            for kind, prefixes in KINDS:
                counts[kind] += opcode(op).startswith(prefixes)
        kernel, mode, ta, tb, bm, bn, asy = m.groups()
        if asy == "1":
            kernel = "async"
        print("%-5s mode %s ta%s tb%s %sx%s: %4d SASS instructions, %s"
              % (kernel, mode, ta, tb, bm, bn, len(body),
                 ", ".join("%3d %s" % (counts[k], k) for k, _ in KINDS)))


if __name__ == "__main__":
    main()
