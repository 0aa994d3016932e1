"""STDO's default design: base layer + the shipped enhancement network in exact integer
arithmetic + a per-segment bias update sent only when it pays. Real SVT-AV1 streams,
real rANS-coded updates."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
import torch

import ncodec
from helpers import REPO, make_video
from ncodec.codec.colour import planes_to_rgb
from ncodec.codec.container import ContainerReader, pack_chunks, unpack_chunks
from ncodec.codec.entropy import encode_symbols
from ncodec.codec.errors import BitstreamError
from ncodec.codec.stdo import STDO, delta_pays, packed_planes, parse_segment_record, segment_record
from ncodec.models.nets.enhance import (
    EnhanceConfig,
    Enhancer,
    IntegerEnhancer,
    bias_count,
    pack,
    unpack,
    upsample,
)
from ncodec.models.zoo import load_enhance
from ncodec.video import MediaReader, decode_file, encode_file

OPTIONS = {"segment_frames": 3, "steps": 20, "crf": 50, "scale": 1}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("enh") / "clip.mp4", 96, 64, frames=6)


@pytest.fixture(scope="module")
def coded(clip):
    bits = clip.with_name("auto.bin")
    encode_file(clip, bits, "stdo", options=OPTIONS)
    return bits


@pytest.fixture(scope="module")
def coded_at(clip):
    """The clip coded with --scale s (made once per scale)."""
    files = {}

    def coded(scale: int):
        if scale not in files:
            files[scale] = clip.with_name(f"x{scale}.bin")
            encode_file(clip, files[scale], "stdo", options=OPTIONS | {"scale": scale})
        return files[scale]

    return coded


@pytest.fixture(scope="module")
def coded_x2(coded_at):
    return coded_at(2)


def _record(chunk: bytes) -> dict:
    return parse_segment_record(chunk)._asdict()


def _with(meta: dict, **change) -> bytes:
    m = meta | change
    return segment_record(m["frames"], m["crf"], m["network"], m["delta"], m["scale"])


def _segments(bits):
    with ContainerReader(bits) as r:
        return r.header, [p for _, p in r.sections("SSEG")]


def test_round_trip_at_scale_1(clip, coded):
    out = decode_file(coded, coded.with_suffix(".mkv"), lossless=True, reference=clip)
    assert out.frames == 6 and out.quality["psnr"] > 25 and out.base["codec"] == "av1"
    header, payloads = _segments(coded)
    assert len(payloads) == 2 and header.params["network"] == "enhance" and header.params["base"] == "av1"


def test_a_segment_without_update_is_base_plus_the_generic_network(clip, tmp_path):
    """overfit=off: no update in any segment, and the decoded frames are exactly the
    integer network's output on the decoded base layer (or the base layer itself where
    the segment says the network did not help), converted to RGB."""
    bits = tmp_path / "off.bin"
    encode_file(clip, bits, "stdo", options=OPTIONS | {"overfit": "off"})
    header, payloads = _segments(bits)
    base = STDO._layout(header)[0]
    net = IntegerEnhancer(load_enhance())
    expected = []
    colour = STDO._layout(header)[1].colour
    from ncodec.codec.colour import output_colour

    for payload in payloads:
        meta, packets, update = unpack_chunks(payload)
        meta = _record(meta)
        assert meta["delta"] is False and update == b""
        _, inner = STDO._layout(header, meta["frames"])
        planes = packed_planes(base.decode_planes((("VPKT", c) for c in unpack_chunks(packets)), inner))
        y, u, v = unpack(net(planes, 50) if meta["network"] else planes)
        for i in range(len(y)):
            rgb = planes_to_rgb((y[i].numpy(), u[i].numpy(), v[i].numpy()), output_colour(colour, 64))
            expected.append(rgb)
    decoded = list(STDO.decode(iter(("SSEG", p) for p in payloads), header))
    assert len(decoded) == 6 and all(np.array_equal(a, b) for a, b in zip(decoded, expected))


def test_a_segment_without_the_network_decodes_as_its_base_codec_alone(coded):
    """ "network": false gives exactly the frames the base codec's own decoder gives."""
    header, payloads = _segments(coded)
    base, _ = STDO._layout(header)
    for payload in payloads:
        meta, packets, _ = unpack_chunks(payload)
        meta = _record(meta)
        plain = pack_chunks([_with(meta, network=False, delta=False), packets, b""])
        ours = list(STDO.decode(iter([("SSEG", plain)]), header))
        _, inner = STDO._layout(header, meta["frames"])
        theirs = list(base.decode((("VPKT", c) for c in unpack_chunks(packets)), inner))
        assert len(ours) == meta["frames"] and all(np.array_equal(a, b) for a, b in zip(ours, theirs))


def test_each_segment_is_sent_the_way_that_gives_the_source_the_least_rgb_error(clip, tmp_path):
    """Without updates the encoder picks, per segment, the base layer alone or the network,
    by the error of the pictures a decoder makes against the source frames (PSNR-RGB's)."""
    bits = tmp_path / "off.bin"
    encode_file(clip, bits, "stdo", options=OPTIONS | {"overfit": "off", "crf": 56})
    header, payloads = _segments(bits)
    with MediaReader(clip) as r:
        source = list(r.frames())
    first = 0
    for payload in payloads:
        meta, packets, _ = unpack_chunks(payload)
        meta = _record(meta)
        errors = {}
        for network in (False, True):
            variant = pack_chunks([_with(meta, network=network), packets, b""])
            frames = STDO.decode(iter([("SSEG", variant)]), header)
            errors[network] = sum(float(np.sum((f.astype(np.int64) - s) ** 2)) for f, s in zip(frames, source[first:]))
        assert meta["network"] == (errors[True] < errors[False]), errors
        first += meta["frames"]


def test_the_update_is_sent_only_when_it_pays():
    assert delta_pays(1000.0, 900.0, lam=1.0, nbytes=10)  # 100 less error for 88 bits
    assert not delta_pays(1000.0, 950.0, lam=1.0, nbytes=10)  # 50 for 88 bits
    assert not delta_pays(1000.0, 900.0, lam=float("inf"), nbytes=1)
    assert not delta_pays(1000.0, 1001.0, lam=0.0, nbytes=0)


def test_a_sent_update_changes_the_decoded_frames(coded):
    """Whatever the encoder decided per segment, a segment that carries an update decodes
    through the updated biases, and one that does not through the shipped ones."""
    header, payloads = _segments(coded)
    model = load_enhance()
    for payload in payloads:
        meta = _record(unpack_chunks(payload)[0])
        stripped = pack_chunks([_with(meta, delta=False), unpack_chunks(payload)[1], b""])
        a = list(STDO.decode(iter([("SSEG", payload)]), header))
        b = list(STDO.decode(iter([("SSEG", stripped)]), header))
        assert len(a) == len(b) == meta["frames"]
        assert any(not np.array_equal(x, y) for x, y in zip(a, b)) == meta["delta"]
    assert bias_count(model.cfg) == sum(len(c.bias) for c in model.convs)


def test_corrupted_updates_raise_bitstream_error(coded):
    header, payloads = _segments(coded)
    meta, packets, _ = unpack_chunks(payloads[0])
    n = bias_count(load_enhance().cfg)
    record = _record(meta)
    with_delta = _with(record, delta=True)
    bad = [
        pack_chunks([with_delta, packets, b"\x05garbage"]),
        pack_chunks([with_delta, packets, encode_symbols(np.full(n, 1 << 20))]),  # beyond the update's range
        pack_chunks([_with(record, delta=False), packets, b"\x01\x02"]),
        pack_chunks([_with(record, crf=99), packets, b""]),
        pack_chunks([_with(record, frames=0), packets, b""]),
        pack_chunks([_with(record, network=False, delta=True), packets, b"\x01"]),
        pack_chunks([bytes([16]) + meta[1:], packets, b""]),  # a flag bit the format does not define
        pack_chunks([bytes([8]) + meta[1:], packets, b""]),  # scale 3, which this file's header rules out
        pack_chunks([_with(record, scale=2), packets, b""]),  # half size, which this file's header rules out
        pack_chunks([meta + b"\x00", packets, b""]),  # trailing bytes
        pack_chunks([meta[:2], packets, b""]),  # no frame count
        pack_chunks([b"", packets, b""]),
        pack_chunks([meta, packets]),
        # the JSON records of files before release 1.1.0 are checked as strictly
        pack_chunks([b'{"frames": 0, "crf": 30, "network": true, "delta": false}', packets, b""]),
        pack_chunks([b'{"frames": 3, "crf": 30, "network": true}', packets, b""]),  # no delta flag
        pack_chunks([b'{"frames": 3, "crf": 99, "network": true, "delta": false}', packets, b""]),
    ]
    for payload in bad:
        with pytest.raises(BitstreamError):
            list(STDO.decode(iter([("SSEG", payload)]), header))


def test_a_file_naming_weights_this_release_lacks_says_which(coded):
    header, payloads = _segments(coded)
    header.params["fingerprint"] = "0123456789abcdef"
    assert header.params["release"] == ncodec.__version__
    with pytest.raises(
        BitstreamError, match=f"enhance_av1 weights 0123456789abcdef.*ncodec {ncodec.__version__} or later"
    ):
        list(STDO.decode(iter(("SSEG", p) for p in payloads), header))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_round_trip_at_reduced_size(clip, coded_at, scale):
    """--scale s: every segment's base stream is coded at 1/s of the picture's size (rounded
    up) and the scale-s network restores and upscales it to the picture's size."""
    bits = coded_at(scale)
    out = decode_file(bits, bits.with_suffix(".mkv"), lossless=True, reference=clip)
    with MediaReader(bits.with_suffix(".mkv")) as r:
        assert (r.info.width, r.info.height) == (96, 64)
    assert out.frames == 6 and out.quality["psnr"] > {2: 25, 3: 22, 4: 20}[scale]
    assert out.base["codec"] == "av1 (reduced-size segments upscaled bilinearly)"
    header, payloads = _segments(bits)
    assert header.params["scales"] == [scale] and header.params[f"x{scale}_weights"] == f"enhance_av1_x{scale}"
    assert [_record(unpack_chunks(p)[0])["scale"] for p in payloads] == [scale, scale]
    assert STDO._layout(header, 3, scale)[1].width == -(-96 // scale)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_a_reduced_size_segment_decodes_to_its_base_layer_upscaled_by_the_network_or_bilinearly(coded_at, scale):
    """With the network: exactly the scale-s integer network's output on the decoded
    reduced-size planes; without it: those planes upscaled by the fixed bilinear filter."""
    from ncodec.codec.colour import output_colour

    header, payloads = _segments(coded_at(scale))
    base = STDO._layout(header)[0]
    net = IntegerEnhancer(load_enhance(f"enhance_av1_x{scale}"))
    colour = output_colour(header.colour, header.height)
    for payload in payloads:
        meta, packets, _ = unpack_chunks(payload)
        record = _record(meta)
        _, inner = STDO._layout(header, record["frames"], scale)
        planes = packed_planes(base.decode_planes((("VPKT", c) for c in unpack_chunks(packets)), inner))
        for network, expected_planes in ((False, upsample(planes, scale)), (True, net(planes, record["crf"]))):
            variant = pack_chunks([_with(record, network=network, delta=False), packets, b""])
            ours = list(STDO.decode(iter([("SSEG", variant)]), header))
            y, u, v = unpack(expected_planes)
            theirs = [
                planes_to_rgb((y[i].numpy(), u[i].numpy(), v[i].numpy()), colour)[:64, :96] for i in range(len(y))
            ]
            assert len(ours) == record["frames"] and all(np.array_equal(a, b) for a, b in zip(ours, theirs))


def _two_kinds_of_content(path):
    """Three smooth frames (a soft gradient moving), then three of one-pixel stripes, which
    a half-size base layer cannot carry at all."""
    import av

    y, x = np.mgrid[0:64, 0:96]
    with av.open(str(path), "w") as c:
        vs = c.add_stream("ffv1", rate=25)
        vs.width, vs.height, vs.pix_fmt = 96, 64, "yuv444p"
        for i in range(6):
            if i < 3:
                rgb = np.stack([x * 2 + i, y * 3, 128 + (x - y) // 2], -1)
            else:
                rgb = np.stack([(x + i) % 2 * 200 + 20, (y % 2) * 160 + 40, ((x + y + i) % 2) * 180 + 30], -1)
            frame = av.VideoFrame.from_ndarray(rgb.clip(0, 255).astype(np.uint8), format="rgb24")
            c.mux(vs.encode(frame.reformat(format="yuv444p")))
        c.mux(vs.encode(None))
    return path


def test_the_scale_is_chosen_per_segment_by_rate_distortion_cost(tmp_path):
    """Unset --scale: each segment goes the way with the least D + lambda R. A smooth
    segment is sent at half size (at a finer crf); stripes
    one pixel wide, which downscaling erases, at full size."""
    src = _two_kinds_of_content(tmp_path / "two.mkv")
    options = {"segment_frames": 3, "overfit": "off", "crf": 44}
    auto, full = tmp_path / "auto.bin", tmp_path / "full.bin"
    encode_file(src, auto, "stdo", options=options)
    encode_file(src, full, "stdo", options=options | {"scale": 1})
    header, payloads = _segments(auto)
    assert header.params["scales"] == [1, 2]
    records = [_record(unpack_chunks(p)[0]) for p in payloads]
    assert [r["scale"] for r in records] == [2, 1]
    assert records[0]["crf"] < 44 and records[1]["crf"] == 44
    assert payloads[1] == _segments(full)[1][1]  # the same choice gives the same bytes


def test_corrupted_scale_decisions_raise_bitstream_error(coded_x2):
    header, payloads = _segments(coded_x2)
    meta, packets, _ = unpack_chunks(payloads[0])
    record = _record(meta)
    bad_records = [
        pack_chunks([_with(record, scale=1), packets, b""]),  # full size, which this header rules out
        pack_chunks([_with(record, delta=True), packets, encode_symbols(np.zeros(7, np.int64))]),  # wrong count
    ]
    for payload in bad_records:
        with pytest.raises(BitstreamError):
            list(STDO.decode(iter([("SSEG", payload)]), header))
    bad_headers = [
        {"scales": [3]},
        {"scales": []},
        {"scales": "2"},
        {"scales": [2, 2]},
        {"x2_weights": "enhance_av1", "x2_fingerprint": header.params["fingerprint"]},  # a scale-1 network
        {"x2_fingerprint": "0123456789abcdef"},
    ]
    for change in bad_headers:
        broken = dataclasses.replace(header, params=header.params | change)
        with pytest.raises(BitstreamError):
            list(STDO.decode(iter([("SSEG", payloads[0])]), broken))
    without = dataclasses.replace(header, params={k: v for k, v in header.params.items() if k != "x2_weights"})
    with pytest.raises(BitstreamError, match="reduced-size segments without their network"):
        list(STDO.decode(iter([("SSEG", payloads[0])]), without))


@pytest.mark.parametrize(
    "cfg",
    [
        EnhanceConfig(8, 3),
        EnhanceConfig(8, 6, quarter=3),
        EnhanceConfig(8, 6, quarter=3, scale=2),
        EnhanceConfig(8, 5, scale=3),
        EnhanceConfig(8, 6, quarter=3, scale=4),
        EnhanceConfig(8, 4, luma=6, luma_layers=4),
        EnhanceConfig(8, 6, quarter=3, luma=4, luma_layers=3),
    ],
    ids=["plain", "unet", "unet-x2", "plain-x3", "unet-x4", "luma", "unet-luma"],
)
def test_integer_network_follows_its_quantised_float_form(cfg):
    """Also at odd sides (21 rows at half resolution), where the U-Net's way back up has
    one row more than its skip."""
    torch.manual_seed(0)
    model = Enhancer(cfg)
    for conv in model.convs:
        torch.nn.init.normal_(conv.weight, std=0.1)
        torch.nn.init.normal_(conv.bias, std=0.02)
    planes = (torch.rand(2, 6, 21, 24) * 255).round()
    model.calibrate(planes, torch.tensor([30.0, 30.0]))
    model.quantised = True
    with torch.no_grad():
        float_out = model(planes, 30).round().clamp(0, 255)
    int_out = IntegerEnhancer(model)(planes.to(torch.uint8), 30).float()
    assert (float_out - int_out).abs().max() <= 1
    assert (float_out != int_out).float().mean() < 0.01


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_the_upscaling_networks_fixed_upsampling_is_bilinear_and_exact(scale):
    """What a scale-s network adds its corrections to: each plane s times as large by the
    bilinear filter (edges repeated), in integers; the untrained network gives exactly it."""
    y, u, v = torch.randint(0, 256, (2, 10, 14)), torch.randint(0, 256, (2, 5, 7)), torch.randint(0, 256, (2, 5, 7))
    planes = pack(y, u, v).to(torch.uint8)
    up = upsample(planes, scale)
    for got, plane in zip(unpack(up), (y, u, v)):
        want = torch.nn.functional.interpolate(plane[:, None].double(), scale_factor=scale, mode="bilinear")[:, 0]
        assert got.shape == want.shape and torch.equal(got.long(), torch.round(want).long())
    model = Enhancer(EnhanceConfig(8, 3, scale=scale))
    model.calibrate(planes.float(), torch.tensor([30.0, 30.0]))
    model.quantised = True
    assert torch.equal(IntegerEnhancer(model)(planes, 30), up)


def test_pack_and_unpack_are_inverse():
    y, u, v = torch.randint(0, 256, (2, 8, 10)), torch.randint(0, 256, (2, 4, 5)), torch.randint(0, 256, (2, 4, 5))
    for a, b in zip(unpack(pack(y, u, v)), (y, u, v)):
        assert torch.equal(a, b)


DIGEST = """
import hashlib, sys, torch
from ncodec.codec.stdo import packed_planes
from ncodec.models.nets.enhance import IntegerEnhancer
from ncodec.models.zoo import load_enhance
from ncodec.video import MediaReader
torch.set_num_threads(int(sys.argv[2]))
from ncodec.codec.colour import frame_planes
import av
with av.open(sys.argv[1]) as c:
    planes = [frame_planes(f.reformat(format="yuv420p")) for _, f in zip(range(4), c.decode(video=0))]
out = IntegerEnhancer(load_enhance())(packed_planes(planes), 40)
print(hashlib.sha256(out.numpy().tobytes()).hexdigest())
"""


def test_the_network_gives_the_same_pixels_under_every_kernel_path():
    """The decoder's arithmetic does not depend on the CPU: the same planes through the
    integer network give the same bytes with 1 or 2 threads and with PyTorch and oneDNN
    held to their plainest kernels (a stand-in for an older CPU)."""
    sample = str(REPO / "samples" / "city.mp4")
    digests = set()
    for threads, env in (("2", {}), ("1", {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "AVX2"})):
        proc = subprocess.run(
            [sys.executable, "-c", DIGEST, sample, threads],
            capture_output=True,
            text=True,
            env=os.environ | env,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        digests.add(proc.stdout.strip())
    assert len(digests) == 1


@pytest.mark.parametrize("width, height", [(35, 21), (1, 1), (3, 5)])
def test_odd_and_tiny_clips_round_trip(tmp_path, width, height):
    """Odd sizes and pictures smaller than SVT-AV1 accepts: padded for the base layer,
    cropped back on decode."""
    src = make_video(tmp_path / "in.mkv", width, height, frames=2, codec="ffv1", pix_fmt="yuv444p")
    bits = tmp_path / "odd.bin"
    encode_file(src, bits, "stdo", options={"steps": 2})
    out = decode_file(bits, tmp_path / "odd.mkv", lossless=True, reference=src)
    with MediaReader(tmp_path / "odd.mkv") as r:
        assert (r.info.width, r.info.height) == (width, height)
    assert out.frames == 2


def test_header_keeps_encoder_only_settings_out():
    params = STDO.params(64, 48, Fraction(25), {"steps": 5, "overfit": "off", "time_budget": 10.0})
    assert not {"steps", "overfit", "time_budget", "seed"} & set(params)


def test_train_enhance_writes_weights_the_codec_can_load(tmp_path):
    import shutil

    from helpers import SAMPLES, assert_one_line_error, run

    data = tmp_path / "photos"
    data.mkdir()
    for name in ("astronaut.png", "coffee.png"):
        shutil.copy(SAMPLES / name, data / name)
    out = tmp_path / "enh.safetensors"
    proc = run("train", "enhance", "--data", data, "--out", out, "--steps", "4", "--passes", "1", "--frames", "3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["steps"] == 4 and card["parameters"] == 23_670 and card["base"]["codec"] == "av1"
    assert card["recipe"]["command"].startswith("ncodec train enhance --data")
    model = load_enhance(path=out)
    assert model.quantised and bias_count(model.cfg) == 126
    assert_one_line_error(run("train", "enhance", "--data", data, "--out", out, "--frames", "1"), 2, "--frames")
    assert_one_line_error(run("train", "enhance", "--data", data, "--out", out, "--channels", "500"), 2, "overflow")


def test_a_luma_branch_grown_onto_trained_weights_starts_as_them():
    """A full-resolution luma branch added to weights without one (``start_from``) leaves
    their output unchanged until it trains: its output layer starts at zero."""
    from ncodec.models.train.enhance import start_from

    shipped = load_enhance()
    grown = Enhancer(dataclasses.replace(shipped.cfg, luma=6, luma_layers=4))
    start_from(grown, shipped.state_dict())
    grown.quantised = True
    planes = torch.randint(0, 256, (1, 6, 16, 24), dtype=torch.uint8)
    assert torch.equal(IntegerEnhancer(grown)(planes, 40), IntegerEnhancer(shipped)(planes, 40))
    assert grown.cfg.to_json() == shipped.cfg.to_json() | {"luma": 6, "luma_layers": 4}
    assert bias_count(grown.cfg) == bias_count(shipped.cfg) + 6 * 3 + 1
    with pytest.raises(ValueError, match="luma branch needs scale 1"):
        EnhanceConfig(8, 3, scale=2, luma=4)
    with pytest.raises(ValueError, match="not of this network"):
        start_from(Enhancer(EnhanceConfig(8, 3, luma=4)), shipped.state_dict())


def test_train_enhance_x2_unet_writes_a_network_that_upscales(tmp_path):
    """--scale 2 pairs pans coded at half size with their full-size source; --quarter gives
    the U-Net body. The weights load with their config and the network doubles the size."""
    import shutil

    from helpers import SAMPLES, assert_one_line_error, run

    data = tmp_path / "photos"
    data.mkdir()
    for name in ("astronaut.png", "coffee.png"):
        shutil.copy(SAMPLES / name, data / name)
    out = tmp_path / "x2.safetensors"
    args = ["train", "enhance", "--data", data, "--out", out, "--passes", "1", "--frames", "3", "--crop", "24"]
    proc = run(*args, "--steps", "4", "--scale", "2", "--layers", "6", "--quarter", "3", "--channels", "8")
    assert proc.returncode == 0, proc.stderr[-2000:]
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["config"] == {"channels": 8, "layers": 6, "quarter": 3, "scale": 2}
    assert "coded at 1/2 size" in card["model"]
    model = load_enhance(path=out)
    assert model.cfg == EnhanceConfig(8, 6, quarter=3, scale=2)
    planes = torch.randint(0, 256, (1, 6, 12, 16), dtype=torch.uint8)
    assert IntegerEnhancer(model)(planes, 40).shape == (1, 6, 24, 32)
    assert_one_line_error(run(*args, "--scale", "5"), 2, "--scale")
    assert_one_line_error(run(*args, "--quarter", "4"), 2, "U-Net")
    x3 = tmp_path / "x3.safetensors"
    args[args.index(out)] = x3
    proc = run(*args, "--steps", "2", "--scale", "3", "--layers", "3", "--channels", "4")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert IntegerEnhancer(load_enhance(path=x3))(planes, 40).shape == (1, 6, 36, 48)
