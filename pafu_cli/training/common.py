"""What every family's training shares: schedules, the cosine-decay descent loop,
ridge least squares, k-means, optimiser-state surgery, checkpoints, provenance."""

from __future__ import annotations

import datetime
import json
import os
import shlex
import sys
from pathlib import Path

import numpy as np
import torch


def crop(t, m: int):
    """``t`` without ``m`` pixels at each border of its last two axes."""
    return t[..., m:-m, m:-m] if m else t


def cosine(step: int, total: int) -> float:
    """Learning-rate factor: cosine decay from 1 to 5% over ``total`` steps."""
    return 0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * step / total))


def geometric(start: float, end: float, step: int, total: int) -> float:
    """From ``start`` at step 0 to ``end`` at step ``total - 1``, geometrically."""
    return start * (end / start) ** (step / max(1, total - 1))


def cosine_descent(opt, base_lrs, steps: int, sampler, rng, loss_of) -> float:
    """``steps`` optimiser steps on ``loss_of(batch, target)`` of fresh batches
    ``sampler(rng)``, each parameter group's rate decaying from its ``base_lrs``
    entry (:func:`cosine`). Returns the mean loss of the last tenth of the steps."""
    tail = []
    for step in range(steps):
        for g, lr in zip(opt.param_groups, base_lrs):
            g["lr"] = lr * cosine(step, steps)
        loss = loss_of(*sampler(rng))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step >= steps - max(1, steps // 10):
            tail.append(loss.item())
    return float(np.mean(tail)) if tail else 0.0


def ridge_solve(a, b, ridge: float):
    """Solution of ``(a + lam I) x = b``, ``lam`` = ``ridge`` times the mean of
    ``a``'s diagonal (a scale-free ridge for normal equations ``a = A^T A``)."""
    lam = ridge * torch.trace(a) / a.shape[0]
    return torch.linalg.solve(a + lam * torch.eye(a.shape[0], dtype=a.dtype), b)


def kmeans(feats, n: int, rng, iters: int = 20):
    """``n`` k-means centres of the rows of ``feats`` (Lloyd, ``iters`` rounds,
    seeded from ``rng``); an empty cluster restarts at the worst-fitted row."""
    g = torch.Generator().manual_seed(int(rng.integers(1 << 30)))
    centers = feats[torch.randperm(len(feats), generator=g)[:n]].clone()
    for _ in range(iters):
        lab = torch.cdist(feats, centers).argmin(1)
        for z in range(n):
            members = feats[lab == z]
            if len(members):
                centers[z] = members.mean(0)
            else:  # re-seed an empty cluster at the worst-fitted sample
                centers[z] = feats[torch.cdist(feats, centers).min(1).values.argmax()]
    return centers


def reset_adam_rows(opt, param, rows) -> None:
    """Forget Adam's moment estimates for ``rows`` of ``param`` (after they were replaced)."""
    st = opt.state.get(param)
    if st:
        for key in ("exp_avg", "exp_avg_sq"):
            if key in st:
                st[key][rows] = 0


def snapshot(net) -> dict:
    """A copy of ``net``'s state (to restore with ``load_state_dict``)."""
    return {k: v.clone() for k, v in net.state_dict().items()}


def save_checkpoint(path: Path, net, optimisers: dict, step: int, rng, config: dict) -> None:
    """Everything a resumed run needs (atomically: temp file, then rename).

    ``optimisers``: name -> optimiser; ``rng`` the NumPy generator the batches
    are drawn with (the torch generator is saved too); ``config`` for the record.
    """
    state = {"net": net.state_dict(), **{k: o.state_dict() for k, o in optimisers.items()}}
    state.update(step=step, rng=rng.bit_generator.state, torch_rng=torch.get_rng_state(), config=config)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, net, optimisers: dict, rng) -> int:
    """Restore a :func:`save_checkpoint` (in place); returns its step."""
    state = torch.load(path, weights_only=False)
    net.load_state_dict(state["net"])
    for k, o in optimisers.items():
        o.load_state_dict(state[k])
    rng.bit_generator.state = state["rng"]
    torch.set_rng_state(state["torch_rng"])
    return state["step"]


def warm_start_record(start, init_from: str) -> dict:
    """What a model trained from ``start`` (a loaded model; file ``init_from``)
    records of it, its own warm start included: the chain of commands."""
    record = {
        "file": str(init_from),
        "command": start.provenance.get("command", ""),
        "validation": start.quality.get("validation", {}),
    }
    earlier = start.quality.get("training", {}).get("init_from")
    if earlier:  # a longer chain: the start's own start, and so on
        record["init_from"] = earlier
    return record


def provenance(command: str, seed: int, data_desc: str, summary: dict, training: dict) -> dict:
    """A model's ``provenance``: the command (default: this process's), seed, data,
    today's date, and as ``quality`` the validation figures of ``summary`` (its
    ``val*`` entries) with the ``training`` record."""
    return {
        "command": command or " ".join(shlex.quote(a) for a in sys.argv),
        "seed": seed,
        "data": data_desc,
        "date": datetime.date.today().isoformat(),
        "quality": json.dumps(
            {
                "validation": {k: round(v, 3) for k, v in summary.items() if k.startswith("val")},
                "training": training,
            }
        ),
    }
