"""`ncodec upscale` with the shipped weights: images (gray, alpha), videos with audio, bad input."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from helpers import SAMPLES, assert_one_line_error, make_video, run
from ncodec.video import MediaReader
from ncodec.video.metrics import psnr


def test_image_x2_close_to_source_detail(tmp_path):
    src = tmp_path / "small.png"
    full = cv2.imread(str(SAMPLES / "coffee.png"))
    small = cv2.resize(full, (300, 200), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(src), small)
    proc = run("upscale", src, tmp_path / "big.png", "--scale", "2", "-q")
    assert proc.returncode == 0, proc.stderr
    big = cv2.imread(str(tmp_path / "big.png"))
    assert big.shape == (400, 600, 3)
    bicubic = cv2.resize(small, (600, 400), interpolation=cv2.INTER_CUBIC)
    assert psnr(big, full) > psnr(bicubic, full) - 0.5  # at least bicubic quality against the original


def test_grayscale_and_alpha(tmp_path):
    gray = tmp_path / "g.png"
    cv2.imwrite(str(gray), np.tile(np.arange(64, dtype=np.uint8) * 4, (40, 1)))
    assert run("upscale", gray, tmp_path / "g3.png", "-s", "3", "-q").returncode == 0
    out = cv2.imread(str(tmp_path / "g3.png"), cv2.IMREAD_UNCHANGED)
    assert out.shape == (120, 192)
    rgba = tmp_path / "a.png"
    img = np.zeros((30, 40, 4), np.uint8)
    img[..., 1] = 200
    img[:, 20:, 3] = 255
    cv2.imwrite(str(rgba), img)
    assert run("upscale", rgba, tmp_path / "a4.webp", "-s", "4", "-q").returncode == 0
    out = cv2.imread(str(tmp_path / "a4.webp"), cv2.IMREAD_UNCHANGED)
    assert out.shape == (120, 160, 4) and out[:, :70, 3].max() < 10 and out[:, 90:, 3].min() > 245
    assert_one_line_error(run("upscale", rgba, tmp_path / "a.jpg", "-s", "2"), 2, "transparency")
    assert not (tmp_path / "a.jpg").exists()


def test_video_with_audio(tmp_path):
    src = make_video(tmp_path / "av.mp4", 64, 48, frames=10, audio="aac")
    proc = run("upscale", src, tmp_path / "up.mkv", "--scale", "3", "--crf", "16")
    assert proc.returncode == 0, proc.stderr
    assert "fps" in proc.stdout
    with MediaReader(tmp_path / "up.mkv") as r:
        assert (r.info.width, r.info.height) == (192, 144) and sum(1 for _ in r.frames()) == 10
    with av.open(str(src)) as a, av.open(str(tmp_path / "up.mkv")) as b:
        pa = [bytes(p) for p in a.demux(a.streams.audio[0]) if p.size]
        pb = [bytes(p) for p in b.demux(b.streams.audio[0]) if p.size]
    assert pa == pb


def test_420_video_keeps_its_colours_across_the_hd_line(tmp_path):
    """A 4:2:0 source is upscaled in its own planes; an untagged SD source (BT.601 by
    size) becoming HD (BT.709 by size) must be tagged 601 explicitly, or players would
    shift its colours."""
    src = make_video(tmp_path / "sd.mp4", 320, 240, frames=3)
    assert run("upscale", src, tmp_path / "hd.mp4", "-s", "3", "--crf", "10", "-q").returncode == 0
    with MediaReader(src) as a, MediaReader(tmp_path / "hd.mp4") as b:
        assert (b.info.width, b.info.height) == (960, 720) and b.info.colour.matrix == 6  # BT.601
        for small, big in zip(a.frames(), b.frames()):
            back = cv2.resize(big, (320, 240), interpolation=cv2.INTER_AREA)
            assert np.abs(back.mean((0, 1)) - small.mean((0, 1))).max() < 1.5  # no colour shift
            assert psnr(back, small) > 30


@pytest.mark.parametrize("pix_fmt", ["yuv420p10le", "yuv444p"])
def test_10bit_and_444_inputs_become_8bit_420(tmp_path, pix_fmt):
    src = make_video(tmp_path / "deep.mkv", 64, 48, frames=4, codec="ffv1", pix_fmt=pix_fmt)
    assert run("upscale", src, tmp_path / "up.mp4", "-s", "2", "-q").returncode == 0
    with MediaReader(tmp_path / "up.mp4") as r:
        assert (r.info.width, r.info.height, r.info.pix_fmt) == (128, 96, "yuv420p")


def test_library_call(tmp_path):
    from ncodec.video.upscale import upscale_file

    res = upscale_file(SAMPLES / "coffee.png", tmp_path / "c.png", 2)
    assert (res.width, res.height, res.frames) == (1200, 800, 1)


def test_bad_inputs(tmp_path, clip):
    text = tmp_path / "fake.png"
    text.write_text("not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    wide = tmp_path / "wide.png"
    cv2.imwrite(str(wide), np.zeros((8, 6000, 3), np.uint8))
    out = tmp_path / "out.png"
    assert_one_line_error(run("upscale", SAMPLES / "coffee.png", out, "--scale", "5"), 2, "--scale")
    assert_one_line_error(run("upscale", text, out, "-s", "2"), 1, "not an image")
    assert_one_line_error(run("upscale", empty, out, "-s", "2"), 1, "empty")
    assert_one_line_error(run("upscale", tmp_path / "none.png", out, "-s", "2"), 1, "no such file")
    assert_one_line_error(run("upscale", wide, tmp_path / "w.webp", "-s", "3"), 2, "too large for .webp")
    assert_one_line_error(run("upscale", SAMPLES / "coffee.png", tmp_path / "c.mp4", "-s", "2"), 2, "is an image")
    assert_one_line_error(run("upscale", clip, tmp_path / "c.png", "-s", "2"), 2, "is a video")
    assert_one_line_error(run("upscale", clip, tmp_path / "c.xyz", "-s", "2"), 2, "extension")
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(("out", "w.", "c.", ".")) or "part" in p.name]
    assert leftovers == []
