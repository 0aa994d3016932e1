"""Jobs that are interrupted, outputs that already exist, hostile headers, pickles.

Real processes: the CLI runs in a subprocess and gets real SIGINT/SIGTERM signals.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import subprocess
import sys
import time
import zlib
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import make_video
from ncodec.codec.container import ContainerReader, ContainerWriter, StreamHeader
from ncodec.codec.errors import BitstreamError
from ncodec.video import decode_file, decode_frames, encode_file

NCODEC = [sys.executable, "-m", "ncodec"]


def _run(*args, cwd=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([*NCODEC, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


# --- existing outputs -------------------------------------------------------------------


def test_existing_output_is_kept_without_overwrite(tmp_path, clip):
    out = tmp_path / "out.bin"
    out.write_bytes(b"precious")
    r = _run("encode", clip, out, "--codec", "x264")
    assert r.returncode == 2 and "exists; pass --overwrite" in r.stderr
    assert out.read_bytes() == b"precious"
    r = _run("encode", clip, out, "--codec", "x264", "-y")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:4] == b"NCDC"


def test_output_never_overwrites_the_input_even_with_overwrite(tmp_path, clip):
    before = clip.read_bytes()
    r = _run("upscale", clip, clip, "--scale", "2", "--overwrite")
    assert r.returncode == 2 and "same file as the input" in r.stderr
    assert clip.read_bytes() == before


# --- interrupted jobs -------------------------------------------------------------------


def _interrupt(tmp_path: Path, args: list, sig: int, wait_for_part: bool = True) -> subprocess.CompletedProcess:
    """Start the CLI, signal it while it works (once its partial output exists, or after
    a few seconds for jobs that write their output only at the end) and check that it
    left neither a partial output nor temporary files.

    The signal goes to the job's whole process group, as a terminal's Ctrl-C does: a C
    compiler that torch.compile runs gets it too and removes its own temporary files."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    # torch keeps its compile cache (and creates its folder as soon as an optimiser is made)
    # under TMPDIR unless told otherwise: a persistent cache, there after complete runs too
    env = dict(os.environ, TMPDIR=str(tmpdir), TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "torch-cache"))
    # A suite started in the background (`cmd &`, nohup) has SIGINT ignored, which exec
    # keeps, while a caught signal is reset to the default there: catch it around the
    # start so the job meets the default disposition a user's foreground Ctrl-C meets
    # (not preexec_fn: Python code between fork and exec can deadlock in a threaded
    # parent, and Popen then waits for that child for ever).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            [*NCODEC, *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        start = time.monotonic()
        while proc.poll() is None and time.monotonic() - start < 120:
            if list(tmp_path.glob(".*.part*")) if wait_for_part else time.monotonic() - start > 8:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"the job ended before it could be interrupted: {proc.stderr.read()}"
        time.sleep(0.3)
        os.killpg(proc.pid, sig)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"the job ran on after the signal: {(e.stderr or b'').decode()[-500:]}") from None
        deadline = time.monotonic() + 30  # the group's other processes (a compiler) end on their own time
        while time.monotonic() < deadline and _group_alive(proc.pid):
            time.sleep(0.1)
    finally:  # a job that failed the test must not run on beside the rest of the suite
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "interrupted; no output was written" in err
    assert list(tmpdir.iterdir()) == [], "temporary files were left behind"
    assert list(tmp_path.glob(".*.part*")) == [], "a partial output was left behind"
    return proc


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


class _TritonLoad:
    """A finder for ``triton`` that fails as pybind11 does when a signal lands while the
    module initialises (ImportError from the KeyboardInterrupt), or as a torch build
    without triton does (plain ImportError)."""

    def __init__(self, interrupted: bool):
        self.interrupted = interrupted

    def find_spec(self, name, path=None, target=None):
        if name != "triton":
            return None
        if not self.interrupted:
            raise ImportError("No module named 'triton'")
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as e:
            raise ImportError("initialization failed") from e


@pytest.mark.parametrize("interrupted", [True, False], ids=["interrupted", "absent"])
def test_an_interrupt_while_triton_loads_is_raised_again(monkeypatch, interrupted):
    from ncodec import models

    monkeypatch.delitem(sys.modules, "triton", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_TritonLoad(interrupted), *sys.meta_path])
    if interrupted:
        with pytest.raises(KeyboardInterrupt):
            models._load_triton_interruptibly()
    else:
        models._load_triton_interruptibly()  # a torch without triton: nothing to raise


def _ended_by(proc: subprocess.CompletedProcess, sig: int) -> bool:
    """The process died by ``sig`` (after its cleanup and message), as a shell expects of
    an interrupted program: `ncodec` re-raises the signal at exit (app/cli.run)."""
    return proc.returncode == -sig


@pytest.fixture
def long_clip(tmp_path) -> Path:
    return make_video(tmp_path / "long.mp4", 160, 96, frames=150, audio="aac")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_encode_leaves_nothing(tmp_path, long_clip, sig):
    out = tmp_path / "out.bin"
    proc = _interrupt(tmp_path, ["encode", long_clip, out, "--codec", "hnerv", "--epochs", "400"], sig)
    assert _ended_by(proc, sig) and not out.exists()


def test_interrupted_decode_leaves_nothing(tmp_path, long_clip):
    bits = tmp_path / "clip.bin"
    encode_file(long_clip, bits, "x264")
    out = tmp_path / "out.mkv"
    proc = _interrupt(tmp_path, ["decode", bits, out, "--video-codec", "h265", "--preset", "veryslow"], signal.SIGTERM)
    assert _ended_by(proc, signal.SIGTERM) and not out.exists()


def test_interrupted_upscale_leaves_nothing(tmp_path, long_clip):
    out = tmp_path / "big.mp4"
    proc = _interrupt(tmp_path, ["upscale", long_clip, out, "--scale", "4", "--preset", "veryslow"], signal.SIGINT)
    assert _ended_by(proc, signal.SIGINT) and not out.exists()


def test_interrupted_dereflect_leaves_nothing(tmp_path):
    photo = tmp_path / "photo.png"
    rng = np.random.default_rng(0)
    cv2.imwrite(str(photo), rng.integers(0, 255, (4000, 6000, 3), dtype=np.uint8))
    out = tmp_path / "clean.png"
    # the network, not the classical method: that one can finish a 6000-px photo within the
    # seconds _interrupt waits (seen in a full-suite run), while the network takes minutes
    proc = _interrupt(tmp_path, ["dereflect", photo, out, "--method", "net"], signal.SIGTERM, wait_for_part=False)
    assert _ended_by(proc, signal.SIGTERM) and not out.exists()


# --- hostile headers ---------------------------------------------------------------------


def _write_bitstream(path: Path, header: StreamHeader, sections: list[tuple[str, bytes]]) -> Path:
    with ContainerWriter(path, header) as w:
        for tag, payload in sections:
            w.write(tag, payload)
        w.close()
    return path


def test_decompression_bomb_is_refused_before_decoding(tmp_path, clip):
    """A valid x264 bitstream whose header claims 10 million 8K frames: refused up front
    by the decoded-pixel cap, not decoded for hours."""
    bits = tmp_path / "clip.bin"
    encode_file(clip, bits, "x264")
    with ContainerReader(bits) as r:
        header, sections = r.header, list(r.sections())
    bomb = StreamHeader(
        codec=header.codec, width=7680, height=4320, fps=Fraction(60), frame_count=10_000_000, params=header.params
    )
    path = _write_bitstream(tmp_path / "bomb.bin", bomb, sections)
    with pytest.raises(BitstreamError, match="decoded-pixel limit"):
        next(decode_frames(path))
    r = _run("decode", path, tmp_path / "out.mp4")
    assert r.returncode == 1 and "decoded-pixel limit" in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "out.mp4").exists()
    r = _run("decode", bits, tmp_path / "ok.mp4", "--max-pixels", "1000")
    assert r.returncode == 1 and "raise --max-pixels" in r.stderr


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("width", 100_000, "outside the limit"),
        ("frames", 2**32 - 1, "frame count"),
        ("params_len", 65535, "truncated"),
    ],
)
def test_hostile_header_fields_are_rejected_before_allocation(tmp_path, clip, field, value, message):
    bits = tmp_path / "clip.bin"
    encode_file(clip, bits, "x264")
    data = bytearray(bits.read_bytes())
    offsets = {"width": 10, "frames": 26, "params_len": 36}  # docs/FORMAT.md header layout
    fmt = "<H" if field == "params_len" else "<I"
    struct.pack_into(fmt, data, offsets[field], value)
    if field != "params_len":  # keep the CRC right so that the field check itself is reached
        params_len = struct.unpack_from("<H", data, 36)[0]
        struct.pack_into("<I", data, 38 + params_len, zlib.crc32(bytes(data[: 38 + params_len])))
    bad = tmp_path / "bad.bin"
    bad.write_bytes(bytes(data))
    with pytest.raises(BitstreamError, match=message):
        ContainerReader(bad)


def test_section_length_past_the_end_is_rejected(tmp_path, clip):
    bits = tmp_path / "clip.bin"
    encode_file(clip, bits, "x264")
    with ContainerReader(bits) as r:
        first = next(r.entries())
    data = bytearray(bits.read_bytes())
    struct.pack_into("<I", data, first.offset - 8, 200_000_000)  # the first section's length field
    bad = tmp_path / "bad.bin"
    bad.write_bytes(bytes(data))
    with pytest.raises(BitstreamError, match="truncated"):
        ContainerReader(bad)


# --- no pickles ---------------------------------------------------------------------------


class _Exploit:
    """Unpickling this runs code: it creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_bitstream_cannot_execute_code(tmp_path):
    """Pickles planted where every codec keeps weights and parameters: nothing unpickles
    them, so the marker file is never created and decoding fails cleanly."""
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Exploit(marker))
    assert pickle.loads(payload) is None and marker.exists()  # the payload works when unpickled...
    marker.unlink()
    from ncodec.codec import registry

    for name in registry.names():
        codec = registry.get(name)
        tags = codec.section_tags() or ("DATA",)
        header = StreamHeader(
            codec=codec.tag, width=32, height=32, fps=Fraction(25), frame_count=1, params={"weights": payload.hex()}
        )
        path = _write_bitstream(tmp_path / f"{name}.bin", header, [(tags[0], payload)])
        with pytest.raises(BitstreamError):
            decode_file(path, tmp_path / f"{name}.png")
        assert not marker.exists(), f"{name} executed a pickle"


def test_no_module_loads_pickles():
    """Weights load through safetensors and checkpoints through torch.load(weights_only=True)
    at most: no pickle.load, no unrestricted torch.load anywhere in the package."""
    root = Path(__file__).resolve().parents[1]
    offenders = []
    for folder in ("codec", "video", "models", "app", "ncodec"):
        for path in (root / folder).rglob("*.py"):
            text = path.read_text()
            for needle in ("pickle.load", "torch.load(", "allow_pickle=True"):
                if needle in text and not (needle == "torch.load(" and "weights_only=True" in text):
                    offenders.append(f"{path.relative_to(root)}: {needle}")
    assert offenders == []


# --- native-library faults ---------------------------------------------------------------


def test_x265_pictures_smaller_than_a_coding_tree_unit_are_padded(tmp_path):
    """libx265 corrupted the heap (glibc aborts, about one run in two) on 48x32 pictures;
    the codec now pads to one 64-px CTU per side and crops back."""
    src = make_video(tmp_path / "tiny.mp4", 48, 32, frames=3)
    bits = tmp_path / "tiny.bin"
    encode_file(src, bits, "x265")
    with ContainerReader(bits) as r:
        assert r.header.params["coded_size"] == [64, 64]
    frames = list(decode_frames(bits))
    assert len(frames) == 3 and frames[0].shape == (32, 48, 3)
