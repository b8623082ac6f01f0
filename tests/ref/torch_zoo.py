"""libcvnet's model zoo (lib/nn/zoo.c) rebuilt in PyTorch, layer for layer and name for name:
used by tests/ref/make_zoo_ref.py for reference values and by bench/ scripts as the peer."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


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
