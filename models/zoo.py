"""The zoo: the one place that knows the shipped weight files, how they are stored, their
model cards and their versions.

Shipped weights are immutable. Every version of a model lives in ``models/weights/`` as
``NAME-FINGERPRINT.safetensors`` with its model card ``NAME-FINGERPRINT.json`` beside it
(training data, the exact command, steps, measured scores); the fingerprint is the first
16 hex digits of the file's SHA-256, and it is what bitstreams record. ``index.json``
lists each model's versions, oldest first, with the full SHA-256 and the release that
first shipped them: encoders use the newest, decoders the one a file names. New weights
are added beside the old, never written over them (tests/test_golden.py checks every file
against its hash). Storage is fp16, or int8 with one scale per output channel for the
tensors a model says can take it (half the download where most weights are large
kernels).
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

WEIGHTS_DIR = Path(str(resources.files("ncodec.models") / "weights"))
INDEX_PATH = WEIGHTS_DIR / "index.json"
INT8_SCALES = "@scale"  # key suffix of an int8 tensor's per-channel scales ('@' is in no parameter name)


class UnknownWeights(LookupError):
    """Weights this installation does not ship (a file from a newer release, or a name
    that was never shipped)."""


@dataclass(frozen=True)
class Version:
    """One shipped version of a model's weights."""

    name: str
    fingerprint: str  # the first 16 hex digits of the file's SHA-256: what bitstreams record
    sha256: str
    release: str  # the first ncodec release that shipped it
    date: str  # when it was trained

    @property
    def path(self) -> Path:
        return WEIGHTS_DIR / f"{self.name}-{self.fingerprint}.safetensors"


@functools.cache
def index() -> dict[str, tuple[Version, ...]]:
    """Every shipped model's versions, oldest first (models/weights/index.json)."""
    raw = json.loads(INDEX_PATH.read_text())
    return {name: tuple(Version(name, **v) for v in versions) for name, versions in raw.items()}


def version(name: str, fingerprint: str | None = None) -> Version:
    """The shipped version of ``name`` whose fingerprint is ``fingerprint`` (the newest
    when None); UnknownWeights if this installation has none such."""
    versions = index().get(name, ())
    for v in reversed(versions):
        if fingerprint is None or v.fingerprint == fingerprint:
            return v
    raise UnknownWeights(f"{name} weights {fingerprint}" if fingerprint else f"no shipped weights called {name}")


def weights_path(name: str, fingerprint: str | None = None) -> Path:
    """The file of the shipped weights ``name`` (e.g. "espcn_x3", "mlic", "rrformer"): the
    newest version, or the one with ``fingerprint``."""
    return version(name, fingerprint).path


def card_path(weights: Path) -> Path:
    """Where the model card of ``weights`` lives: beside them, with .json."""
    return Path(weights).with_suffix(".json")


def read_card(name: str) -> dict:
    """The model card of the newest weights ``name``; {} if it is missing or unreadable."""
    try:
        card = json.loads(card_path(weights_path(name)).read_text())
    except (OSError, ValueError, UnknownWeights):
        return {}
    return card if isinstance(card, dict) else {}


def fingerprint(name: str) -> str:
    """The identity of the newest shipped weights ``name``, which bitstreams record."""
    return version(name).fingerprint


def file_fingerprint(path: Path) -> tuple[str, str]:
    """(fingerprint, SHA-256) of a weights file, as index.json records them."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return digest[:16], digest


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


def espcn_name(scale: int) -> str:
    return f"espcn_x{scale}"


def load_espcn(scale: int, path: str | Path | None = None):
    """The shipped ESPCN for ``scale`` (fp16 on disk, fp32 in memory), eval mode."""
    from .nets.espcn import ESPCN, SCALES

    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale}")
    path = Path(path) if path else weights_path(espcn_name(scale))
    if not path.is_file():
        raise FileNotFoundError(
            f"ESPCN x{scale} weights not found at {path}; reinstall ncodec or train them with "
            f"`ncodec train espcn --scale {scale}`"
        )
    model = ESPCN(scale)
    model.load_state_dict(read_weights(path))
    return model.eval()


def load_mlic(path=None):
    """An eval-mode MLICv2 from safetensors weights whose metadata holds its config (as
    written by ``ncodec train mlic``; the shipped ones by default); ValueError if the
    file is not such weights."""
    from .nets.mlicv2 import MLICConfig, MLICv2

    return load_model(path or weights_path("mlic"), lambda cfg: MLICv2(MLICConfig(**cfg)))


def load_rrformer(path=None):
    """An eval-mode RRFormer from safetensors weights whose metadata holds its config."""
    from .nets.rrformer import RRConfig, RRFormer

    def build(cfg: dict):
        return RRFormer(RRConfig(**(cfg | {"bins": tuple(cfg.get("bins", RRConfig.bins))})))

    return load_model(path or weights_path("rrformer"), build)


def load_enhance(name: str = "enhance_av1", path=None):
    """The enhancement network ``name`` (models/nets/enhance.py) in its quantised form, the
    one the integer decoder runs; ValueError if the file is not such weights."""
    from .nets.enhance import EnhanceConfig, Enhancer

    model = load_model(path or weights_path(name), lambda cfg: Enhancer(EnhanceConfig(**cfg)))
    model.quantised = True
    return model


def continued(card: dict, init: str | None) -> dict:
    """``card`` with the runs it continues (the card beside ``--init``, if any) listed
    under previous_runs, each with its validation history (the learning curve across
    sessions), and the steps and wall time summed over all of them."""
    try:
        before = json.loads(card_path(Path(init)).read_text()) if init else None
    except (OSError, ValueError):
        before = None
    if not isinstance(before, dict):
        return card
    runs = before.get("previous_runs", []) + [
        {k: v for k, v in before.items() if k not in ("previous_runs", "steps_total", "wall_seconds_total")}
    ]
    return card | {
        "previous_runs": runs,
        "steps_total": card["steps"] + sum(r.get("steps", 0) for r in runs),
        "wall_seconds_total": round(card["wall_seconds"] + sum(r.get("wall_seconds", 0) for r in runs), 1),
    }


def write_model(out_path: Path, tensors: dict, card: dict, metadata: dict, *, command: str, init: str | None) -> dict:
    """Weights (safetensors) and their model card (JSON beside them), each written to a
    temporary file and renamed. The card records ``command``, the exact command that made
    the weights, the date and the machine, and continues the card of ``init``'s weights.
    Returns the card written."""
    card = dict(card)
    card["recipe"] = {"command": command} | card.get("recipe", {})
    card |= {"date": datetime.date.today().isoformat(), "machine": f"{torch.get_num_threads()} torch threads, CPU"}
    card = continued(card, init)
    out_path = Path(out_path)
    for path, write in (
        (out_path, lambda p: save_file(tensors, str(p), metadata=metadata)),
        (card_path(out_path), lambda p: p.write_text(json.dumps(card, indent=2))),
    ):
        tmp = path.with_name(path.name + ".tmp")
        write(tmp)
        tmp.replace(path)
    return card
