"""What every training recipe shares: the time-budgeted loop, its checkpoints (model
weights, Adam moments and the recipe's own state as JSON metadata, in one safetensors
file written atomically, so that a later run resumes exactly; no pickles), and the
learning-rate schedule."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file


def cosine_lr(
    base: float, progress: float, *, floor: float = 0.0, warmup: float = 0.0, warmup_start: float = 0.01
) -> float:
    """The learning rate at ``progress`` (0..1 of the run): a linear warm-up over the first
    ``warmup`` share (from ``warmup_start`` x ``base``), then a cosine from ``base`` down to
    ``floor`` x ``base`` at the end."""
    if progress < warmup:
        return base * max(progress / warmup, warmup_start)
    t = min((progress - warmup) / (1 - warmup), 1.0)
    if not floor:
        return base * 0.5 * (1 + math.cos(math.pi * t))
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))


def _params(opt: torch.optim.Optimizer) -> list[torch.nn.Parameter]:
    return [p for group in opt.param_groups for p in group["params"]]


def save_checkpoint(
    path: Path, model: torch.nn.Module, optimizers: dict[str, torch.optim.Optimizer], state: dict
) -> None:
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    state = dict(state)
    for name, opt in optimizers.items():
        for i, p in enumerate(_params(opt)):
            s = opt.state.get(p)
            if s:
                tensors[f"{name}.{i}.exp_avg"] = s["exp_avg"].contiguous()
                tensors[f"{name}.{i}.exp_avg_sq"] = s["exp_avg_sq"].contiguous()
                state[f"{name}_step.{i}"] = float(s["step"])
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"state": json.dumps(state)})
    tmp.replace(path)


def load_checkpoint(
    path: Path, model: torch.nn.Module, optimizers: dict[str, torch.optim.Optimizer], strict: bool = True
) -> dict:
    """Restore ``model`` and ``optimizers`` in place; return the recipe's state."""
    with safe_open(str(path), "pt") as f:
        state = json.loads(f.metadata()["state"])
    tensors = load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=strict)
    for name, opt in optimizers.items():
        for i, p in enumerate(_params(opt)):
            if f"{name}.{i}.exp_avg" in tensors:
                opt.state[p] = {
                    "step": torch.tensor(state[f"{name}_step.{i}"]),
                    "exp_avg": tensors[f"{name}.{i}.exp_avg"],
                    "exp_avg_sq": tensors[f"{name}.{i}.exp_avg_sq"],
                }
    return state


def train_until(
    minutes: float,
    val_every: float,
    state: dict,
    step: Callable[[float], tuple[torch.Tensor, dict]],
    evaluate: Callable[[], dict],
    save: Callable[[], None],
    on_progress: Callable[[dict], None] | None = None,
    max_steps: int | None = None,
) -> None:
    """The time-budgeted loop of the recipes: ``step(progress)`` (progress = share of the
    budget used, for the schedule) until ``minutes`` of wall time including the
    ``state["elapsed"]`` of earlier runs, or until ``max_steps`` steps in all; every
    ``val_every`` seconds and at the end, a history entry with ``evaluate()``'s fields,
    then ``save()`` and ``on_progress``."""
    budget = minutes * 60
    start, last_val = time.monotonic() - state["elapsed"], time.monotonic()

    def running() -> bool:
        return time.monotonic() - start < budget and (max_steps is None or state["step"] < max_steps)

    while running():
        elapsed = time.monotonic() - start
        progress = elapsed / budget if max_steps is None else max(elapsed / budget, state["step"] / max_steps)
        loss, parts = step(progress)
        state["step"] += 1
        if time.monotonic() - last_val >= val_every or not running():
            last_val = time.monotonic()
            state["elapsed"] = time.monotonic() - start
            entry = {
                "step": state["step"],
                "seconds": round(state["elapsed"], 1),
                "loss": loss.item(),
                "train": parts,
            } | evaluate()
            state["history"].append(entry)
            save()
            if on_progress:
                on_progress(entry)
    state["elapsed"] = time.monotonic() - start
