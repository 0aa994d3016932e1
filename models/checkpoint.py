"""Training checkpoints: model weights, Adam moments, and the recipe's own state (step,
elapsed time, history) as JSON metadata, in one safetensors file written atomically,
so that a later run resumes exactly (no pickles). Also the shipped weights' storage:
fp16, or int8 with one scale per output channel for the tensors a model says can take it
(half the download where most weights are large kernels)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file


def _params(opt: torch.optim.Optimizer) -> list[torch.nn.Parameter]:
    return [p for group in opt.param_groups for p in group["params"]]


def save_checkpoint(path: Path, model: torch.nn.Module, optimizers: dict[str, torch.optim.Optimizer], state: dict) -> None:
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


def load_checkpoint(path: Path, model: torch.nn.Module, optimizers: dict[str, torch.optim.Optimizer],
                    strict: bool = True) -> dict:  # fmt: skip
    """Restore ``model`` and ``optimizers`` in place; return the recipe's state."""
    with safe_open(str(path), "pt") as f:
        state = json.loads(f.metadata()["state"])
    tensors = load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=strict)
    for name, opt in optimizers.items():
        for i, p in enumerate(_params(opt)):
            if f"{name}.{i}.exp_avg" in tensors:
                opt.state[p] = {"step": torch.tensor(state[f"{name}_step.{i}"]),
                                "exp_avg": tensors[f"{name}.{i}.exp_avg"],
                                "exp_avg_sq": tensors[f"{name}.{i}.exp_avg_sq"]}  # fmt: skip
    return state


def train_until(
    minutes: float,
    val_every: float,
    state: dict,
    step: Callable[[float], tuple[torch.Tensor, dict]],
    evaluate: Callable[[], dict],
    save: Callable[[], None],
    on_progress: Callable[[dict], None] | None = None,
) -> None:
    """The time-budgeted loop of the recipes: ``step(progress)`` (progress = share of the
    budget used, for the schedule) until ``minutes`` of wall time including the
    ``state["elapsed"]`` of earlier runs; every ``val_every`` seconds and at the end, a
    history entry with ``evaluate()``'s fields, then ``save()`` and ``on_progress``."""
    budget = minutes * 60
    start, last_val = time.monotonic() - state["elapsed"], time.monotonic()
    while (elapsed := time.monotonic() - start) < budget:
        loss, parts = step(elapsed / budget)
        state["step"] += 1
        if time.monotonic() - last_val >= val_every or time.monotonic() - start >= budget:
            last_val = time.monotonic()
            state["elapsed"] = time.monotonic() - start
            entry = {"step": state["step"], "seconds": round(state["elapsed"], 1), "loss": loss.item(),
                     "train": parts} | evaluate()  # fmt: skip
            state["history"].append(entry)
            save()
            if on_progress:
                on_progress(entry)
    state["elapsed"] = time.monotonic() - start


INT8_SCALES = "@scale"  # key suffix of an int8 tensor's per-channel scales ('@' is in no parameter name)


def quantize_rows(t: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric quantisation with one scale per output channel (a row of the flattened
    tensor; a vector is one row): integer symbols (int64, shaped like ``t``) and float32
    scales. Zero stays exactly zero."""
    w = t.detach().double().reshape(t.shape[0] if t.ndim > 1 else 1, -1)
    levels = 2 ** (bits - 1) - 1
    scale = w.abs().amax(dim=1) / levels
    scale = torch.where(scale > 0, scale, torch.ones_like(scale)).float()
    q = torch.round(w / scale.double()[:, None]).clamp_(-levels, levels)
    return q.long().reshape(t.shape), scale


def dequantize_rows(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """float32 values of :func:`quantize_rows`' symbols; ValueError if the scales do not
    match the rows."""
    rows = q.shape[0] if q.ndim > 1 else 1
    if scale.shape != (rows,):
        raise ValueError(f"{tuple(scale.shape)} scales for {rows} rows")
    return (q.reshape(rows, -1).float() * scale.float()[:, None]).reshape(q.shape)


def storage_tensors(state: dict, int8: Callable[[str, torch.Tensor], bool] = lambda name, t: False) -> dict:
    """The tensors to write for shipped weights: fp16, except those ``int8(name, tensor)``
    picks, stored as int8 symbols plus float32 scales under ``name + INT8_SCALES``."""
    tensors = {}
    for name, t in state.items():
        if int8(name, t):
            q, scale = quantize_rows(t, 8)
            tensors[name], tensors[name + INT8_SCALES] = q.to(torch.int8).contiguous(), scale
        else:
            tensors[name] = t.detach().half().contiguous()
    return tensors


def read_weights(path) -> dict[str, torch.Tensor]:
    """The float32 state dict of shipped weights (fp16 and int8 tensors, see
    :func:`storage_tensors`); OSError, ValueError or SafetensorError if the file is not
    such weights."""
    stored = load_file(str(path))
    state = {}
    for name, t in stored.items():
        if name.endswith(INT8_SCALES):
            continue
        if name + INT8_SCALES in stored:
            state[name] = dequantize_rows(t, stored[name + INT8_SCALES])
        else:
            state[name] = t.float()
    return state


def load_model(path, build: Callable[[dict], torch.nn.Module]) -> torch.nn.Module:
    """An eval-mode float32 model from shipped safetensors weights whose metadata holds
    its config as JSON; ``build(config)`` makes the empty model. ValueError if the file is
    missing or not such weights."""
    try:
        with safe_open(str(path), "pt") as f:
            model = build(json.loads(f.metadata()["config"]))
        model.load_state_dict(read_weights(path))
    except (OSError, KeyError, TypeError, ValueError, RuntimeError, SafetensorError) as e:
        raise ValueError(f"{path}: not weights of this model ({e})") from None
    return model.eval()
