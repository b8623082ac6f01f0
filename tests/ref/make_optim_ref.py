#!/usr/bin/python3
"""Generates tests/ref/optim_ref.txt: 100-step trajectories of torch.optim's optimizers on a small
problem, computed once with PyTorch (Debian's python3-torch; /usr/bin/python3 tests/ref/make_optim_ref.py).

The problem: two parameters p1 [37] and p2 [5] (odd sizes, for vector tails), gradient at step t
g = (p - c) + noise_t, with c and noise_t fixed here. Each config records p1 and p2 after steps 1,
10 and 100 as `<config>.p1.<step>`; the C test replays the same gradients through libcvnet."""
import os
import torch

torch.manual_seed(7)
torch.set_default_dtype(torch.float64)
lines = []


def put(name, t):
    t = t.detach().to(torch.float64).contiguous()
    vals = " ".join("%.10g" % v for v in t.flatten().tolist())
    lines.append(f"{name} {t.dim()} {' '.join(str(d) for d in t.shape)} {vals}")


def f32(t):
    return t.to(torch.float32).to(torch.float64)  # values the C side can hold exactly


w1, w2 = f32(torch.randn(37)), f32(torch.randn(5))
c1, c2 = f32(torch.randn(37)), f32(torch.randn(5))
noise = f32(torch.randn(100, 42) * 0.5)
put("optim.w1", w1)
put("optim.w2", w2)
put("optim.c1", c1)
put("optim.c2", c2)
put("optim.noise", noise)

O = torch.optim
configs = {
    "sgd": lambda p: O.SGD(p, lr=0.1),
    "sgd_momentum": lambda p: O.SGD(p, lr=0.05, momentum=0.9),
    "sgd_dampening": lambda p: O.SGD(p, lr=0.05, momentum=0.9, dampening=0.5),
    "sgd_nesterov": lambda p: O.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
    "sgd_wd": lambda p: O.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01),
    "adam": lambda p: O.Adam(p, lr=0.01),
    "adam_wd": lambda p: O.Adam(p, lr=0.01, weight_decay=0.1),
    "adam_amsgrad": lambda p: O.Adam(p, lr=0.01, amsgrad=True),
    "adam_betas": lambda p: O.Adam(p, lr=0.02, betas=(0.8, 0.9), eps=1e-6),
    "adamw": lambda p: O.AdamW(p, lr=0.01, weight_decay=0.1),
    "adamw_amsgrad": lambda p: O.AdamW(p, lr=0.01, weight_decay=0.1, amsgrad=True),
    "rmsprop": lambda p: O.RMSprop(p, lr=0.01),
    "rmsprop_centered": lambda p: O.RMSprop(p, lr=0.01, centered=True),
    "rmsprop_momentum": lambda p: O.RMSprop(p, lr=0.01, momentum=0.9),
    "rmsprop_wd": lambda p: O.RMSprop(p, lr=0.01, alpha=0.9, weight_decay=0.1),
    "rmsprop_centered_momentum": lambda p: O.RMSprop(p, lr=0.01, centered=True, momentum=0.5),
    "rprop": lambda p: O.Rprop(p, lr=0.01),
    "rprop_custom": lambda p: O.Rprop(p, lr=0.02, etas=(0.4, 1.3), step_sizes=(1e-4, 0.05)),
    # two groups with their own lr and weight decay
    "groups": lambda p: O.Adam([{"params": [p[0]]}, {"params": [p[1]], "lr": 0.05, "weight_decay": 0.1}], lr=0.01),
    # p2 gets no gradient: it must not move, nor its state
    "frozen": lambda p: O.SGD(p, lr=0.05, momentum=0.9),
}

for name, make in configs.items():
    p1, p2 = w1.clone().requires_grad_(True), w2.clone().requires_grad_(True)
    opt = make([p1, p2])
    for t in range(100):
        p1.grad = (p1.detach() - c1) + noise[t, :37]
        p2.grad = None if name == "frozen" else (p2.detach() - c2) + noise[t, 37:]
        opt.step()
        if t + 1 in (1, 10, 100):
            put(f"{name}.p1.{t + 1}", p1)
            put(f"{name}.p2.{t + 1}", p2)

# ---- learning-rate schedules: lr of two groups (0.1 and 0.05) before and after each step
S = torch.optim.lr_scheduler
metrics = torch.tensor([1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.81, 0.82, 0.83, 0.84, 0.85, 0.7, 0.7,
                        0.7, 0.7, 0.7, 0.7, 0.69995, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7,
                        0.7, 0.7, 0.7])
put("sched.metrics", metrics)
schedules = {
    "step": lambda o: S.StepLR(o, step_size=3, gamma=0.5),
    "multistep": lambda o: S.MultiStepLR(o, milestones=[2, 5, 5, 11], gamma=0.3),
    "exponential": lambda o: S.ExponentialLR(o, gamma=0.9),
    "cosine": lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=0.001),
    "onecycle": lambda o: S.OneCycleLR(o, max_lr=0.2, total_steps=30, cycle_momentum=False),
    "plateau": lambda o: S.ReduceLROnPlateau(o, factor=0.5, patience=2, cooldown=1, min_lr=0.004),
}
for name, make in schedules.items():
    q = torch.zeros(3, requires_grad=True)
    r = torch.zeros(3, requires_grad=True)
    opt = torch.optim.SGD([{"params": [q]}, {"params": [r], "lr": 0.05}], lr=0.1)
    sch = make(opt)
    lrs = [[g["lr"] for g in opt.param_groups]]
    for t in range(29):
        opt.step()
        if name == "plateau":
            sch.step(float(metrics[t]))
        else:
            sch.step()
        lrs.append([g["lr"] for g in opt.param_groups])
    put(f"sched.{name}", torch.tensor(lrs))

# ---- gradient clipping of p1, p2 with gradients 3 x noise row 0
for name, clip in (("clip_norm", lambda ps: torch.nn.utils.clip_grad_norm_(ps, 1.0)),
                   ("clip_value", lambda ps: torch.nn.utils.clip_grad_value_(ps, 0.3))):
    p1, p2 = w1.clone().requires_grad_(True), w2.clone().requires_grad_(True)
    p1.grad, p2.grad = 3 * noise[0, :37].clone(), 3 * noise[0, 37:].clone()
    total = clip([p1, p2])
    put(f"{name}.g1", p1.grad)
    put(f"{name}.g2", p2.grad)
    if total is not None:
        put(f"{name}.total", torch.tensor([float(total)]))

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "optim_ref.txt"), "w") as f:
    f.write("# generated by tests/ref/make_optim_ref.py with torch %s; do not edit\n" % torch.__version__)
    f.write("\n".join(lines) + "\n")
print("wrote", len(lines), "arrays")
