"""Training checkpoints: model weights, Adam moments, and the recipe's own state (step,
elapsed time, history) as JSON metadata, in one safetensors file written atomically,
so that a later run resumes exactly (no pickles)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
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
