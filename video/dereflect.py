"""`ncodec dereflect`: remove reflections from photos taken through glass, up to 8K and
beyond, in bounded memory.

``net`` runs the RRFormer-style network in blended overlapping tiles
(models/dereflector.py). ``classic`` is the closed-form DCT method of Yang et al. 2019
(models/nets/reflection_classic.py): seconds instead of minutes, weaker.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from ncodec.codec.atomic import check_output_path
from ncodec.codec.errors import InputError, UsageError

from .images import check_alpha, check_image_size, read_image, write_image
from .pipeline import progress_bar

METHODS = ("auto", "net", "classic")
DEFAULT_MAX_PIXELS = 7680 * 4320 * 2  # 8K with room; --max-pixels raises it


@dataclass
class DereflectResult:
    path: str
    method: str
    width: int
    height: int
    seconds: float

    def summary(self) -> str:
        return f"{self.path}: {self.width}x{self.height}, reflections removed ({self.method}) in {self.seconds:.1f} s"


def network_available() -> bool:
    from ncodec.models.zoo import weights_path

    return weights_path("rrformer").is_file()


def _check_size(src, max_pixels: int) -> None:
    """Refuse a picture over the pixel limit from its header, before decoding it."""
    from .reader import probe

    try:
        info = probe(src)
    except InputError:
        return  # read_image gives the precise error
    if info.width * info.height > max_pixels:
        raise InputError(
            f"{src}: {info.width}x{info.height} is over the limit of {max_pixels:,} pixels (raise it with --max-pixels)"
        )


def dereflect_file(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    method: str = "auto",
    tile: int | None = None,
    precision: str = "auto",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    threshold: float = 0.05,
    progress: bool = False,
) -> DereflectResult:
    """Remove reflections from the photo ``src`` and write ``dst`` (alpha and grayscale kept)."""
    if method not in METHODS:
        raise UsageError(f"--method must be one of {', '.join(METHODS)}")
    if tile is not None and not 128 <= tile <= 4096:
        raise UsageError("--tile must be between 128 and 4096 pixels")
    if precision not in ("auto", "fp32", "bf16"):
        raise UsageError("--precision must be auto, fp32 or bf16")
    if method == "auto":
        method = "net" if network_available() else "classic"
    if method == "net" and not network_available():
        raise UsageError("this ncodec ships no reflection-removal weights yet; use --method classic")
    start = time.perf_counter()
    check_output_path(dst, src)
    _check_size(src, max_pixels)
    rgb, alpha, gray = read_image(src, allow_16bit=False)
    h, w = rgb.shape[:2]
    check_image_size(dst, w, h)
    if alpha is not None:
        check_alpha(dst, src)
    if method == "classic":
        from ncodec.models.nets.reflection_classic import suppress_reflection

        out = suppress_reflection(rgb, threshold=threshold)
    else:
        from ncodec.models.dereflector import DEFAULT_TILE, dereflect_network, dereflect_tiles
        from ncodec.models.zoo import load_rrformer

        model, tile = load_rrformer(), tile or DEFAULT_TILE
        with progress_bar(dereflect_tiles(h, w, tile), "dereflect", progress, unit="tile") as bar:
            out = dereflect_network(rgb, model, tile=tile, precision=precision, on_tile=lambda: bar.update(1))
    write_image(dst, out, alpha=alpha, gray=gray)
    return DereflectResult(str(dst), method, w, h, time.perf_counter() - start)
