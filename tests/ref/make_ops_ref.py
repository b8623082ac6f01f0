#!/usr/bin/python3
"""Generates tests/ref/ops_ref.txt: inputs, outputs and gradients of every op, computed once with
PyTorch (Debian's python3-torch; run as /usr/bin/python3 tests/ref/make_ops_ref.py).

Each line is one array: `name ndim dim0 dim1 ... v0 v1 ...`. For an op case C, the inputs are
C.x / C.a / C.b ..., the forward result C.out, the seed gradient C.gout (random, so every element of
the backward counts), and the input gradients C.gx, C.ga, ... The C tests rebuild each case from
these arrays, so `make test` needs no PyTorch."""
import os
import torch
import torch.nn.functional as F

torch.manual_seed(20261124)
torch.set_default_dtype(torch.float64)  # references in double, compared against float32
lines = []


def put(name, t):
    t = t.detach().to(torch.float64).contiguous()
    dims = " ".join(str(d) for d in t.shape)
    vals = " ".join("%.10g" % v for v in t.flatten().tolist())
    lines.append(f"{name} {t.dim()} {dims} {vals}".replace("  ", " "))


def case(name, fn, inputs, extra=None):
    """inputs: dict of name -> tensor (float ones get gradients); fn(**inputs) -> output."""
    leaves = {}
    for k, v in inputs.items():
        v = v.clone()
        if v.is_floating_point():
            v.requires_grad_(True)
        leaves[k] = v
        put(f"{name}.{k}", v)
    out = fn(**leaves)
    put(f"{name}.out", out)
    gout = torch.randn_like(out)
    put(f"{name}.gout", gout)
    out.backward(gout)
    for k, v in leaves.items():
        if v.is_floating_point():
            put(f"{name}.g{k}", v.grad if v.grad is not None else torch.zeros_like(v))
    for k, v in (extra or {}).items():
        put(f"{name}.{k}", v)




def r(*shape):
    # float32 values, so the C side reads the same inputs that PyTorch used
    return torch.randn(*shape, dtype=torch.float32).double()


def u(*shape):
    return torch.rand(*shape, dtype=torch.float32).double()


case("add", lambda a, b: a + b, {"a": r(2, 3, 4), "b": r(3, 1)})
case("sub", lambda a, b: a - b, {"a": r(4, 1, 5), "b": r(1, 3, 5)})
case("mul", lambda a, b: a * b, {"a": r(2, 3), "b": r(3)})
case("mul_same", lambda a, b: a * b, {"a": r(5, 37), "b": r(5, 37)})
case("div", lambda a, b: a / b, {"a": r(3, 4), "b": 1.0 + u(3, 1)})
case("div_same", lambda a, b: a / b, {"a": r(3, 19), "b": 1.0 + u(3, 19)})
case("affine", lambda x: 1.7 * x - 0.3, {"x": r(5, 7)})
case("matmul", lambda a, b: a @ b, {"a": r(5, 7), "b": r(7, 3)})
case("linear", lambda x, w, b: F.linear(x, w, b), {"x": r(4, 6), "w": r(5, 6), "b": r(5)})
case("conv_basic", lambda x, w, b: F.conv2d(x, w, b, padding=1),
     {"x": r(2, 3, 7, 6), "w": r(4, 3, 3, 3), "b": r(4)})
case("conv_strided", lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(2, 1), dilation=(2, 1)),
     {"x": r(2, 2, 9, 8), "w": r(3, 2, 3, 2), "b": r(3)})
case("conv_groups", lambda x, w, b: F.conv2d(x, w, b, padding=1, groups=2),
     {"x": r(2, 4, 6, 6), "w": r(6, 2, 3, 3), "b": r(6)})
case("conv_depthwise", lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1, groups=3),
     {"x": r(2, 3, 5, 5), "w": r(3, 1, 3, 3), "b": r(3)})
case("conv_1x1", lambda x, w, b: F.conv2d(x, w, b), {"x": r(3, 5, 4, 4), "w": r(7, 5, 1, 1), "b": r(7)})
case("maxpool_2", lambda x: F.max_pool2d(x, 2, 2), {"x": r(2, 3, 6, 7)})
case("maxpool_3s2p1", lambda x: F.max_pool2d(x, 3, 2, 1), {"x": r(1, 2, 7, 7)})
case("avgpool_3s2p1", lambda x: F.avg_pool2d(x, 3, 2, 1), {"x": r(2, 2, 7, 6)})
case("avgpool_2", lambda x: F.avg_pool2d(x, 2), {"x": r(2, 2, 5, 6)})
case("adaptive", lambda x: F.adaptive_avg_pool2d(x, (3, 2)), {"x": r(2, 3, 7, 5)})
case("global", lambda x: F.adaptive_avg_pool2d(x, 1), {"x": r(2, 3, 4, 5)})
acts = {
    "relu": F.relu, "leaky_relu": lambda x: F.leaky_relu(x, 0.1), "sigmoid": torch.sigmoid,
    "tanh": torch.tanh, "gelu": F.gelu, "silu": F.silu, "hardswish": F.hardswish,
    "hardsigmoid": F.hardsigmoid,
}
for name, fn in acts.items():
    x = torch.cat([r(3, 37) * 3, r(1, 37) * 0.05], 0)  # wide range, and small values near 0
    case(name, lambda x, fn=fn: fn(x), {"x": x})
case("softmax_last", lambda x: F.softmax(x, -1), {"x": r(4, 13) * 2})
case("softmax_mid", lambda x: F.softmax(x, 1), {"x": r(2, 5, 3) * 2})
case("log_softmax_last", lambda x: F.log_softmax(x, -1), {"x": r(4, 13) * 2})
case("log_softmax_first", lambda x: F.log_softmax(x, 0), {"x": r(3, 4) * 2})

rm, rv = r(3) * 0.1, 1 + u(3)
rm2, rv2 = rm.clone(), rv.clone()
case("bn_train", lambda x, w, b: F.batch_norm(x, rm2, rv2, w, b, True, 0.1, 1e-5),
     {"x": r(4, 3, 5, 5) * 2 + 1, "w": r(3), "b": r(3)},
     extra={"rm_before": rm, "rv_before": rv})
put("bn_train.rm_after", rm2)
put("bn_train.rv_after", rv2)
case("bn_eval", lambda x, w, b: F.batch_norm(x, rm, rv, w, b, False, 0.1, 1e-5),
     {"x": r(2, 3, 4, 4), "w": r(3), "b": r(3)}, extra={"rm": rm, "rv": rv})
case("bn_2d", lambda x, w, b: F.batch_norm(x, None, None, w, b, True, 0.1, 1e-5),
     {"x": r(6, 4), "w": r(4), "b": r(4)})

case("concat", lambda a, b: torch.cat([a, b], 1), {"a": r(2, 3, 4), "b": r(2, 2, 4)})
case("sum_02", lambda x: x.sum(dim=(0, 2)), {"x": r(3, 4, 5)})
case("mean_1k", lambda x: x.mean(dim=1, keepdim=True), {"x": r(3, 4, 5)})
case("mean_all", lambda x: x.mean(), {"x": r(3, 4, 5)})

tgt = torch.randint(0, 10, (6,))
put("xent.target", tgt)
case("xent", lambda x: F.cross_entropy(x, tgt), {"x": r(6, 10) * 2})
case("xent_smooth", lambda x: F.cross_entropy(x, tgt, label_smoothing=0.1), {"x": r(6, 10) * 2})
case("mse", lambda a, b: F.mse_loss(a, b), {"a": r(4, 5), "b": r(4, 5)})
case("bce", lambda a, b: F.binary_cross_entropy_with_logits(a, b), {"a": r(4, 5) * 3, "b": u(4, 5)})

# broadcasting whose gradients reduce (added after the cases above, which keep their values): a
# squeeze-excite gate over H and W, both operands of a division broadcast, one scalar subtracted
case("mul_gate", lambda a, b: a * b, {"a": r(2, 3, 4, 5), "b": r(2, 3, 1, 1)})
case("div_both", lambda a, b: a / b, {"a": r(3, 1, 5), "b": 1.5 + u(1, 4, 1)})
case("sub_scalar", lambda a, b: a - b, {"a": r(4, 6), "b": r(1)})

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "ops_ref.txt"), "w") as f:
    f.write("# generated by tests/ref/make_ops_ref.py with torch %s; do not edit\n" % torch.__version__)
    f.write("\n".join(lines) + "\n")
print("wrote", len(lines), "arrays")
