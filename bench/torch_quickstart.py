#!/usr/bin/python3
"""PyTorch peer of examples/quickstart.c: the reference CNN on FashionMNIST, Adam lr 1e-3, batch 64,
same normalization, for --epochs epochs on 2 threads; prints per-epoch images/s and test accuracy.
Reads the same IDX files (Debian's dataset-fashion-mnist). Run as
OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/torch_quickstart.py --epochs 3"""
import argparse
import gzip
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, default=3)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
args = ap.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)


def idx(path):
    with gzip.open(path) as f:
        raw = f.read()
    nd = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * nd).reshape(dims)


def load(split):
    x = idx(f"{args.data}/{split}-images-idx3-ubyte.gz").astype(np.float32)
    y = idx(f"{args.data}/{split}-labels-idx1-ubyte.gz").astype(np.int64)
    x = (x / 255.0 - 0.2860) / 0.3530
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)


xtr, ytr = load("train")
xte, yte = load("t10k")
net = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                    nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                    nn.Linear(3136, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10))
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
for epoch in range(1, args.epochs + 1):
    net.train()
    perm = torch.randperm(len(xtr))
    t0, total, n = time.perf_counter(), 0.0, 0
    for i in range(0, len(xtr) - 63, 64):
        b = perm[i:i + 64]
        opt.zero_grad()
        loss = F.cross_entropy(net(xtr[b]), ytr[b])
        loss.backward()
        opt.step()
        total += loss.item()
        n += 1
    el = time.perf_counter() - t0
    net.eval()
    with torch.no_grad():
        correct = sum((net(xte[i:i + 256]).argmax(1) == yte[i:i + 256]).sum().item()
                      for i in range(0, len(xte), 256))
    print(f"epoch {epoch}: train loss {total / n:.4f}, {n * 64 / el:.0f} images/s, "
          f"test accuracy {100.0 * correct / len(xte):.2f} %", flush=True)
