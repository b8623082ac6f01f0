#!/usr/bin/python3
"""Times the ops of bench/bench_ops.c in PyTorch (Debian's python3-torch, CPU) on the same shapes and
prints the same line format, so bench/run.sh can print libcvnet / PyTorch ratios from one run.
Run as /usr/bin/python3 with OPENBLAS_NUM_THREADS=1 (Debian's torch loads OpenBLAS, whose threads
fight torch's own on 2 cores)."""
import sys
import time

import torch
import torch.nn.functional as F

threads = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 2
torch.set_num_threads(threads)
REPS = 7


def median_time(fn):
    fn()
    times = []
    for _ in range(REPS):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            el = time.perf_counter() - t0
            if el >= 0.02:
                break
        times.append(el / n)
    times.sort()
    return times[REPS // 2]


def layer(name, make_out, inputs):
    def fwd():
        with torch.no_grad():
            make_out()

    def fwd_bwd():
        for t in inputs:
            t.grad = None
        y = make_out()
        y.backward(torch.ones_like(y))

    for suffix, fn in (("fwd", fwd), ("fwd+bwd", fwd_bwd)):
        print("%-34s %9.3f ms" % (f"{name} {suffix}", median_time(fn) * 1e3))


def rnd(*s):
    return torch.randn(*s, requires_grad=True)


print(f"# PyTorch {torch.__version__}: {threads} threads; median of {REPS} runs")
x, w, b = rnd(64, 1, 28, 28), rnd(32, 1, 3, 3), rnd(32)
layer("conv1 64x1x28x28 -> 32", lambda: F.conv2d(x, w, b, padding=1), [x, w, b])
x, w, b = rnd(64, 32, 14, 14), rnd(64, 32, 3, 3), rnd(64)
layer("conv2 64x32x14x14 -> 64", lambda: F.conv2d(x, w, b, padding=1), [x, w, b])
x, w, b = rnd(256, 64, 32, 32), rnd(128, 64, 3, 3), rnd(128)
layer("conv 256x64x32x32 -> 128", lambda: F.conv2d(x, w, b, padding=1), [x, w, b])
x, w, b = rnd(64, 3136), rnd(128, 3136), rnd(128)
layer("linear 64x3136 -> 128", lambda: F.linear(x, w, b), [x, w, b])
x = rnd(64, 32, 28, 28)
layer("maxpool2 64x32x28x28", lambda: F.max_pool2d(x, 2, 2), [x])
layer("relu 64x32x28x28", lambda: F.relu(x), [x])
w, b = rnd(32), rnd(32)
layer("batchnorm 64x32x28x28", lambda: F.batch_norm(x, None, None, w, b, True), [x, w, b])
x, s = rnd(64, 64, 16, 16), rnd(64, 64, 1, 1)
layer("se_scale 64x64x16x16 * 64x64x1x1", lambda: x * s, [x, s])
x, w, b = rnd(64, 72, 28, 28), rnd(72, 1, 3, 3), rnd(72)
layer("dwconv3 64x72x28x28", lambda: F.conv2d(x, w, b, padding=1, groups=72), [x, w, b])
x, w, b = rnd(64, 96, 28, 28), rnd(96, 1, 5, 5), rnd(96)
layer("dwconv5/2 64x96x28x28", lambda: F.conv2d(x, w, b, stride=2, padding=2, groups=96),
      [x, w, b])
for n, c, h, o in ((64, 16, 28, 72), (64, 240, 7, 40), (64, 96, 4, 576)):
    x, w, b = rnd(n, c, h, h), rnd(o, c, 1, 1), rnd(o)
    layer(f"pwconv {n}x{c}x{h}x{h} -> {o}", lambda: F.conv2d(x, w, b), [x, w, b])
x, tgt = rnd(64, 10), torch.arange(64) % 10
layer("cross_entropy 64x10", lambda: F.cross_entropy(x, tgt), [x])
