"""Packaging: the ncodec namespace imports from anywhere, and the wheel holds only ncodec/."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from helpers import REPO


def test_import_from_outside_the_repository(tmp_path):
    code = (
        "import importlib.util, ncodec.video, ncodec.codec, ncodec.models, ncodec.app.cli;"
        "assert all(importlib.util.find_spec(n) is None for n in ('video', 'codec', 'models', 'app'));"
        "print(ncodec.video.__name__)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ncodec.video"


def test_wheel_contents(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("ncodec-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top <= {"ncodec", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}, top
    for module in (
        "ncodec/codec/container.py",
        "ncodec/video/reader.py",
        "ncodec/app/cli.py",
        "ncodec/models/__init__.py",
    ):
        assert module in names
    # every shipped weights version, its model card and the index are package data
    from ncodec.models import zoo

    assert "ncodec/models/weights/index.json" in names
    for versions in zoo.index().values():
        for v in versions:
            assert f"ncodec/models/weights/{v.path.name}" in names
            assert f"ncodec/models/weights/{zoo.card_path(v.path).name}" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "ncodec = ncodec.app.cli:run" in zipfile.ZipFile(wheel).read(entry_points).decode()
