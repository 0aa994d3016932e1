"""Learned image coding with the MLICv2-style model: real rANS bitstreams through
compressai.

z goes through the factorized EntropyBottleneck (its own rANS string); y through the
Gaussian conditional in one rANS stream, slice by slice, each slice in two checkerboard
passes (anchors, then non-anchors whose parameters see the decoded anchors). Symbols
are ``round(y - mean)``; the decoder adds the same means back.

The scales that select each symbol's CDF come from float networks, so encoder and
decoder must compute them identically (same code, same shapes; this holds on one
machine and thread count, and across machines only as far as their float kernels
agree). A CRC-32 of all y symbols is stored, so a decoder whose state diverged reports a
BitstreamError instead of returning a wrong picture.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from .errors import BitstreamError


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


def compress(model, x, level: float) -> tuple[CodedImage, "object"]:
    """Code a padded 1,3,H,W picture (H, W multiples of model.PAD) at ``level``; returns the
    coded image and the reconstruction the decoder will produce."""
    import torch
    from compressai.ans import BufferedRansEncoder

    from ncodec.models.mlicv2 import checkerboard

    with torch.inference_mode():
        y = model.g_a(x) * model.gain(model.y_gain, level)
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
                means, scales = slice_model.entropy_params(hyper, prev, anchors, mask.float(), prev_slice)
                symbols = torch.round(y_i - means)
                sel = where.expand_as(y_i)
                sym, idx = symbols[sel].int(), gc.build_indexes(scales)[sel].int()
                encoder.encode_with_indexes(sym.tolist(), idx.tolist(), cdf, cdf_len, offset)
                crc = zlib.crc32(sym.numpy().astype("<i4").tobytes(), crc)
                y_hat = torch.where(sel, symbols + means, y_hat)
            decoded.append(y_hat + slice_model.residual(hyper, prev, y_hat))
        x_hat = model.g_s(torch.cat(decoded, dim=1) * model.gain(model.y_inverse, level))
    return CodedImage(z_strings[0], encoder.flush(), tuple(z.shape[-2:]), crc), x_hat.clamp(0, 1)


def decompress(model, coded: CodedImage, level: float):
    """The 1,3,H,W reconstruction of a coded image (H, W = 64 x the z size)."""
    import torch
    from compressai.ans import RansDecoder

    from ncodec.models.mlicv2 import checkerboard

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
            y_hat = torch.zeros(1, c, yh, yw)
            for anchors_pass in (True, False):
                where = mask if anchors_pass else ~mask
                anchors = None if anchors_pass else y_hat
                means, scales = slice_model.entropy_params(hyper, prev, anchors, mask.float(), prev_slice)
                sel = where.expand_as(y_hat)
                idx = gc.build_indexes(scales)[sel].int()
                sym = torch.tensor(decoder.decode_stream(idx.tolist(), cdf, cdf_len, offset), dtype=torch.int32)
                crc = zlib.crc32(sym.numpy().astype("<i4").tobytes(), crc)
                values = torch.zeros_like(y_hat)
                values[sel] = sym.float()
                y_hat = torch.where(sel, values + means, y_hat)
            decoded.append(y_hat + slice_model.residual(hyper, prev, y_hat))
        if crc != coded.y_crc:
            raise BitstreamError("image stream is corrupted (symbol checksum mismatch)")
        x_hat = model.g_s(torch.cat(decoded, dim=1) * model.gain(model.y_inverse, level))
    return x_hat.clamp(0, 1)


def pad_to_multiple(x, multiple: int):
    """N,C,H,W -> edge-replicated to multiples of ``multiple`` (bottom/right)."""
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    return F.pad(x, (0, -w % multiple, 0, -h % multiple), mode="replicate")

