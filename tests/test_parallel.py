"""Scale-out: segments over local worker processes and over a Ray cluster give the same
bytes as one process; `ncodec batch` resumes, reports, and survives bad files and a
worker killed mid-task."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import NCODEC, assert_one_line_error, make_video, run

HNERV_TINY = ["-c", "hnerv", "--size", "10000", "--epochs", "2", "--segment-frames", "2"]
STDO_TINY = ["-c", "stdo", "--steps", "3", "--segment-frames", "3"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("par") / "clip.mp4", 64, 48, frames=6, audio="aac")


@pytest.fixture(scope="module")
def single_process(clip) -> dict[str, bytes]:
    """The reference bitstreams: one process, one torch thread."""
    out = {}
    for name, args in (("hnerv", HNERV_TINY), ("stdo", STDO_TINY)):
        dst = clip.with_name(f"{name}-single.bin")
        r = run("encode", clip, dst, *args, "--threads", "1", "-q")
        assert r.returncode == 0, r.stderr
        out[name] = dst.read_bytes()
    return out


def test_workers_give_the_single_process_bitstream(clip, single_process, tmp_path):
    dst = tmp_path / "parallel.bin"
    r = run("encode", clip, dst, *HNERV_TINY, "--workers", "2", "-q")
    assert r.returncode == 0, r.stderr
    assert dst.read_bytes() == single_process["hnerv"]  # 3 segments, 1 thread each


def test_library_workers_give_the_same_bitstream_and_never_import_ray(clip, single_process, tmp_path):
    code = (
        "import sys; from ncodec.video import encode_file; from ncodec.video.parallel import make_runner\n"
        "with make_runner(workers=2, threads=1) as runner:\n"
        "    encode_file(sys.argv[1], sys.argv[2], 'stdo', options={'steps': 3, 'segment_frames': 3},\n"
        "                runner=runner)\n"
        "print('ray' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code, str(clip), str(tmp_path / "a.bin")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
    assert (tmp_path / "a.bin").read_bytes() == single_process["stdo"]  # 2 segments


def test_parallel_options_bad_use(clip, tmp_path):
    dst = tmp_path / "x.bin"
    assert_one_line_error(run("encode", clip, dst, "-c", "x264", "--workers", "2"), 2, "does not encode in segments")
    assert_one_line_error(run("encode", clip, dst, *STDO_TINY, "--workers", "0"), 2, "--workers must be at least 1")
    assert_one_line_error(run("encode", clip, dst, *STDO_TINY, "--workers", "2", "--ray", "auto"), 2, "not both")
    assert_one_line_error(run("encode", clip, dst, *STDO_TINY, "--threads", "0"), 2, "--threads must be at least 1")
    assert not dst.exists()
    # without the optional extra: one line that says what to install
    code = "import sys; sys.modules['ray'] = None; from ncodec.app.cli import main; sys.exit(main(sys.argv[1:]))"
    r = subprocess.run(
        [sys.executable, "-c", code, "encode", str(clip), str(dst), *STDO_TINY, "--ray", "auto"],
        capture_output=True,
        text=True,
    )
    assert_one_line_error(r, 2, "pip install 'ncodec[ray]'")


def test_sigterm_stops_the_workers_and_leaves_nothing(clip, tmp_path):
    dst = tmp_path / "stopped.bin"
    proc = subprocess.Popen(
        [
            *NCODEC,
            "encode",
            clip,
            dst,
            "-c",
            "hnerv",
            "--size",
            "10000",
            "--epochs",
            "500",
            "--segment-frames",
            "2",
            "--workers",
            "2",
            "-q",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    workers: list[str] = []
    deadline = time.monotonic() + 60
    while len(workers) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        workers = [c for c in children if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text(errors="replace")]
    assert len(workers) >= 2, "the worker processes never started"
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM and stderr == "ncodec: interrupted; no output was written\n", stderr
    assert not any(Path(f"/proc/{w}").exists() for w in workers)
    assert list(tmp_path.iterdir()) == []


def _square_or_die(n: int) -> int:
    if n == 2:
        os.kill(os.getpid(), signal.SIGKILL)  # a worker killed mid-task (OOM killer, operator)
    if n == 4:
        raise ValueError("four is refused")
    return n * n


def test_local_worker_death_fails_only_its_item():
    from ncodec.video.parallel import ProcessRunner, WorkerLost

    with ProcessRunner(2, threads=1) as runner:
        results = list(runner(_square_or_die, range(7), errors="return"))
        assert [r for i, r in enumerate(results) if i not in (2, 4)] == [0, 1, 9, 25, 36]
        assert isinstance(results[2], WorkerLost) and isinstance(results[4], ValueError)
        assert list(runner(_square_or_die, [5, 6])) == [25, 36]  # the dead worker was replaced
        with pytest.raises(ValueError, match="four"):
            list(runner(_square_or_die, [4, 3, 5]))  # raised while the other worker is busy
        assert list(runner(_square_or_die, [1, 3])) == [1, 9]  # its late answer did not leak in here


@pytest.fixture()
def folder(tmp_path, clip) -> Path:
    """Two clips, a photo, a file that only looks like a video, and a text file."""
    import cv2
    import numpy as np

    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(clip, d / "a.mp4")
    make_video(d / "b.mkv", 48, 32, frames=3)
    y, x = np.mgrid[0:40, 0:56]
    cv2.imwrite(str(d / "photo.png"), np.stack([x * 4, y * 6, x + y], -1).astype(np.uint8))
    (d / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(3000))
    (d / "notes.txt").write_text("not media")
    return d


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".part" in p.name)


def test_batch_reports_a_bad_file_and_finishes_the_rest(folder, tmp_path):
    out = tmp_path / "out"
    r = run("batch", folder, out, "-c", "x264", "--crf", "30")
    assert r.returncode == 1, r.stderr  # one file failed
    rows = {line.split()[0]: line for line in r.stdout.splitlines()}
    for name in ("a.mp4", "b.mkv", "photo.png"):
        assert rows[name].split()[1] == "done", r.stdout
        assert float(rows[name].split()[4]) > 25  # PSNR of the decoded bitstream against the input
    assert rows["broken.mp4"].split()[1] == "failed" and "not a media file" in rows["broken.mp4"]
    assert "notes.txt" not in r.stdout
    assert "4 files: 3 done, 0 skipped (already there), 1 failed" in r.stdout
    assert sorted(p.name for p in out.iterdir()) == ["a.bin", "b.bin", "photo.bin"]  # nothing partial
    # run again: the finished files are skipped, untouched
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = run("batch", folder, out, "-c", "x264", "--crf", "30", "--workers", "2")
    assert again.returncode == 1
    assert "0 done, 3 skipped (already there), 1 failed" in again.stdout
    assert stamps == {p.name: p.stat().st_mtime_ns for p in out.iterdir()}


def test_batch_upscale_and_dereflect(folder, tmp_path):
    (folder / "broken.mp4").unlink()
    up = run("batch", folder, tmp_path / "up", "--task", "upscale", "--scale", "2", "--workers", "2")
    assert up.returncode == 0, up.stdout + up.stderr
    assert sorted(p.name for p in (tmp_path / "up").iterdir()) == ["a.mp4", "b.mkv", "photo.png"]
    clean = run("batch", folder, tmp_path / "clean", "--task", "dereflect", "--method", "classic")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert sorted(p.name for p in (tmp_path / "clean").iterdir()) == ["photo.png"]
    assert "not applicable to this task (2): a.mp4, b.mkv" in clean.stdout


def test_batch_bad_use(folder, tmp_path):
    assert_one_line_error(run("batch", folder, folder), 2, "OUT_DIR must differ from IN_DIR")
    assert_one_line_error(run("batch", tmp_path / "nope", tmp_path / "out"), 2, "not a folder")
    assert_one_line_error(run("batch", folder, tmp_path / "out", "--task", "upscale"), 2, "needs --scale")
    assert_one_line_error(run("batch", folder, tmp_path / "out", "-c", "nonsense"), 2, "unknown codec")
    assert not (tmp_path / "out").exists()


def test_batch_removes_partial_outputs_of_a_killed_run(folder, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".a.k3j4h5.part.bin").write_bytes(b"half a file")  # what a SIGKILLed encode leaves (codec/atomic.py)
    (out / "keep.txt").write_text("the user's own file")
    (folder / "broken.mp4").unlink()
    r = run("batch", folder, out, "-c", "x264")
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.bin", "b.bin", "keep.txt", "photo.bin"]


# -- a real Ray cluster on 127.0.0.1: a head and one worker node, one CPU each ----------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    pytest.importorskip("ray")
    ray_cli = [sys.executable, "-m", "ray.scripts.scripts"]
    port = _free_port()
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus=1", "--node-ip-address=127.0.0.1", "--object-store-memory=100000000", "--disable-usage-stats"]
    try:
        subprocess.run(
            [*ray_cli, "start", "--head", f"--port={port}", "--include-dashboard=false", *common],
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            [*ray_cli, "start", f"--address={address}", *common], check=True, capture_output=True, timeout=120
        )
        yield address
    finally:
        subprocess.run([*ray_cli, "stop", "--force"], capture_output=True, timeout=120)


def test_ray_cluster_gives_the_single_process_bitstream(ray_cluster, clip, single_process, tmp_path):
    dst = tmp_path / "ray.bin"
    r = run("encode", clip, dst, *HNERV_TINY, "--ray", ray_cluster, "-q")
    assert r.returncode == 0, r.stderr
    assert dst.read_bytes() == single_process["hnerv"]


def _task_pids() -> list[int]:
    r = subprocess.run(["pgrep", "-f", "ray::ncodec-task"], capture_output=True, text=True)
    return [int(p) for p in r.stdout.split()]


def test_ray_batch_survives_a_killed_worker_and_a_bad_file(ray_cluster, folder, tmp_path):
    out = tmp_path / "out"
    batch = subprocess.Popen(
        [*NCODEC, "batch", folder, out, "-c", "hnerv", "--time-budget", "6", "--ray", ray_cluster, "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and time.monotonic() < deadline and batch.poll() is None:
        pids = _task_pids()
        if pids:
            time.sleep(2)  # let it get into the fit
            if pids[0] in _task_pids():
                os.kill(pids[0], signal.SIGKILL)
                killed = pids[0]
        time.sleep(0.2)
    stdout, stderr = batch.communicate(timeout=300)
    assert killed is not None, "no Ray task process was seen to kill"
    assert batch.returncode == 1, stdout + stderr  # the bad file
    assert "4 files: 3 done, 0 skipped (already there), 1 failed" in stdout
    assert "not a media file" in next(line for line in stdout.splitlines() if line.startswith("broken.mp4"))
    assert sorted(p.name for p in out.iterdir()) == ["a.bin", "b.bin", "photo.bin"]
