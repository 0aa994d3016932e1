"""video/ streams: reader metadata and frames, writer formats, exact odd sizes, VFR policy."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from helpers import SAMPLES, make_audio_only, make_video, moving_frames, read_audio, shared
from ncodec.codec.errors import InputError, UsageError
from ncodec.video import MediaReader, VideoWriter, probe
from ncodec.video.metrics import psnr


def test_reader_metadata_and_frames(av_file):
    with MediaReader(av_file) as r:
        info = r.info
        frames = list(r.frames())
    assert (info.width, info.height, info.fps) == (96, 64, Fraction(25))
    assert info.frame_count == 25 and info.frame_count_exact
    assert info.duration == pytest.approx(1.0, abs=0.05)
    assert info.pix_fmt == "yuv420p" and info.rotation == 0 and not info.is_image
    assert [(a.codec, a.sample_rate, a.channels) for a in info.audio] == [("aac", 48000, 1)]
    assert len(frames) == 25 and frames[0].shape == (64, 96, 3) and frames[0].dtype == np.uint8
    assert psnr(frames[3], moving_frames(96, 64, 25)[3]) > 30  # decoded pixels are the ones written


def test_reader_streams_audio_packets(av_file):
    kinds = []  # a packet's stream must not be touched after its container closes, so look now
    with MediaReader(av_file) as r:
        n = sum(1 for _ in r.frames(audio_sink=lambda p: kinds.append(p.stream.type)))
    assert n == 25 and len(kinds) > 40 and set(kinds) == {"audio"}


def test_yuv_planes(clip):
    with MediaReader(clip) as r:
        y, u, v = next(r.yuv_frames())
    assert y.shape == (64, 96) and u.shape == (32, 48) and v.shape == (32, 48)


def test_still_image():
    info = probe(SAMPLES / "coffee.png")
    assert info.is_image and info.frame_count == 1 and (info.width, info.height) == (600, 400)
    with MediaReader(SAMPLES / "coffee.png") as r:
        (img,) = list(r.frames())
    import cv2

    expected = cv2.cvtColor(cv2.imread(str(SAMPLES / "coffee.png")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(img, expected)


@pytest.mark.parametrize(
    "suffix, codec, fmt",
    [(".mkv", "libx264", "matroska"), (".avi", "mpeg4", "avi"), (".y4m", "rawvideo", "yuv4mpegpipe")],
)
def test_reader_other_containers(tmp_path, suffix, codec, fmt):
    path = make_video(tmp_path / f"c{suffix}", codec=codec)
    info = probe(path)
    assert info.format.split(",")[0] == fmt and (info.width, info.height) == (96, 64)
    with MediaReader(path) as r:
        assert sum(1 for _ in r.frames()) == 12


def test_raw_h264_elementary_stream(tmp_path):
    path = make_video(tmp_path / "raw.h264", frames=10)
    info = probe(path)
    assert info.format == "h264" and info.frame_count == 10
    with MediaReader(path) as r:
        assert sum(1 for _ in r.frames()) == 10


def test_mpeg2_program_stream():
    info = probe(shared("eval", "video", "cityCC0.mpg"))
    assert (info.width, info.height, info.codec) == (720, 405, "mpeg2video")
    assert not info.frame_count_exact and info.frame_count == 190  # estimated from the duration


@pytest.mark.parametrize(
    "suffix, kwargs",
    [(".mp4", {}), (".mp4", {"codec": "h265"}), (".mkv", {"lossless": True}), (".y4m", {}), (".png", {})],
)
def test_odd_size_round_trips_exactly(tmp_path, suffix, kwargs):
    frames = moving_frames(177, 99, 1 if suffix == ".png" else 5)
    path = tmp_path / f"odd{suffix}"
    with VideoWriter(path, 177, 99, Fraction(25), **kwargs) as w:
        for f in frames:
            w.write(f)
    with MediaReader(path) as r:
        assert (r.info.width, r.info.height) == (177, 99)
        back = list(r.frames())
    assert len(back) == len(frames)
    for a, b in zip(frames, back):
        if kwargs.get("lossless") or suffix == ".png":
            assert np.array_equal(a, b)
        else:
            assert psnr(a, b) > 32


def test_writer_copies_audio_without_reencoding(tmp_path, av_file):
    out = tmp_path / "out.mkv"
    with MediaReader(av_file) as r:
        with VideoWriter(out, 96, 64, r.info.fps, audio_streams=r.audio_streams) as w:
            source_packets = []

            def sink(p):
                source_packets.append(bytes(p))
                w.audio.mux(p)

            for f in r.frames(audio_sink=sink):
                w.write(f)
    with av.open(str(out)) as c:
        copied = [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]
    assert copied == source_packets  # byte-identical packets: copied, not re-encoded
    # same tone; Matroska keeps no AAC priming trim, so up to one 1024-sample frame more is decoded
    src, dst = read_audio(av_file), read_audio(out)
    assert 0 <= len(dst) - len(src) <= 1024
    assert abs(np.sqrt(np.mean(dst**2)) - np.sqrt(np.mean(src**2))) < 0.01


def test_vfr_input_is_resampled_to_constant_rate(tmp_path):
    # 10 frames at 25 fps nominal, with a 3-slot gap after frame 4 and two frames squeezed into one slot
    pts = [0, 1, 2, 3, 4, 8, 9, 10, 10.5, 12]
    tb = Fraction(1, 50)
    path = make_video(tmp_path / "vfr.mkv", frames=10, pts=[int(p * 2) for p in pts], time_base=tb)
    with MediaReader(path) as r:
        fps = r.info.fps
        frames = list(r.frames())
    assert fps == 25
    assert len(frames) == 13  # one frame per 1/25 s slot from 0 to 12
    originals = moving_frames(96, 64, 10)

    def same(a, b):
        return psnr(a, b) > 40

    assert all(same(frames[s], originals[4]) for s in (4, 5, 6, 7))  # gap after 4 filled by repeats
    assert same(frames[8], originals[5]) and same(frames[10], originals[7])
    assert same(frames[11], originals[7])  # the frame at slot 10.5 was dropped, slot 11 repeats slot 10
    assert same(frames[12], originals[9])


@pytest.mark.parametrize("content, message", [(b"hello, not a video", "not a media file"), (None, "no such file")])
def test_bad_inputs(tmp_path, content, message):
    path = tmp_path / "x.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        MediaReader(path)


def test_truncated_mp4(tmp_path, clip):
    path = tmp_path / "cut.mp4"
    path.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    with pytest.raises(InputError):
        with MediaReader(path) as r:
            list(r.frames())


def test_audio_only_file_has_no_video(tmp_path):
    with pytest.raises(InputError, match="no video stream"):
        MediaReader(make_audio_only(tmp_path / "tone.m4a"))


def test_unknown_output_type(tmp_path):
    with pytest.raises(UsageError, match="unknown output type"):
        VideoWriter(tmp_path / "x.xyz", 16, 16, Fraction(25))
    assert list(tmp_path.iterdir()) == []


def test_rotation_is_applied(tmp_path):
    """A phone-style display matrix (90° counter-clockwise) is applied as players apply it."""
    path = tmp_path / "rot.mp4"
    img = np.zeros((32, 64, 3), np.uint8)
    img[:, :8] = 255  # a white band on the left of the stored picture
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 32, "yuv420p"
        s.set_display_rotation(90)
        for i in range(3):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    with MediaReader(path) as r:
        assert (r.info.width, r.info.height, r.info.rotation) == (32, 64, 270)
        frame = next(r.frames())
    assert frame.shape == (64, 32, 3)
    assert frame[-6:].mean() > 200 and frame[:-10].mean() < 30  # the band is now at the bottom


def test_frames_can_be_read_twice(clip):
    with MediaReader(clip) as r:
        first = list(r.frames())
        second = list(r.frames())
    assert len(first) == len(second) == 12 and np.array_equal(first[5], second[5])
