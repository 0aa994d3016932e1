"""Frame-level upscaling with the shipped ESPCN weights: no files, no PyAV.

>>> up = Upscaler(scale=3)
>>> big = up.upscale(rgb)            # HxWx3 uint8 -> 3H x 3W x 3 uint8
>>> bigs = up.upscale_batch(frames)  # N frames of one size at once
>>> y, u, v = up.upscale_yuv420([y, u, v])  # a video's 4:2:0 planes, no RGB round trip

Luma goes through ESPCN, chroma is upscaled bicubically (OpenCV). Large pictures are
processed in tiles whose margins cover the network's receptive field, so the result
equals the untiled one (no seams) while memory stays bounded by the tile size.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from .nets.espcn import ESPCN, FastESPCN
from .nets.precision import native_bf16
from .tiling import run_tiled
from .zoo import espcn_name, load_espcn, read_card

RECOMPILE_LIMIT = 64  # compiled sizes x networks before torch falls back to eager
TILE_MARGIN = 8  # LR pixels; the network sees 4 on each side and the bicubic chroma 2


BF16_MAX_COST_DB = 0.05  # the most Set5 PSNR-Y that "auto" may trade for bf16 speed


def auto_precision(scale: int, device: str = "cpu") -> str:
    """bf16 where the CPU runs it natively and the model card shows it costs at most
    BF16_MAX_COST_DB on Set5 (measured by benchmarks/sr_eval.py); fp32 otherwise."""
    if device != "cpu" or not native_bf16():
        return "fp32"
    try:
        set5 = read_card(espcn_name(scale))["scores_psnr_y"]["Set5"]
        cost = set5["espcn_fp32"] - min(set5["espcn_bf16"], set5.get("espcn_bf16_compiled", set5["espcn_bf16"]))
    except (OSError, KeyError, ValueError, TypeError):
        return "fp32"
    return "bf16" if cost <= BF16_MAX_COST_DB else "fp32"


def upscale_rgb(frames: np.ndarray, scale: int, upscale_y: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """N,H,W,3 uint8 RGB -> N,rH,rW,3: luma (OpenCV's full-range YCrCb) by ``upscale_y``
    (N,H,W uint8 -> N,rH,rW uint8), chroma bicubically."""
    n, h, w, _ = frames.shape
    ycc = [cv2.cvtColor(f, cv2.COLOR_RGB2YCrCb) for f in frames]
    big_y = upscale_y(np.stack([c[:, :, 0] for c in ycc]))
    out = np.empty((n, h * scale, w * scale, 3), np.uint8)
    for i, c in enumerate(ycc):
        chroma = cv2.resize(c, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)
        chroma[:, :, 0] = big_y[i]
        out[i] = cv2.cvtColor(chroma, cv2.COLOR_YCrCb2RGB)
    return out


def compiled(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """A FastESPCN method through TorchInductor with frozen weights, so that oneDNN gets
    pre-packed weights and each tanh runs fused into its convolution.

    Freezing is switched on in inductor's config around each call: passed as
    ``torch.compile(options={"freezing": True})`` it never reached the freezing pass
    (torch 2.14: the weights stayed graph inputs and no convolution was fused, so the
    tanh ran as a separate pass over the 64-channel activations). Shapes are static: with
    dynamic ones the fused convolution fails a layout assertion, so each picture size
    compiles once (seconds), which a stream of same-size frames pays once."""
    import logging

    import torch._dynamo.config as dynamo_config
    import torch._inductor.config as inductor_config

    # inductor's C++ toolchain probe logs a CUDA notice even for CPU code; not the user's concern
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    graph = torch.compile(fn, dynamic=False)

    def run(x: torch.Tensor) -> torch.Tensor:
        # the recompile limit counts every size and every network sharing this method's
        # code (x2/x3/x4, full/studio range, tiles): a long-running app needs more than 8
        with inductor_config.patch(freezing=True), dynamo_config.patch(recompile_limit=RECOMPILE_LIMIT):
            return graph(x)

    return run


class Upscaler:
    """Upscales uint8 RGB frames by 2, 3 or 4.

    ``precision``: "fp32", "bf16" (bfloat16 compute; its cost in dB per scale is in the
    model cards and docs/BENCHMARKS.md) or "auto" (see :func:`auto_precision`). ``tile``: pictures larger than
    tile x tile input pixels are processed in tiles of that side (0 = never tile).
    ``compile``: run the network through torch.compile (worth it for a stream of
    same-size frames: it fuses the tanh into the convolutions; the first frame pays the
    compilation, and a machine without a C++ compiler falls back to eager mode).
    """

    def __init__(
        self,
        scale: int,
        *,
        device: str = "cpu",
        precision: str = "auto",
        tile: int = 720,
        weights: str | Path | None = None,
        model: ESPCN | None = None,
        compile: bool = False,
    ):
        if precision == "auto":
            precision = auto_precision(scale, str(device))
        if precision not in ("fp32", "bf16"):
            raise ValueError("precision must be fp32, bf16 or auto")
        self.scale, self.device, self.precision, self.tile = scale, torch.device(device), precision, tile
        self._espcn, self._compile = model or load_espcn(scale, weights), compile
        self._nets: dict[str, list] = {}  # luma range -> [eager network, network in use]
        # channels-last is the faster layout for oneDNN's convolutions here (docs/BENCHMARKS.md)
        self.memory_format = torch.channels_last

    def _network(self, luma_range: str) -> list:
        """[eager, in use] networks for luma of ``luma_range`` (full: RGB pictures; studio:
        video planes), built on first use: the range is folded into the weights."""
        if luma_range not in self._nets:
            fast = FastESPCN(self._espcn, self.precision, luma_range).to(self.device)
            fast = fast.to(memory_format=self.memory_format)
            self._nets[luma_range] = [
                fast.subpixels_u8,
                compiled(fast.subpixels_u8) if self._compile else fast.subpixels_u8,
            ]
        return self._nets[luma_range]

    @torch.inference_mode()
    def _upscale_y(self, y: np.ndarray, luma_range: str = "full") -> np.ndarray:
        """N,h,w uint8 luma -> N,h*r,w*r uint8."""
        n, h, w = y.shape
        r = self.scale
        t = torch.from_numpy(y).to(self.device)[:, None].contiguous(memory_format=self.memory_format)
        nets = self._network(luma_range)
        try:
            sub = nets[1](t)
        except Exception as e:  # a compiler missing or failing here: eager gives the same function
            if nets[1] is nets[0]:
                raise
            warnings.warn(f"torch.compile failed ({type(e).__name__}); upscaling in eager mode", stacklevel=2)
            nets[1] = nets[0]
            sub = nets[0](t)
        # rounded first, then the bytes are shuffled: N,r*r,h,w (stored h,w,r*r) -> N,h*r,w*r
        sub = sub.cpu()
        return sub.view(n, r, r, h, w).permute(0, 3, 1, 4, 2).reshape(n, h * r, w * r).numpy()

    def upscale_batch(self, frames: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """N x H x W x 3 uint8 (one size) -> N x rH x rW x 3 uint8."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected N x H x W x 3 uint8 frames, got {frames.shape} {frames.dtype}")
        if self._tiled(frames.shape[1:3]):
            one = lambda rgb: upscale_rgb(rgb[None], self.scale, self._upscale_y)[0]  # noqa: E731
            return np.stack([self._upscale_tiled(f, one) for f in frames])
        return upscale_rgb(frames, self.scale, self._upscale_y)

    def upscale(self, rgb: np.ndarray) -> np.ndarray:
        """One H x W x 3 uint8 frame -> rH x rW x 3 uint8."""
        return self.upscale_batch(rgb[None])[0]

    def upscale_yuv420(self, planes: list[np.ndarray], full_range: bool = False) -> list[np.ndarray]:
        """One 4:2:0 picture as [Y (H x W), U, V (H/2 x W/2)] uint8 planes -> the same at
        r times the size: luma through the network, chroma bicubically, no RGB round trip
        (a video's own planes, so no colour matrix is involved). ``full_range``: Y in 0..255
        (yuvj) rather than studio 16..235."""
        y, u, v = planes
        h, w = y.shape
        if y.dtype != np.uint8 or h % 2 or w % 2 or u.shape != (h // 2, w // 2) or v.shape != u.shape:
            raise ValueError(f"expected uint8 4:2:0 planes of an even size, got {[p.shape for p in planes]}")
        r, luma_range = self.scale, "full" if full_range else "studio"
        whole = lambda plane: self._upscale_y(plane[None], luma_range)[0]  # noqa: E731
        big_y = self._upscale_tiled(y, whole) if self._tiled(y.shape) else whole(y)
        size = (w // 2 * r, h // 2 * r)
        return [big_y] + [cv2.resize(c, size, interpolation=cv2.INTER_CUBIC) for c in (u, v)]

    def _tiled(self, shape: tuple[int, ...]) -> bool:
        return bool(self.tile) and shape[0] * shape[1] > self.tile * self.tile  # bounded activations

    def _upscale_tiled(self, picture: np.ndarray, whole: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """``whole`` (H x W[ x C] -> rH x rW[ x C]) over tiles of ``tile`` px plus TILE_MARGIN
        of context on each side (models/tiling.py); the result equals the untiled one."""
        return run_tiled(picture, lambda pixels, _: whole(pixels), self.tile, scale=self.scale, margin=TILE_MARGIN)
