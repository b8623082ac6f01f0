#!/usr/bin/python3
"""Generates tests/ref/zoo_ref.txt: the zoo's architectures rebuilt in PyTorch (Debian's
python3-torch; run as /usr/bin/python3 tests/ref/make_zoo_ref.py), with every parameter and buffer
set by a formula the C test repeats, run on a fixed input.

For each model it records: the number of elements of each parameter under its state_dict name
(`zoo.<model>.param.<k>.<name>`, so the C side checks names, order and sizes), the logits in eval
mode, the cross-entropy loss in training mode (batch statistics) and the gradient of that loss
with respect to the first and the last parameter."""
import math
import os
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_default_dtype(torch.float32)
lines = []


def put(name, t):
    t = t.detach().to(torch.float64).contiguous()
    vals = " ".join("%.9g" % v for v in t.flatten().tolist())
    dims = " ".join(str(d) for d in t.shape) if t.dim() else ""
    lines.append(f"{name} {max(t.dim(), 1)} {dims if t.dim() else '1'} {vals}")


def divisible(c, by=8):
    v = int(c + by / 2) // by * by
    v = max(v, by)
    if v < 0.9 * c:
        v += by
    return v


def conv_bn_act(i, o, k, s=1, g=1, act=None):
    layers = [nn.Conv2d(i, o, k, s, k // 2, groups=g, bias=False), nn.BatchNorm2d(o)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    def __init__(self, i, o, s):
        super().__init__()
        self.conv1 = nn.Conv2d(i, o, 3, s, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(o)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(o, o, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(o)
        self.downsample = None
        if s != 1 or i != o:
            self.downsample = nn.Sequential(nn.Conv2d(i, o, 1, s, 0, bias=False), nn.BatchNorm2d(o))

    def forward(self, x):
        y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (self.downsample(x) if self.downsample is not None else x))


class SE(nn.Module):
    def __init__(self, c, sq, inner, gate):
        super().__init__()
        self.fc1 = nn.Conv2d(c, sq, 1)
        self.fc2 = nn.Conv2d(sq, c, 1)
        self.inner, self.gate = inner, gate

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.fc2(self.inner(self.fc1(s))))


class InvertedResidual(nn.Module):
    def __init__(self, i, e, o, k, s, act, sq, inner, gate):
        super().__init__()
        if e != i:
            self.expand = conv_bn_act(i, e, 1, act=act)
        self.depthwise = conv_bn_act(e, e, k, s, e, act=act)
        if sq:
            self.se = SE(e, sq, inner, gate)
        self.project = conv_bn_act(e, o, 1)
        self.skip = s == 1 and i == o

    def forward(self, x):
        y = x
        for m in self.children():
            y = m(y)
        return y + x if self.skip else y


def resnet(c, classes, width=1.0, depth=1.0):
    m = nn.Sequential()
    ch = divisible(16 * width)
    m.add_module("stem", conv_bn_act(c, ch, 3, act=nn.ReLU))
    i = ch
    for s in range(3):
        o = ch << s
        stage = nn.Sequential(*[BasicBlock(i if b == 0 else o, o, 2 if b == 0 and s > 0 else 1)
                                for b in range(math.ceil(3 * depth))])
        m.add_module(f"layer{s + 1}", stage)
        i = o
    m.add_module("pool", nn.AdaptiveAvgPool2d(1))
    m.add_module("flatten", nn.Flatten())
    m.add_module("head", nn.Linear(i, classes))
    return m


def mobilenet(c, classes, wm=1.0):
    spec = [(3, 16, 16, 1, 0, 1), (3, 72, 24, 0, 0, 2), (3, 88, 24, 0, 0, 1), (5, 96, 40, 1, 1, 2),
            (5, 240, 40, 1, 1, 1), (5, 240, 40, 1, 1, 1), (5, 120, 48, 1, 1, 1),
            (5, 144, 48, 1, 1, 1), (5, 288, 96, 1, 1, 2), (5, 576, 96, 1, 1, 1),
            (5, 576, 96, 1, 1, 1)]
    m = nn.Sequential()
    i = divisible(16 * wm)
    m.add_module("stem", conv_bn_act(c, i, 3, act=nn.Hardswish))
    blocks = nn.Sequential()
    for k, e, o, se, hs, s in spec:
        e, o = divisible(e * wm), divisible(o * wm)
        blocks.append(InvertedResidual(i, e, o, k, s, nn.Hardswish if hs else nn.ReLU,
                                       divisible(e / 4) if se else 0, F.relu, F.hardsigmoid))
        i = o
    m.add_module("features", blocks)
    last, hidden = divisible(576 * wm), divisible(1024 * wm)
    m.add_module("last", conv_bn_act(i, last, 1, act=nn.Hardswish))
    m.add_module("pool", nn.AdaptiveAvgPool2d(1))
    m.add_module("flatten", nn.Flatten())
    m.add_module("fc", nn.Linear(last, hidden))
    m.add_module("fc_act", nn.Hardswish())
    m.add_module("head", nn.Linear(hidden, classes))
    return m


def efficientnet(c, classes, wm=1.0, dm=1.0):
    spec = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3)]
    m = nn.Sequential()
    i = divisible(32 * wm)
    m.add_module("stem", conv_bn_act(c, i, 3, act=nn.SiLU))
    blocks = nn.Sequential()
    for e, k, s, o, n in spec:
        o = divisible(o * wm)
        for b in range(math.ceil(n * dm)):
            blocks.append(InvertedResidual(i, i * e, o, k, s if b == 0 else 1, nn.SiLU,
                                           max(i // 4, 1), F.silu, torch.sigmoid))
            i = o
    m.add_module("features", blocks)
    last = divisible(640 * wm)
    m.add_module("last", conv_bn_act(i, last, 1, act=nn.SiLU))
    m.add_module("pool", nn.AdaptiveAvgPool2d(1))
    m.add_module("flatten", nn.Flatten())
    m.add_module("head", nn.Linear(last, classes))
    return m


def cnn(c, h, w, classes, channels, k, bn, fc):
    m = nn.Sequential()
    feats = nn.Sequential()
    i = c
    for o in channels:
        feats.append(nn.Conv2d(i, o, k, 1, k // 2, bias=not bn))
        if bn:
            feats.append(nn.BatchNorm2d(o))
        feats.append(nn.ReLU())
        if h >= 2 and w >= 2:
            feats.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        i = o
    m.add_module("features", feats)
    m.add_module("flatten", nn.Flatten())
    i = i * h * w
    layers = nn.Sequential()
    for u in fc:
        layers.append(nn.Linear(i, u))
        layers.append(nn.ReLU())
        i = u
    if fc:
        m.add_module("fc", layers)
    m.add_module("head", nn.Linear(i, classes))
    return m


# name: (model, input shape); the C test builds the same from cvn_model_defaults + overrides
models = {
    "cnn": (cnn(1, 28, 28, 10, [8, 12, 16], 5, True, [24, 16]), (2, 1, 28, 28)),
    "resnet": (resnet(3, 10, width=0.5, depth=0.34), (2, 3, 16, 16)),
    "mobilenet": (mobilenet(1, 4, wm=0.25), (2, 1, 20, 20)),
    "efficientnet": (efficientnet(3, 5, wm=0.25, dm=0.34), (2, 3, 16, 16)),
}

def noise(n, k):
    """Uniform-looking values in [-1, 1): frac(sin(12.9898 i + 78.233 k) 43758.5453) * 2 - 1."""
    i = torch.arange(n, dtype=torch.float64)
    v = torch.sin(12.9898 * i + 78.233 * k) * 43758.5453
    return (v - torch.floor(v)) * 2 - 1


for name, (m, shape) in models.items():
    for k, (pname, p) in enumerate(m.named_parameters()):
        u = noise(p.numel(), k)
        if p.dim() >= 2:  # weights: uniform with the variance of a unit-gain init
            v = u * math.sqrt(3.0 / (p.numel() // p.shape[0]))
        elif pname.endswith("weight"):  # batch-norm scale
            v = 1 + 0.2 * u
        else:
            v = 0.1 * u
        with torch.no_grad():
            p.copy_(v.reshape(p.shape))
        put(f"zoo.{name}.param.{k}.{pname}", torch.tensor([float(p.numel())]))
    bufs = [(n, b) for n, b in m.named_buffers() if not n.endswith("num_batches_tracked")]
    for k, (bname, b) in enumerate(bufs):
        u = noise(b.numel(), 100 + k)
        v = 0.5 + 0.25 * u if bname.endswith("running_var") else 0.1 * u
        with torch.no_grad():
            b.copy_(v)
    n = 1
    for d in shape:
        n *= d
    x = noise(n, 99).float().reshape(shape)
    m.eval()
    put(f"zoo.{name}.logits", m(x))
    m.train()
    y = torch.tensor([3, 1])
    loss = F.cross_entropy(m(x), y)
    loss.backward()
    params = list(m.parameters())
    put(f"zoo.{name}.loss", loss.reshape(1))
    put(f"zoo.{name}.grad_first", params[0].grad)
    put(f"zoo.{name}.grad_last", params[-1].grad)

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zoo_ref.txt")
with open(out, "w") as f:
    f.write("# generated by tests/ref/make_zoo_ref.py with torch %s\n" % torch.__version__)
    f.write("\n".join(lines) + "\n")
print("wrote", out, len(lines), "arrays")
