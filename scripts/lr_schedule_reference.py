#!/usr/bin/env python3
"""Learning-rate sequences from PyTorch's schedulers, for Tests/RNNTests/Fixtures/lr_schedules.json.

Run once with a CPU build of PyTorch (python3 -m venv v && v/bin/pip install torch numpy):
    v/bin/python scripts/lr_schedule_reference.py > Tests/RNNTests/Fixtures/lr_schedules.json

Each case drives one optimizer the way ztrain's RunState does: per optimizer step `opt.step()` then the
warmup's `step()` (LinearLR(start_factor=1/(W+1), end_factor=1, total_iters=W), constructed first), and at
each epoch's end the epoch scheduler's `step()` (`step(loss)` for ReduceLROnPlateau, on the case's losses).
`lrs` lists the rate of every optimizer step, as float.hex() strings (exact bits).
"""
import json
import math
import sys

import torch
from torch.optim import SGD
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, ReduceLROnPlateau, StepLR

NAN = float("nan")


def run(case):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = SGD([p], lr=case["lr"])
    w = case.get("warmup", 0)
    warm = LinearLR(opt, start_factor=1.0 / (w + 1), end_factor=1.0, total_iters=w) if w > 0 else None
    kind = case["kind"]
    if kind == "step":
        sched = StepLR(opt, step_size=case["step_size"], gamma=case.get("gamma", 0.1))
    elif kind == "cosine":
        sched = CosineAnnealingLR(opt, T_max=case["t_max"], eta_min=case.get("min_lr", 0.0))
    elif kind == "plateau":
        sched = ReduceLROnPlateau(opt, mode="min", factor=case.get("factor", 0.1), patience=case.get("patience", 10),
                                  threshold=1e-4, threshold_mode="rel", cooldown=0, min_lr=case.get("min_lr", 0.0),
                                  eps=1e-8)
    else:
        sched = None
    lrs = []
    for e in range(case["epochs"]):
        for _ in range(case["steps_per_epoch"]):
            lrs.append(float(opt.param_groups[0]["lr"]).hex())
            p.grad = torch.zeros(1)
            opt.step()
            if warm is not None:
                warm.step()
        if kind == "plateau":
            sched.step(case["losses"][e])
        elif sched is not None:
            sched.step()
    out = dict(case)
    if "losses" in out:
        out["losses"] = [float(x).hex() for x in out["losses"]]
    out["lrs"] = lrs
    return out


losses_a = [1.0, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.79995, 0.8, 0.8, 0.8, 0.8, 0.5, NAN, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
losses_b = [1.0 / (1 + k) if k < 6 else 0.2 for k in range(40)]
cases = [
    dict(name="step", kind="step", lr=0.01, step_size=3, gamma=0.5, epochs=10, steps_per_epoch=4),
    dict(name="step default gamma", kind="step", lr=0.05, step_size=2, epochs=9, steps_per_epoch=1),
    dict(name="cosine past T_max", kind="cosine", lr=0.01, t_max=10, min_lr=1e-4, epochs=25, steps_per_epoch=3),
    dict(name="cosine eta_min 0", kind="cosine", lr=0.003, t_max=7, epochs=16, steps_per_epoch=2),
    dict(name="plateau", kind="plateau", lr=0.01, patience=2, factor=0.5, min_lr=1e-3, epochs=len(losses_a),
         steps_per_epoch=2, losses=losses_a),
    dict(name="plateau defaults", kind="plateau", lr=0.02, epochs=len(losses_b), steps_per_epoch=1, losses=losses_b),
    dict(name="warmup constant", kind="constant", lr=0.01, warmup=10, epochs=6, steps_per_epoch=3),
    dict(name="warmup step", kind="step", lr=0.01, warmup=5, step_size=2, gamma=0.1, epochs=8, steps_per_epoch=3),
    dict(name="warmup cosine", kind="cosine", lr=0.01, warmup=7, t_max=6, epochs=8, steps_per_epoch=4),
    dict(name="warmup plateau", kind="plateau", lr=0.01, warmup=4, patience=1, factor=0.3, epochs=len(losses_a),
         steps_per_epoch=2, losses=losses_a),
]
json.dump({"torch": torch.__version__, "about": __doc__.strip().splitlines()[0], "cases": [run(c) for c in cases]},
          sys.stdout, indent=1)
print()
