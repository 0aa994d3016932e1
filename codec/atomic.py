"""Atomic file output: write to a temporary file beside the target, rename on success.

A crash, an exception or Ctrl-C never leaves a half-written output under the
user's chosen name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from .errors import UsageError


def check_output_path(path: str | os.PathLike, *inputs: str | os.PathLike, overwrite: bool = True) -> Path:
    """Reject an output that equals an input, whose folder is missing or not writable, or
    (with ``overwrite=False``) that already exists."""
    out = Path(path)
    for src in map(Path, inputs):
        same = src.resolve() == out.resolve() or (src.exists() and out.exists() and os.path.samefile(src, out))
        if same:
            raise UsageError(f"output {out} is the same file as the input {src}; choose another name")
    folder = out.resolve().parent
    if not folder.is_dir():
        raise UsageError(f"cannot write {out}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"cannot write {out}: folder {folder} is not writable")
    if out.is_dir():
        raise UsageError(f"cannot write {out}: it is a folder")
    if not overwrite and out.exists():
        raise UsageError(f"{out} exists; pass --overwrite (-y) to replace it")
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class AtomicPath:
    """A temporary path beside ``target`` that becomes ``target`` only on ``commit``.

    Used as a context manager it commits on success and discards on any exception
    (Ctrl-C included). The temporary name keeps the target's suffix so format
    detection by extension still works.
    """

    def __init__(self, target: str | os.PathLike):
        self.target = Path(target)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.target.stem}.", suffix=f".part{self.target.suffix}", dir=self.target.resolve().parent
        )
        os.close(fd)
        self.path = Path(tmp)

    def commit(self) -> None:
        os.chmod(self.path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
        os.replace(self.path, self.target)

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> "AtomicPath":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()
