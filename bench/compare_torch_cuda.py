#!/usr/bin/env python3
"""PyTorch on the GPU (cuDNN convolution) on the shapes of bench/bench_cuda.c, same GPU, same run:
convolution fwd and fwd+bwd, and training steps of the reference CNN (SGD) in images/s, with the
most GPU memory PyTorch's caching allocator reserved (and had allocated) during the timed steps:
bench_cuda's "MiB held" is the peer of the first."""
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
from torch_zoo import resnet  # noqa: E402

dev = "cuda"
REPS = 7
torch.backends.cudnn.benchmark = True
torch.backends.cuda.matmul.allow_tf32 = False  # FP32 as libcvnet computes
torch.backends.cudnn.allow_tf32 = False


def median_time(fn):
    fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()  # what the timed runs hold, not the warm-up's search
    ts = []
    for _ in range(REPS):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            torch.cuda.synchronize()
            n += 1
            el = time.perf_counter() - t0
            if el >= 0.05:
                break
        ts.append(el / n)
    ts.sort()
    return ts[REPS // 2]


def conv(name, xs, ws):
    x = torch.randn(*xs, device=dev, requires_grad=True)
    w = torch.randn(*ws, device=dev, requires_grad=True)
    b = torch.randn(ws[0], device=dev, requires_grad=True)
    flops = 2.0 * xs[0] * ws[0] * ws[1] * ws[2] * ws[3] * xs[2] * xs[3]

    def fwd():
        with torch.no_grad():
            F.conv2d(x, w, b, padding=1)

    def fwd_bwd():
        F.conv2d(x, w, b, padding=1).sum().backward()

    for label, fn, f in (("fwd", fwd, flops), ("fwd+bwd", fwd_bwd, 3 * flops)):
        s = median_time(fn)
        print("%-28s %-8s cudnn  %8.3f ms %8.0f GFLOP/s" % (name, label, s * 1e3, f / s * 1e-9))


def reference_cnn():
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(3136, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10))


def train(batch, name="reference CNN", net=None, shape=(1, 28, 28)):
    torch.cuda.empty_cache()  # earlier benchmarks' cached blocks
    net = (net or reference_cnn()).to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x = torch.randn(batch, *shape, device=dev)
    y = torch.arange(batch, device=dev) % 10

    def step():
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()

    s = median_time(step)
    mib = 1 << 20
    print("train %-13s batch %-4d torch  %8.3f ms/step %9.0f images/s %8.1f MiB reserved "
          "(%.1f allocated)" % (name, batch, s * 1e3, batch / s,
                                torch.cuda.max_memory_reserved() / mib,
                                torch.cuda.max_memory_allocated() / mib))


print(f"# PyTorch {torch.__version__} on {torch.cuda.get_device_name()}: median of {REPS} runs")
conv("conv1 64x1x28x28->32", (64, 1, 28, 28), (32, 1, 3, 3))
conv("conv2 64x32x14x14->64", (64, 32, 14, 14), (64, 32, 3, 3))
conv("conv 256x64x32x32->128", (256, 64, 32, 32), (128, 64, 3, 3))
conv("resnet 128x16x32x32->16", (128, 16, 32, 32), (16, 16, 3, 3))
conv("resnet 128x32x16x16->32", (128, 32, 16, 16), (32, 32, 3, 3))
conv("resnet 128x64x8x8->64", (128, 64, 8, 8), (64, 64, 3, 3))
train(64)
train(256)
train(128, "resnet", resnet(3, 10), (3, 32, 32))
