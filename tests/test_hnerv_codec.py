"""The HNeRV codec end to end on a tiny clip: a real bitstream whose decode equals the
encoder's own reconstruction, independent segments, corrupted sections rejected."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import make_video
from ncodec.codec.container import ContainerReader
from ncodec.codec.errors import BitstreamError
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
        assert [e.tag for e in r.index].count("HSEG") == 2  # 4 + 2 frames
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
    from ncodec.models.hnerv import HNeRVConfig

    cfg = HNeRVConfig.from_json(params["config"])
    payload, recon = HNERV.encode_segment(frames, cfg, params, 3, {})
    again = list(decode_segment(payload, cfg, 40, 64))
    assert len(recon) == len(again) == 3
    assert all(np.array_equal(a, b) for a, b in zip(recon, again))
    assert psnr(frames[0], recon[0]) > 5


def test_corrupted_segment_rejected(encoded):
    _, bits, _ = encoded
    with ContainerReader(bits) as r:
        header = r.header
        _, payload = next(r.sections("HSEG"))
    from ncodec.models.hnerv import HNeRVConfig

    cfg = HNeRVConfig.from_json(header.params["config"])
    for bad in (payload[:10], payload[:-5] , b"\x05abc"):
        with pytest.raises(BitstreamError):
            list(decode_segment(bad, cfg, header.height, header.width))
