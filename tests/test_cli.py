"""The `ncodec` command: success paths, and every bad input gives one line, a non-zero
exit and no output file."""

from __future__ import annotations

import json
import os
import struct
import zlib

import pytest

import ncodec
from helpers import SAMPLES, assert_one_line_error, make_audio_only, run


def test_version_and_help():
    assert run("--version").stdout.strip() == f"ncodec {ncodec.__version__}"
    for cmd in ("encode", "decode", "info", "bench"):
        proc = run(cmd, "--help")
        assert proc.returncode == 0 and "usage: ncodec" in proc.stdout
    assert "x265" in run("encode", "--help").stdout


def test_encode_decode_info(tmp_path, clip):
    proc = run("encode", clip, tmp_path / "c.bin", "--codec", "x265", "--crf", "24", "--quiet")
    assert proc.returncode == 0 and proc.stdout == ""
    proc = run("decode", tmp_path / "c.bin", tmp_path / "c.mp4", "--reference", clip)
    assert proc.returncode == 0 and "PSNR" in proc.stdout
    info = json.loads(run("info", tmp_path / "c.bin", "--json").stdout)
    assert info["codec"] == "x265" and info["frame_count"] == 12 and info["params"]["crf"] == 24
    media = json.loads(run("info", tmp_path / "c.mp4", "--json").stdout)
    assert media["kind"] == "media" and media["width"] == 96


@pytest.fixture
def bits(tmp_path, clip):
    path = tmp_path / "good.bin"
    assert run("encode", clip, path, "--codec", "x264", "-q").returncode == 0
    return path


def damaged(bits, tmp_path, how):
    data = bytearray(bits.read_bytes())
    params_len = struct.unpack_from("<H", data, 36)[0]
    first = 38 + params_len + 4
    if how == "header":
        data[12] ^= 0xFF
    elif how == "section length":
        data[first + 4 : first + 8] = struct.pack("<I", 0x0FFFFFFF)
    elif how == "payload":
        data[first + 12 + 40] ^= 0xFF
    elif how == "truncated":
        data = data[: len(data) // 2]
    path = tmp_path / f"bad-{how.replace(' ', '_')}.bin"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    "how, pattern",
    [
        ("header", "header is corrupted"),
        ("section length", "truncated"),
        ("payload", "CRC32"),
        ("truncated", "truncated"),
    ],
)
def test_corrupted_bitstreams(tmp_path, bits, how, pattern):
    proc = run("decode", damaged(bits, tmp_path, how), tmp_path / "out.mp4")
    assert_one_line_error(proc, 1, pattern)
    assert not (tmp_path / "out.mp4").exists()


def test_absurd_dimensions(tmp_path):
    fixed = struct.pack("<4sBB4sIIIIIBBBBHH", b"NCDC", 1, 0, b"x264", 1 << 30, 1 << 30, 25, 1, 1, 2, 2, 2, 0, 0, 0)
    path = tmp_path / "huge.bin"
    path.write_bytes(fixed + struct.pack("<I", zlib.crc32(fixed)))
    assert_one_line_error(run("decode", path, tmp_path / "out.mp4"), 1, "outside the limit")
    assert_one_line_error(run("info", path), 1, "outside the limit")


def make_inputs(tmp_path, clip):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(clip.read_bytes()[:600])
    audio_only = make_audio_only(tmp_path / "tone.m4a")
    return {"missing": tmp_path / "nope.mp4", "text": text, "truncated": truncated, "audio only": audio_only}


@pytest.mark.parametrize(
    "kind, code, pattern",
    [
        ("missing", 1, "no such file"),
        ("text", 1, "not a media file"),
        ("truncated", 1, "cut.mp4"),
        ("audio only", 1, "no video stream"),
    ],
)
def test_bad_inputs(tmp_path, clip, kind, code, pattern):
    src = make_inputs(tmp_path, clip)[kind]
    out = tmp_path / "out.bin"
    assert_one_line_error(run("encode", src, out), code, pattern)
    assert not out.exists()


def test_bad_requests(tmp_path, clip):
    assert_one_line_error(run("encode", clip, tmp_path / "x.bin", "--codec", "nope"), 2, "unknown codec 'nope'")
    assert_one_line_error(run("encode", clip, clip), 2, "same file as the input")
    assert_one_line_error(run("encode", clip, tmp_path / "missing-dir" / "x.bin"), 2, "does not exist")
    assert_one_line_error(run("encode", clip), 2, "required")
    assert_one_line_error(run("encode", clip, tmp_path / "x.bin", "--crf", "99"), 2, "--crf")
    assert_one_line_error(run("decode", clip, tmp_path / "x.mp4"), 1, "not an ncodec bitstream")
    assert not list(tmp_path.glob("x.*")) and not list(tmp_path.glob(".*part*"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output(tmp_path, clip):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    assert_one_line_error(run("encode", clip, ro / "x.bin"), 2, "not writable")


def test_unwritable_output_as_root(tmp_path, clip):
    # root ignores folder permissions; a path through a regular file is unwritable for everyone
    assert_one_line_error(run("encode", clip, clip / "x.bin"), 2, "does not exist")


def test_debug_shows_traceback(tmp_path):
    proc = run("encode", tmp_path / "nope.mp4", tmp_path / "x.bin", "--debug")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_quick_start_sample_exists():
    assert (SAMPLES / "city.mp4").stat().st_size < 3_000_000
