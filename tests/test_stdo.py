"""STDO's paper setting (--network espcn) end to end on a tiny clip: real LR stream +
overfitted models in the container, patch geometry, chunking, corrupted sections; and
the option validation of the STDO codec."""

from __future__ import annotations

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from helpers import make_video
from ncodec.codec import stdo_espcn
from ncodec.codec.classical import PACKET_SECTION
from ncodec.codec.container import ContainerReader, unpack_chunks
from ncodec.codec.entropy import decode_symbols
from ncodec.codec.errors import BitstreamError, UsageError
from ncodec.codec.stdo import STDO
from ncodec.models.nets import stdo
from ncodec.video import MediaReader, decode_file, encode_file
from ncodec.video.metrics import psnr

OPTIONS = {"network": "espcn", "base": "x264", "scale": 2, "steps": 15, "segment_frames": 4, "chunks": 2, "patch": 16}


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stdo")
    src = make_video(tmp / "clip.mp4", 70, 50, frames=6, audio="aac")  # odd LR size at x2: 35x25
    bits = tmp / "clip.bin"
    return src, bits, encode_file(src, bits, "stdo", options=OPTIONS)


def _bicubic_of_the_stream(bits) -> list[np.ndarray]:
    """The file's own low-resolution stream, decoded and upscaled bicubically (OpenCV)."""
    with ContainerReader(bits) as r:
        header, payloads = r.header, [p for _, p in r.sections("SSEG")]
    _, inner, lr_header = stdo_espcn.layout(header)
    frames = []
    for payload in payloads:
        chunks = unpack_chunks(payload)
        n = json.loads(chunks[0])["frames"]
        packets = ((PACKET_SECTION, c) for c in unpack_chunks(chunks[1]))
        for lr in inner.decode(packets, replace(lr_header, frame_count=n)):
            big = cv2.resize(lr, (lr.shape[1] * 2, lr.shape[0] * 2), interpolation=cv2.INTER_CUBIC)
            frames.append(big[: header.height, : header.width])
    return frames


def test_round_trip_beats_bicubic_of_the_same_stream(encoded):
    src, bits, res = encoded
    assert res.frames == 6 and res.bytes == bits.stat().st_size
    out = decode_file(bits, bits.with_suffix(".mkv"), lossless=True, reference=src)
    assert out.frames == 6
    with ContainerReader(bits) as r:
        assert [e.tag for e in r.entries()].count("SSEG") == 2 and r.header.has_audio
    with MediaReader(src) as r:
        originals = list(r.frames())
    bicubic = _bicubic_of_the_stream(bits)
    assert len(bicubic) == len(originals) == 6
    bicubic_psnr = float(np.mean([psnr(a, b) for a, b in zip(originals, bicubic)]))
    assert out.quality["psnr"] > bicubic_psnr, (out.quality["psnr"], bicubic_psnr)


def test_chunk_map_and_models_survive_the_container(encoded):
    _, bits, _ = encoded
    with ContainerReader(bits) as r:
        header = r.header
        payloads = [p for _, p in r.sections("SSEG")]
    rows, cols = stdo.patch_grid(25, 35, 16)
    for payload, frames in zip(payloads, (4, 2)):
        chunks = unpack_chunks(payload)
        assert len(chunks) == 3 + 2  # meta, LR stream, map, two models
        ids = decode_symbols(chunks[2], frames * rows * cols)
        assert set(np.unique(ids)) <= {0, 1}
        # equal-size chunks: the map splits the segment's patches in halves
        assert abs(int((ids == 0).sum()) - int((ids == 1).sum())) <= 1
    assert header.params["scale"] == 2 and header.params["lr_size"] == [35, 25]


def test_corrupted_segment_raises_bitstream_error(encoded):
    _, bits, _ = encoded
    with ContainerReader(bits) as r:
        header = r.header
        payload = next(r.sections("SSEG"))[1]
    chunks = unpack_chunks(payload)
    from ncodec.codec.container import pack_chunks

    bad = [
        payload[:20],
        b"\x03abc",
        pack_chunks([chunks[0], chunks[1], chunks[2][:3], *chunks[3:]]),
        pack_chunks([b'{"frames": 4, "models": 99, "delta": []}', *chunks[1:]]),
    ]
    for b in bad:
        with pytest.raises(BitstreamError):
            list(STDO.decode([("SSEG", b)], header))


def test_windows_cover_the_frame_and_reassemble():
    lr = (torch.rand(2, 1, 37, 50) * 255).to(torch.uint8)
    win = stdo.windows(lr, 16)
    assert win.shape == (2 * 3 * 4, 1, 16 + 2 * stdo.MARGIN, 16 + 2 * stdo.MARGIN)
    m = stdo.MARGIN
    assert torch.equal(win[4, 0, m:-m, m:-m], lr[0, 0, 16:32, 0:16])  # frame 0, row 1, column 0
    hr = (torch.rand(2, 1, 74, 100) * 255).to(torch.uint8)
    assert torch.equal(stdo.assemble(stdo.hr_patches(hr, 16, 2), 2, 74, 100, 16, 2), hr)


def test_chunking_and_joint_sampling():
    errors = torch.tensor([0.1, 0.9, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4])
    ids = stdo.chunk_by_difficulty(errors, 2)
    assert ids.tolist() == [1, 0, 0, 1, 0, 1, 0, 1]  # chunk 0: the four hardest
    ids4 = torch.arange(4).repeat_interleave(8)  # 8 patches in each of 4 chunks
    picked = stdo.joint_sample(ids4, 4)
    counts = [int((ids4[picked] == c).sum()) for c in range(4)]
    assert counts == [8, 4, 2, 1]


@pytest.mark.parametrize(
    "options, pattern",
    [
        ({"scale": 5}, "--scale"),
        ({"crf": 99}, "--crf"),
        ({"base": "vp9"}, "--base"),
        ({"chunks": 0}, "--chunks"),
        ({"chunks": 2}, "--chunks applies to --network espcn only"),
        ({"network": "espcn", "base": "av1", "scale": 2}, "x264 or x265"),
        ({"network": "espcn", "scale": 1, "base": "x264"}, "--scale 2, 3 or 4"),
        ({"base": "x264", "crf": 60}, "--crf must be in 0..51"),
        ({"base": "x264", "preset": "4"}, "--preset for --base x264"),
        ({"preset": "slow"}, "--preset for --base av1"),
    ],
)
def test_options_validated(options, pattern):
    with pytest.raises(UsageError, match=pattern):
        STDO.params(64, 48, 25, options)


def test_weights_round_trip_at_the_fixed_step():
    from ncodec.codec.stdo_espcn import WEIGHT_STEP, code_weights
    from ncodec.codec.weights import decode_state
    from ncodec.models.zoo import load_espcn

    generic = load_espcn(2).state_dict()
    torch.manual_seed(0)
    tuned = {k: v + 0.003 * torch.randn_like(v) for k, v in generic.items()}
    is_delta, coded = code_weights(tuned, generic)
    assert is_delta  # the full weights (up to ~10) do not fit the alphabet at this step
    back = decode_state(coded, {k: tuple(v.shape) for k, v in generic.items()})
    for k in generic:
        assert (back[k] + generic[k] - tuned[k]).abs().max() <= WEIGHT_STEP / 2 + 1e-7
    assert len(coded) < sum(v.numel() for v in generic.values())  # under a byte a weight (sigma/step = 12)


def test_frames_stream_to_a_player(encoded, tmp_path):
    from ncodec.video import MediaReader, decode_frames

    src, bits, _ = encoded
    frames = list(decode_frames(bits))
    decode_file(bits, tmp_path / "all.mkv", lossless=True)
    with MediaReader(tmp_path / "all.mkv") as r:
        written = list(r.frames())
    assert len(frames) == 6 and frames[0].shape == (50, 70, 3)
    assert all(np.array_equal(a, b) for a, b in zip(frames, written))


def test_more_chunks_than_patches(tmp_path):
    """A segment of 2 frames of one patch each asked for 4 chunks: 2 models, no empty chunk
    (this raised a RuntimeError from torch before)."""
    src = make_video(tmp_path / "tiny.mp4", 64, 48, frames=2)
    res = encode_file(
        src,
        tmp_path / "tiny.bin",
        "stdo",
        options={"network": "espcn", "base": "x264", "scale": 2, "steps": 2, "chunks": 4, "patch": 32},
    )
    out = decode_file(tmp_path / "tiny.bin", tmp_path / "tiny.mkv", lossless=True, reference=src)
    assert res.frames == out.frames == 2 and out.quality["psnr"] > 20
    with ContainerReader(tmp_path / "tiny.bin") as r:
        meta = unpack_chunks(next(r.sections("SSEG"))[1])[0]
    assert b'"models": 2' in meta
