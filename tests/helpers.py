"""Helpers shared by the test files: real media made with PyAV (video, tone audio, odd
sizes), the shared data folder, and running the `ncodec` command and checking its errors."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

NCODEC = [sys.executable, "-m", "ncodec"]


def run(*args, cwd=None):
    """``ncodec ARGS...`` in a fresh process (the real entry point), output captured."""
    return subprocess.run([*NCODEC, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


def assert_one_line_error(proc, code, pattern):
    """The process failed with exit ``code`` and exactly one error line containing ``pattern``."""
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ncodec: error:"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert pattern in lines[0], lines[0]


REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
SHARED_DATA = REPO.parent / "shared" / "data"


def moving_frames(width: int, height: int, count: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth moving gradients plus a little texture: compressible like real video."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    texture = rng.normal(0, 6, (height, width, 1)).astype(np.float32)
    out = []
    for i in range(count):
        r = 128 + 100 * np.sin((x + 3 * i) / 23.0)
        g = 128 + 100 * np.cos((y - 2 * i) / 17.0)
        b = 128 + 80 * np.sin((x + y + 5 * i) / 31.0)
        img = np.stack([r, g, b], -1) + texture
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def make_video(
    path: Path,
    width: int = 96,
    height: int = 64,
    frames: int = 12,
    fps: int = 25,
    *,
    codec: str = "libx264",
    audio: str | None = None,
    pix_fmt: str = "yuv420p",
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
) -> Path:
    """Write a real video file; ``audio`` names an audio encoder (e.g. "aac") for a 440 Hz tone."""
    with av.open(str(path), "w") as c:
        vs = c.add_stream(codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
        if time_base:
            vs.time_base = vs.codec_context.time_base = time_base
        if codec == "libx264":
            vs.options = {"crf": "10", "preset": "ultrafast"}
        a_stream = None
        if audio:
            a_stream = c.add_stream(audio, rate=48000)
            a_stream.layout = "mono"
        for i, img in enumerate(moving_frames(width, height, frames)):
            f = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format=pix_fmt)
            f.pts = pts[i] if pts else i
            c.mux(vs.encode(f))
        c.mux(vs.encode(None))
        if a_stream is not None:
            samples = int(48000 * frames / fps)
            t = np.arange(samples) / 48000.0
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            fmt = a_stream.codec_context.format.name
            for start in range(0, samples, 1024):
                chunk = tone[start : start + 1024][None]
                af = av.AudioFrame.from_ndarray(chunk, format="fltp" if fmt == "fltp" else "flt", layout="mono")
                af.sample_rate, af.pts = 48000, start
                c.mux(a_stream.encode(af))
            c.mux(a_stream.encode(None))
    return path


def make_audio_only(path: Path) -> Path:
    """A short AAC file with no video stream."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=48000)
        s.layout = "mono"
        f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        f.sample_rate, f.pts = 48000, 0
        c.mux(s.encode(f))
        c.mux(s.encode(None))
    return path


def read_audio(path: Path) -> np.ndarray:
    """All audio samples of a file's first audio stream (mono float)."""
    with av.open(str(path)) as c:
        chunks = [f.to_ndarray().reshape(-1) for f in c.decode(audio=0)]
    return np.concatenate(chunks)


def shared(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not available (only on machines with ../shared)")
    return path


def decoded_digest(bits: Path) -> tuple[str, int]:
    """SHA-256 of every picture a bitstream decodes to (uint8 RGB, in order, each with its
    shape), and the number of pictures: through the codec registry alone."""
    import hashlib

    from ncodec.codec import ContainerReader, by_tag

    digest, count = hashlib.sha256(), 0
    with ContainerReader(bits) as r:
        codec = by_tag(r.header.codec)
        for rgb in codec.decode(r.sections(*codec.section_tags()), r.header):
            digest.update(repr(rgb.shape).encode())
            digest.update(np.ascontiguousarray(rgb, np.uint8).tobytes())
            count += 1
    return digest.hexdigest(), count
