"""The HNeRV codec end to end on a tiny clip: a real bitstream whose decode equals the
encoder's own reconstruction, independent segments, corrupted sections rejected."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import assert_one_line_error, make_video, run
from ncodec.codec.container import ContainerReader
from ncodec.codec.errors import BitstreamError, UsageError
from ncodec.codec.hnerv import HNERV, decode_segment
from ncodec.video import MediaReader, decode_file, encode_file
from ncodec.video.metrics import psnr


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hnerv")
    src = make_video(tmp / "clip.mp4", 64, 40, frames=6, audio="aac")
    bits = tmp / "clip.bin"
    res = encode_file(src, bits, "hnerv", options={"size": 20_000, "epochs": 15, "segment_frames": 4})
    return src, bits, res


def test_bitstream_and_quality(encoded):
    src, bits, res = encoded
    assert res.frames == 6 and res.bytes == bits.stat().st_size
    with ContainerReader(bits) as r:
        assert [e.tag for e in r.entries()].count("HSEG") == 2  # 4 + 2 frames
        assert r.header.params["config"]["height"] % 8 == 0
    out = decode_file(bits, bits.with_suffix(".mkv"), lossless=True, reference=src)
    assert out.frames == 6 and out.quality["psnr"] > 15  # a 15-epoch fit: far from good, but a picture
    with MediaReader(bits.with_suffix(".mkv")) as r:
        assert len(r.info.audio) == 1


def test_decode_equals_encoder_reconstruction(encoded):
    src, _, _ = encoded
    with MediaReader(src) as r:
        frames = list(r.frames())[:3]
    params = HNERV.params(64, 40, 25, {"size": 20_000, "epochs": 3, "segment_frames": 3})
    from fractions import Fraction

    from ncodec.codec.container import StreamHeader
    from ncodec.models.nets.hnerv import HNeRVConfig

    cfg = HNeRVConfig.from_json(params["config"])
    runtime = {"reconstruction": []}
    payload = HNERV.encode_segment(frames, StreamHeader(HNERV.tag, 64, 40, Fraction(25), 3, params=params), runtime)
    decoded = list(decode_segment(payload, cfg, 40, 64))
    assert len(decoded) == len(runtime["reconstruction"]) == 3
    assert all(np.array_equal(a, b) for a, b in zip(decoded, runtime["reconstruction"]))
    assert psnr(frames[0], decoded[0]) > 5


def test_corrupted_segment_rejected(encoded):
    _, bits, _ = encoded
    with ContainerReader(bits) as r:
        header = r.header
        _, payload = next(r.sections("HSEG"))
    from ncodec.models.nets.hnerv import HNeRVConfig

    cfg = HNeRVConfig.from_json(header.params["config"])
    for bad in (payload[:10], payload[:-5], b"\x05abc"):
        with pytest.raises(BitstreamError):
            list(decode_segment(bad, cfg, header.height, header.width))


def test_any_frame_decodes_on_its_own(encoded):
    from ncodec.codec.registry import by_tag
    from ncodec.video import decode_frame

    _, bits, _ = encoded
    with ContainerReader(bits) as r:
        everything = list(HNERV.decode(r.sections("HSEG"), r.header))
        assert by_tag(r.header.codec) is HNERV
    for i in (0, 3, 4, 5):  # first and last of each segment
        assert np.array_equal(decode_frame(bits, i), everything[i])
    with pytest.raises(UsageError):
        decode_frame(bits, 6)


def test_cli_decodes_one_frame_to_an_image(encoded, tmp_path):
    from ncodec.video import decode_frame
    from ncodec.video.images import read_image

    _, bits, _ = encoded
    out = tmp_path / "f4.png"
    r = run("decode", str(bits), str(out), "--frame", "4")
    assert r.returncode == 0, r.stderr
    assert np.array_equal(read_image(out)[0], decode_frame(bits, 4))
    assert_one_line_error(run("decode", bits, tmp_path / "f.png", "--frame", "99"), 2, "--frame must be in 0..5")
    assert_one_line_error(run("decode", bits, tmp_path / "f.mp4", "--frame", "1"), 2, "image extension")
    assert not (tmp_path / "f.png").exists() and not (tmp_path / "f.mp4").exists()


@pytest.mark.parametrize("loss", ["l2", "l1+ms-ssim"])
@pytest.mark.parametrize("fast", [False, True])
def test_fit_lowers_the_error(loss, fast):
    import torch

    from ncodec.models.nets.hnerv import HNeRV, make_config, pad_frames
    from ncodec.models.train.hnerv import fit

    torch.manual_seed(0)
    cfg = make_config(40, 64, 20_000)
    x = torch.linspace(0, 1, 64).expand(40, 64)
    frames = pad_frames(torch.stack([torch.stack([x, x.flip(1), x * 0.5])] * 3), cfg)
    model = HNeRV(cfg, encoder_dim=16)
    res = fit(model, frames, epochs=40, loss=loss, fast=fast)
    assert res.history[-1]["psnr"] > res.history[0]["psnr"] + 3
    assert next(model.parameters()).is_contiguous()  # the layout is given back for serialisation


def test_loss_option_validated():
    with pytest.raises(UsageError):
        HNERV.params(64, 40, 25, {"loss": "l3"})
    assert HNERV.params(64, 40, 25, {"loss": "l1+ms-ssim"})["loss"] == "l1+ms-ssim"


@pytest.mark.parametrize(
    "change",
    [
        {"widths": [4096, 4096, 4096, 4096, 4096, 4096]},  # ~10^11 weights
        {"strides": [], "widths": [8], "kernels": []},
        {"kernels": [0, 3, 5, 5, 5]},
        {"embed_channels": 100000},
    ],
)
def test_hostile_architecture_rejected_before_allocation(encoded, change):
    from dataclasses import replace

    _, bits, _ = encoded
    with ContainerReader(bits) as r:
        header = r.header
    cfg = dict(header.params["config"])
    cfg.update(change)
    hostile = replace(header, params=header.params | {"config": cfg})
    with pytest.raises(BitstreamError):
        list(HNERV.decode(iter(()), hostile))
