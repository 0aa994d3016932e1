"""Property tests: mutated and truncated bitstreams of every codec decode correctly or
raise BitstreamError — never another exception, never a hang.

The coverage-guided fuzzer (tests/fuzz/fuzz_bitstreams.py, atheris) runs in CI beside
these; every input it ever crashed on is replayed here from tests/fuzz/crashers/.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent / "fuzz"))
import harness  # noqa: E402

from ncodec.codec import registry  # noqa: E402

HANG_SECONDS = 60  # a decode of these tiny files takes well under a second
CRASHERS = Path(__file__).parent / "fuzz" / "crashers"


class Seeds(dict):
    def __repr__(self) -> str:  # hypothesis prints the arguments of a failing example
        return f"<seed bitstreams of {', '.join(self)}>"


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> Seeds:
    return Seeds(
        {name: path.read_bytes() for name, path in harness.make_seeds(tmp_path_factory.mktemp("seeds")).items()}
    )


@contextmanager
def no_hang(seconds: int = HANG_SECONDS):
    def on_alarm(signum, frame):
        raise AssertionError(f"decoding hung for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _mutate(data: bytes, draw) -> bytes:
    kind = draw(st.sampled_from(["truncate", "flip", "flip+crc", "insert", "delete"]))
    n = len(data)
    if kind == "truncate":
        return data[: draw(st.integers(0, n - 1))]
    if kind in ("flip", "flip+crc"):
        out = bytearray(data)
        for pos in draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=8)):
            out[pos] ^= draw(st.integers(1, 255))
        return harness.fix_crcs(bytes(out)) if kind == "flip+crc" else bytes(out)
    at = draw(st.integers(0, n))
    if kind == "insert":
        return harness.fix_crcs(data[:at] + draw(st.binary(min_size=1, max_size=64)) + data[at:])
    return harness.fix_crcs(data[:at] + data[at + draw(st.integers(1, 64)) :])


def test_every_codec_has_a_seed(seeds):
    assert sorted(seeds) == sorted(registry.names() + list(harness.VARIANTS))
    for name, data in seeds.items():
        assert harness.check_bytes(data) == "ok", name


@pytest.mark.parametrize("codec", registry.names() + list(harness.VARIANTS))
@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_mutated_bitstreams_decode_or_raise_bitstream_error(seeds, codec, data):
    mutated = _mutate(seeds[codec], data.draw)
    with no_hang():
        assert harness.check_bytes(mutated) in ("ok", "rejected")


def test_crc_fixup_reaches_the_codec_parsers(seeds, tmp_path):
    """The fix-up is what lets mutations past the checksums: a payload byte flipped with
    the CRCs fixed is no longer reported as a CRC mismatch."""
    from ncodec.codec.errors import BitstreamError

    data = bytearray(seeds["mlic"])
    data[-40] ^= 0xFF  # inside the last section before the end marker
    path = tmp_path / "input.bin"
    path.write_bytes(bytes(data))
    with pytest.raises(BitstreamError, match="CRC32"):
        harness.decode_everything(path, tmp_path)
    path.write_bytes(harness.fix_crcs(bytes(data)))
    try:
        harness.decode_everything(path, tmp_path)
    except BitstreamError as e:
        assert "CRC32" not in str(e)


def _replay_in_subprocess(path: Path, times: int, timeout: float) -> str:
    """Decode ``path`` ``times`` times in a fresh process: a deadlock inside FFmpeg holds
    the GIL, so only a process timeout can catch it."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import harness; from pathlib import Path;"
        "data = Path(sys.argv[2]).read_bytes();"
        "print(set(harness.check_bytes(data) for _ in range(int(sys.argv[3]))))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent / "fuzz"), str(path), str(times)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.strip()


def test_the_crashers_are_in_the_checkout():
    assert len(list(CRASHERS.glob("*.bin"))) >= 7  # a lost file would silently skip its replay


@pytest.mark.parametrize("crasher", sorted(CRASHERS.glob("*.bin")), ids=lambda p: p.stem)
def test_fuzzer_findings_stay_fixed(crasher):
    assert _replay_in_subprocess(crasher, 1, HANG_SECONDS) in ("{'ok'}", "{'rejected'}")


def test_corrupt_x265_stream_does_not_deadlock_the_frame_threaded_decoder():
    """Before the fix, av.Packet(bytes) left Python-owned buffers in FFmpeg's decoder
    threads and closing the decoder after a corrupt packet deadlocked within ~100 decodes."""
    assert _replay_in_subprocess(CRASHERS / "x265-frame-thread-deadlock.bin", 150, 300) == "{'rejected'}"
