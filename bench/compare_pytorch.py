#!/usr/bin/python3
"""Runs build/bench/bench_train_cnn and the same measurements in PyTorch (Debian's python3-torch,
torch.set_num_threads(2), OPENBLAS_NUM_THREADS=1 as its best setting here), in one run, and prints
the figures and the ratios: training images/s, batch-1 inference latency, batch-64 inference
images/s, peak resident memory of each process. The network is the reference CNN or a zoo model
(tests/ref/torch_zoo.py rebuilds them layer for layer) for 1x28x28 images and 10 classes; the
targets are the reference CNN's.
    /usr/bin/python3 bench/compare_pytorch.py [--threads 2] [--bin build/bench/bench_train_cnn]
                                              [--arch cnn|resnet|mobilenet|efficientnet]"""
import argparse
import os
import resource
import subprocess
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--bin", default="build/bench/bench_train_cnn")
ap.add_argument("--arch", default="cnn", choices=["cnn", "resnet", "mobilenet", "efficientnet"])
args = ap.parse_args()

ours = {}
out = subprocess.run([args.bin, "--threads", str(args.threads), "--arch", args.arch], check=True,
                     capture_output=True, text=True).stdout
for line in out.splitlines():
    if line and not line.startswith("#"):
        k, v = line.split()
        ours[k] = float(v)

os.environ["OPENBLAS_NUM_THREADS"] = "1"
import torch  # noqa: E402  (after the environment is set)
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(args.threads)
torch.manual_seed(1)
if args.arch == "cnn":
    net = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(3136, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10))
else:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
    import torch_zoo  # noqa: E402

    net = getattr(torch_zoo, args.arch)(1, 10)
    if args.arch != "resnet":  # cvn_model_defaults: dropout 0.2 before the head
        net.head = nn.Sequential(nn.Dropout(0.2), net.head)
# as bench_train_cnn: the zoo models take fewer steps per timed run
steps, n1, n64 = (40, 500, 40) if args.arch == "cnn" else (8, 50, 8)
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
xs = torch.randn(16, 64, 1, 28, 28)
ys = torch.randint(0, 10, (16, 64))
REPS = 5


def median(v):
    return sorted(v)[len(v) // 2]


train = []
for rep in range(-1, REPS):
    t0 = time.perf_counter()
    for s in range(steps):
        opt.zero_grad()
        F.cross_entropy(net(xs[s % 16]), ys[s % 16]).backward()
        opt.step()
    if rep >= 0:
        train.append(steps * 64 / (time.perf_counter() - t0))
net.eval()
lat, thr = [], []
with torch.no_grad():
    for rep in range(-1, REPS):
        t0 = time.perf_counter()
        for i in range(n1):
            net(xs[0, i % 64:i % 64 + 1])
        t1 = time.perf_counter()
        for i in range(n64):
            net(xs[i % 16])
        t2 = time.perf_counter()
        if rep >= 0:
            lat.append((t1 - t0) / n1 * 1e3)
            thr.append(n64 * 64 / (t2 - t1))
theirs = {"train_images_per_s": median(train), "infer_b1_ms": median(lat),
          "infer_b64_images_per_s": median(thr),
          "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}

print(f"# {'reference CNN' if args.arch == 'cnn' else args.arch}, {args.threads} threads, PyTorch {torch.__version__}, median of {REPS}")
print(f"{'measure':26} {'libcvnet':>10} {'PyTorch':>10} {'ratio':>7}  target")
targets = {"train_images_per_s": ("ours/torch", ">= 1.5"), "infer_b1_ms": ("ours/torch", "<= 0.5"),
           "infer_b64_images_per_s": ("ours/torch", ">= 2.5"), "peak_rss_mb": ("ours/torch", "<= 0.25")}
for k, (_, goal) in targets.items():
    print(f"{k:26} {ours[k]:10.2f} {theirs[k]:10.2f} {ours[k] / theirs[k]:7.2f}  {goal}")
