"""Shared fixtures: real media made with PyAV (tests/helpers.py makes it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import make_video


@pytest.fixture
def av_file(tmp_path: Path) -> Path:
    """A 1-second 96x64 H.264 + AAC tone clip."""
    return make_video(tmp_path / "av.mp4", frames=25, audio="aac")


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return make_video(tmp_path / "clip.mp4")
