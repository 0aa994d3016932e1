"""Learned image coding with the MLICv2-style model: real rANS bitstreams through
compressai.

z goes through the factorized EntropyBottleneck (its own rANS string); y through the
Gaussian conditional in one rANS stream, slice by slice, each slice in two checkerboard
passes (anchors, then non-anchors whose parameters see the decoded anchors). Symbols
are ``round(y - mean)``; the decoder adds the same means back.

The scales that select each symbol's CDF come from float networks, so encoder and
decoder must agree on them. The codec therefore runs the whole model in float64: thread
count, kernel choice or machine change results only in the last bits (measured: 6e-16
between 1 and 2 threads), and a CDF index or an output pixel changes only if a value
lies within that distance of a table boundary or of a rounding point, which float32 (1
and 2 threads gave different pixels) does not make rare enough. A CRC-32 of all y
symbols is stored, so a decoder whose state still diverged reports a BitstreamError
instead of returning a wrong picture.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from .container import StreamHeader, pack_chunks, parse_json, unpack_chunks
from .errors import BitstreamError, UsageError
from .options import Option
from .registry import Codec, Section, register
from .weights import named_weights, writer

PICTURE_TAG = "MLIF"  # one coded picture


@dataclass
class CodedImage:
    z: bytes  # EntropyBottleneck string
    y: bytes  # one rANS stream for every slice and pass
    z_size: tuple[int, int]
    y_crc: int


def _tables(model):
    gc = model.gaussian_conditional
    return gc.quantized_cdf.tolist(), gc.cdf_length.reshape(-1).int().tolist(), gc.offset.reshape(-1).int().tolist()


def prepare(model) -> None:
    """Build the entropy coders' CDF tables (after loading weights)."""
    from compressai.models.base import get_scale_table  # compressai's standard scale table

    model.gaussian_conditional.update_scale_table(get_scale_table(), force=True)
    model.entropy_bottleneck.update(force=True)


MAX_LATENT = 2.0**20  # far beyond any trained latent; compressai's escape coding needs int32 room


def compress(model, x, level: float, y=None) -> tuple[CodedImage, "object"]:
    """Code a padded 1,3,H,W picture (H, W multiples of model.PAD) at ``level``; returns the
    coded image and the reconstruction the decoder will produce. ``y``: latents to code
    instead of the analysis of ``x`` (after refinement)."""
    import torch
    from compressai.ans import BufferedRansEncoder

    from ncodec.models.nets.mlicv2 import checkerboard

    with torch.inference_mode():
        y = model.analysis_tiled(x) * model.gain(model.y_gain, level) if y is None else y
        if not torch.isfinite(y).all() or y.abs().max() > MAX_LATENT:  # rANS would loop on such symbols
            raise ValueError("latents out of range (not finite or beyond the coder's range)")
        z = model.h_a(y) * model.gain(model.z_gain, level)
        z_strings = model.entropy_bottleneck.compress(z)
        z_hat = model.entropy_bottleneck.decompress(z_strings, z.shape[-2:])
        hyper = model.h_s(z_hat * model.gain(model.z_inverse, level))
        gc = model.gaussian_conditional
        cdf, cdf_len, offset = _tables(model)
        mask = checkerboard(*y.shape[2:]).bool()
        encoder, crc = BufferedRansEncoder(), 0
        decoded = []
        for slice_model, y_i in zip(model.slices, y.chunk(model.cfg.slices, dim=1)):
            prev = torch.cat(decoded, dim=1) if decoded else None
            prev_slice = decoded[-1] if decoded else None
            y_hat = torch.zeros_like(y_i)
            for anchors_pass in (True, False):
                where = mask if anchors_pass else ~mask
                anchors = None if anchors_pass else y_hat
                means, scales = slice_model.entropy_params(hyper, prev, anchors, mask.to(hyper.dtype), prev_slice)
                symbols = torch.round(y_i - means)
                sel = where.expand_as(y_i)
                sym, idx = symbols[sel].int(), gc.build_indexes(scales)[sel].int()
                encoder.encode_with_indexes(sym.tolist(), idx.tolist(), cdf, cdf_len, offset)
                crc = zlib.crc32(sym.numpy().astype("<i4").tobytes(), crc)
                y_hat = torch.where(sel, symbols + means, y_hat)
            decoded.append(y_hat + slice_model.residual(hyper, prev, y_hat))
        x_hat = model.synthesis_tiled(torch.cat(decoded, dim=1) * model.gain(model.y_inverse, level))
    return CodedImage(z_strings[0], encoder.flush(), tuple(z.shape[-2:]), crc), x_hat.clamp(0, 1)


def decompress(model, coded: CodedImage, level: float):
    """The 1,3,H,W reconstruction of a coded image (H, W = 64 x the z size)."""
    import torch
    from compressai.ans import RansDecoder

    from ncodec.models.nets.mlicv2 import checkerboard

    zh, zw = coded.z_size
    yh, yw = zh * 4, zw * 4
    c = model.cfg.slice_channels
    with torch.inference_mode():
        z_hat = model.entropy_bottleneck.decompress([coded.z], (zh, zw))
        hyper = model.h_s(z_hat * model.gain(model.z_inverse, level))
        gc = model.gaussian_conditional
        cdf, cdf_len, offset = _tables(model)
        mask = checkerboard(yh, yw).bool()
        decoder, crc = RansDecoder(), 0
        # the rANS decoder may read a little past a damaged stream's end: give it zeros there
        decoder.set_stream(coded.y + bytes(8 + 4 * model.cfg.M * yh * yw))
        decoded = []
        for slice_model in model.slices:
            prev = torch.cat(decoded, dim=1) if decoded else None
            prev_slice = decoded[-1] if decoded else None
            y_hat = torch.zeros(1, c, yh, yw, dtype=hyper.dtype)
            for anchors_pass in (True, False):
                where = mask if anchors_pass else ~mask
                anchors = None if anchors_pass else y_hat
                means, scales = slice_model.entropy_params(hyper, prev, anchors, mask.to(hyper.dtype), prev_slice)
                sel = where.expand_as(y_hat)
                idx = gc.build_indexes(scales)[sel].int()
                sym = torch.tensor(decoder.decode_stream(idx.tolist(), cdf, cdf_len, offset), dtype=torch.int32)
                crc = zlib.crc32(sym.numpy().astype("<i4").tobytes(), crc)
                values = torch.zeros_like(y_hat)
                values[sel] = sym.to(values.dtype)
                y_hat = torch.where(sel, values + means, y_hat)
            decoded.append(y_hat + slice_model.residual(hyper, prev, y_hat))
        if crc != coded.y_crc:
            raise BitstreamError("image stream is corrupted (symbol checksum mismatch)")
        x_hat = model.synthesis_tiled(torch.cat(decoded, dim=1) * model.gain(model.y_inverse, level))
    return x_hat.clamp(0, 1)


def pad_to_multiple(x, multiple: int):
    """N,C,H,W -> edge-replicated to multiples of ``multiple`` (bottom/right)."""
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    return F.pad(x, (0, -w % multiple, 0, -h % multiple), mode="replicate")


# -- the registered codec ------------------------------------------------------------------

LEVELS = (0.0, 3.0)  # range of the rate level (MLICv2.LAMBDAS has one lambda per integer level)
MAX_REFINE_STEPS = 10_000


def weights_fingerprint() -> str:
    """The MLIC weights encoders use: the newest shipped."""
    from ncodec.models.zoo import fingerprint

    return fingerprint("mlic")


_MODELS: dict = {}


def shipped_model(dtype: str = "float64", fingerprint: str | None = None):
    """The shipped model (the newest, or the version with ``fingerprint``) in ``dtype``,
    loaded once, with its entropy coders' tables built. The codec runs in float64 (see
    the module docstring); refinement in float32."""
    fingerprint = fingerprint or weights_fingerprint()
    if (dtype, fingerprint) not in _MODELS:
        import torch

        from ncodec.models.zoo import load_mlic, weights_path

        try:
            model = load_mlic(weights_path("mlic", fingerprint))
        except ValueError as e:
            raise UsageError(f"the MLIC weights are missing or damaged; reinstall ncodec ({e})") from None
        model = model.to(getattr(torch, dtype))
        prepare(model)
        _MODELS[dtype, fingerprint] = model
    return _MODELS[dtype, fingerprint]


def to_tensor(rgb: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255


def to_uint8(x, height: int, width: int) -> np.ndarray:
    return (x[0, :, :height, :width].permute(1, 2, 0) * 255).round().byte().numpy()


class MLICCodec(Codec):
    name, tag = "mlic", "MLIC"
    description = "learned image codec (MLICv2-style, one model for every rate; each frame coded alone)"
    uses_torch = True
    quality_levels = {"low": {"level": 0.0}, "medium": {"level": 1.0}, "high": {"level": 2.0}, "best": {"level": 3.0}}

    def section_tags(self) -> tuple[str, ...]:
        return (PICTURE_TAG,)

    media = "image"
    options = (
        Option(
            "level",
            float,
            1.0,
            "rate level, 0 (smallest) .. 3 (best); fractions interpolate",
            low=LEVELS[0],
            high=LEVELS[1],
            in_app=True,
        ),
        Option(
            "refine",
            int,
            0,
            "steps of per-image latent refinement (SGA) at encode time",
            low=0,
            high=MAX_REFINE_STEPS,
            encoder_only=True,
        ),
    )

    def params(self, width: int, height: int, fps, options: dict) -> dict:
        return {"level": self.settings(options)["level"], "weights": weights_fingerprint()} | writer()

    def _model(self, header: StreamHeader):
        p = header.params
        try:
            level = float(p["level"])
        except (KeyError, TypeError, ValueError):
            raise BitstreamError("MLIC parameters are corrupted") from None
        if not LEVELS[0] <= level <= LEVELS[1]:
            raise BitstreamError("MLIC rate level out of range")
        fingerprint = str(p.get("weights"))
        named_weights("mlic", fingerprint, p)  # this installation ships them, or a clear error
        return shipped_model("float64", fingerprint), level

    def encode(
        self, frames: Iterable[np.ndarray], header: StreamHeader, runtime: dict | None = None
    ) -> Iterator[Section]:
        model, level = self._model(header)
        steps = (runtime or {}).get("settings", {}).get("refine", 0)
        for rgb in frames:
            x = pad_to_multiple(to_tensor(rgb), model.PAD)
            y = None
            if steps:
                from ncodec.models.nets.mlicv2 import refine_latents

                y = refine_latents(shipped_model("float32", header.params["weights"]), x, level, steps).double()
            coded, _ = compress(model, x.double(), level, y)
            meta = json.dumps({"z": list(coded.z_size), "crc": coded.y_crc}).encode()
            yield PICTURE_TAG, pack_chunks([meta, coded.z, coded.y])

    def decode(self, sections: Iterable[Section], header: StreamHeader) -> Iterator[np.ndarray]:
        model, level = self._model(header)
        expected = [math.ceil(header.height / model.PAD), math.ceil(header.width / model.PAD)]
        for _, payload in sections:
            chunks = unpack_chunks(payload)
            if len(chunks) != 3:
                raise BitstreamError("MLIC picture section is corrupted")
            try:
                meta = parse_json(chunks[0])
                z_size, crc = [int(v) for v in meta["z"]], int(meta["crc"])
            except (ValueError, KeyError, TypeError):
                raise BitstreamError("MLIC picture header is corrupted") from None
            if z_size != expected:
                raise BitstreamError("MLIC picture size does not match the stream header")
            x = decompress(model, CodedImage(chunks[1], chunks[2], tuple(z_size), crc), level)
            yield to_uint8(x, header.height, header.width)


MLIC = register(MLICCodec())
