"""Determinism, for every codec: the same input and seed encode to the same bytes, and a
bitstream decodes to the same pixels with 1 and with 2 threads (separate processes, so
that torch and FFmpeg really start with those thread counts)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fuzz"))
import harness  # noqa: E402

from ncodec.codec import registry  # noqa: E402

# Big enough that convolutions are split across threads (a 48x32 picture may not be).
SIZE = (160, 96)


@pytest.fixture(scope="module")
def encoded(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Each codec's bitstream of the same clip (or photo), encoded twice."""
    first = harness.make_seeds(tmp_path_factory.mktemp("first"), size=SIZE)
    second = harness.make_seeds(tmp_path_factory.mktemp("second"), size=SIZE)
    return {name: (first[name], second[name]) for name in first}


@pytest.mark.parametrize("codec", registry.names() + list(harness.VARIANTS))
def test_same_input_and_seed_give_identical_bytes(encoded, codec):
    a, b = encoded[codec]
    assert a.read_bytes() == b.read_bytes()


def test_x264_gives_identical_bytes_on_real_footage():
    """x264's AVX-512 paths made MB-tree rate control give 2-4 different streams in 4 encodes
    of these frames (half-size city footage, STDO's low-resolution stream); now one."""
    from fractions import Fraction

    from ncodec.codec.container import StreamHeader
    from ncodec.codec.stdo_espcn import downscale
    from ncodec.video import MediaReader

    with MediaReader(Path(__file__).parents[1] / "samples" / "city.mp4") as r:
        frames = downscale([rgb for rgb, _ in zip(r.frames(), range(25))], 2)[1]
    x264 = registry.get("x264")
    h, w = frames[0].shape[:2]
    header = StreamHeader(x264.tag, w, h, Fraction(25), len(frames), params=x264.params(w, h, Fraction(25), {}))
    streams = {b"".join(p for _, p in x264.encode(iter(frames), header)) for _ in range(4)}
    assert len(streams) == 1


def _frames_digest(path: Path, threads: int) -> str:
    code = (
        "import hashlib, sys, torch; torch.set_num_threads(int(sys.argv[2]));"
        "from ncodec.video import decode_frames; h = hashlib.sha256(); n = 0\n"
        "for f in decode_frames(sys.argv[1]): h.update(f.tobytes()); n += 1\n"
        "print(n, h.hexdigest())"
    )
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    r = subprocess.run(
        [sys.executable, "-c", code, str(path), str(threads)], capture_output=True, text=True, timeout=300, env=env
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.strip()


@pytest.mark.parametrize("codec", registry.names() + list(harness.VARIANTS))
def test_decoding_with_one_and_two_threads_gives_identical_frames(encoded, codec):
    path = encoded[codec][0]
    one, two = _frames_digest(path, 1), _frames_digest(path, 2)
    assert int(one.split()[0]) >= 1
    assert one == two
