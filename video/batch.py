"""`ncodec batch`: encode, upscale or dereflect every media file of a folder.

Resumable: a file whose output exists is skipped (outputs are written atomically, so an
existing one is complete), so a batch stopped for any reason continues where it stopped
when run again. A file that fails is reported with its reason and the others go on.
Files run one after another here, or in parallel on local worker processes or a Ray
cluster (``video/parallel.py``); each file's own work runs inside one task.
"""

from __future__ import annotations

import functools
import glob
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ncodec.codec import registry
from ncodec.codec.errors import NcodecError, UsageError

from .images import IMAGE_SUFFIXES
from .parallel import Runner
from .pipeline import (
    DEFAULT_IMAGE_CODEC,
    DEFAULT_VIDEO_CODEC,
    bitstream_quality,
    default_codec,
    encode_file,
    progress_bar,
)
from .writer import SUPPORTED_SUFFIXES

TASKS = ("encode", "upscale", "dereflect")
VIDEO_SUFFIXES = {
    ".mp4",
    ".m4v",
    ".mov",
    ".mkv",
    ".webm",
    ".avi",
    ".y4m",
    ".ts",
    ".mts",
    ".mpg",
    ".mpeg",
    ".flv",
    ".wmv",
}


@dataclass
class BatchSettings:
    """What every file of the batch gets (sent to the workers as it is)."""

    task: str = "encode"
    codec: str | None = None  # encode: None picks by the file's kind, like `ncodec encode`
    quality: str | None = None
    options: dict = field(default_factory=dict)  # encode options (crf, time_budget, ...)
    scale: int | None = None  # upscale
    method: str = "auto"  # dereflect
    device: str = "cpu"

    def check(self) -> None:
        """Usage errors before any file is touched."""
        if self.task not in TASKS:
            raise UsageError(f"--task must be one of {', '.join(TASKS)}")
        if self.task == "encode":
            for codec in [self.codec] if self.codec else [DEFAULT_IMAGE_CODEC, DEFAULT_VIDEO_CODEC]:
                registry.get(codec).settings(self.options_for(codec), self.quality)
        if self.task == "upscale":
            from .upscale import _check_scale

            if self.scale is None:
                raise UsageError("batch --task upscale needs --scale 2, 3 or 4")
            _check_scale(self.scale)
        if self.task == "dereflect":
            from .dereflect import METHODS

            if self.method not in METHODS:
                raise UsageError(f"--method must be one of {', '.join(METHODS)}")

    def options_for(self, codec: str) -> dict:
        """The options that ``codec`` takes: with no --codec, a batch of photos and videos
        gives each kind's codec its own options (--time-budget steers the videos only)."""
        if self.codec:
            return self.options
        declared = {o.name for o in registry.get(codec).options}
        return {k: v for k, v in self.options.items() if k in declared}


@dataclass
class BatchItem:
    """One row of the summary."""

    name: str
    status: str  # "done", "skipped" (its output was already there) or "failed"
    bytes_in: int
    bytes_out: int | None = None
    psnr: float | None = None  # encode: the decoded bitstream against the input
    seconds: float = 0.0
    reason: str = ""


def output_for(src: Path, out_dir: Path, task: str) -> Path | None:
    """Where ``src``'s result goes, or None when the task does not apply to its kind."""
    image = src.suffix.lower() in IMAGE_SUFFIXES
    if task == "encode":
        return out_dir / f"{src.stem}.bin"
    if task == "dereflect":
        return out_dir / src.name if image else None
    if image or src.suffix.lower() in SUPPORTED_SUFFIXES:  # upscale keeps the format where it can
        return out_dir / src.name
    return out_dir / f"{src.stem}.mkv"


def plan(in_dir: Path, out_dir: Path, task: str) -> tuple[list[tuple[Path, Path]], list[Path], dict[Path, str]]:
    """(input, output) pairs in name order; the media files the task does not apply to;
    and the inputs refused up front (two inputs that would write the same output)."""
    if not in_dir.is_dir():
        raise UsageError(f"{in_dir}: not a folder")
    media = sorted(p for p in in_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
    pairs, ignored, refused, taken = [], [], {}, {}
    for src in media:
        dst = output_for(src, out_dir, task)
        if dst is None:
            ignored.append(src)
        elif dst in taken:
            refused[src] = f"writes the same output {dst.name} as {taken[dst].name}; rename one"
        else:
            taken[dst] = src
            pairs.append((src, dst))
    return pairs, ignored, refused


def process_one(settings: BatchSettings, pair: tuple[Path, Path]) -> BatchItem:
    """Run the task on one file; every failure becomes the row's reason (one line)."""
    src, dst = pair
    item = BatchItem(src.name, "done", src.stat().st_size)
    start = time.perf_counter()
    try:
        if settings.task == "encode":
            codec = settings.codec or default_codec(src)
            encode_file(
                src, dst, codec, quality=settings.quality, options=settings.options_for(codec), device=settings.device
            )
            item.psnr = bitstream_quality(dst, src)["psnr"]
        elif settings.task == "upscale":
            from .upscale import upscale_file

            upscale_file(src, dst, settings.scale, device=settings.device)
        else:
            from .dereflect import dereflect_file

            dereflect_file(src, dst, method=settings.method)
        item.bytes_out = dst.stat().st_size
    except NcodecError as e:
        item.status, item.reason = "failed", str(e).splitlines()[0] if str(e) else type(e).__name__
    except Exception as e:  # a bug or the environment: still one line, and the batch goes on
        item.status, item.reason = "failed", f"internal error: {type(e).__name__}: {e}".splitlines()[0]
    item.seconds = time.perf_counter() - start
    return item


def _remove_partial_outputs(pairs: list[tuple[Path, Path]]) -> None:
    """Temporary outputs (codec/atomic.AtomicPath) left by a worker killed mid-file."""
    for _, dst in pairs:
        for stale in glob.glob(
            os.path.join(glob.escape(str(dst.parent)), f".{glob.escape(dst.stem)}.*.part{glob.escape(dst.suffix)}")
        ):
            Path(stale).unlink(missing_ok=True)


@dataclass
class BatchReport:
    items: list[BatchItem]
    ignored: list[str]
    seconds: float

    @property
    def failed(self) -> list[BatchItem]:
        return [i for i in self.items if i.status == "failed"]

    def table(self) -> str:
        def mb(n: int | None) -> str:
            return "" if n is None else f"{n / 1e6:.2f}"

        rows = [("file", "result", "MB in", "MB out", "PSNR dB", "time s", "reason")]
        for i in self.items:
            psnr = "" if i.psnr is None else f"{i.psnr:.2f}"
            rows.append(
                (
                    i.name,
                    i.status,
                    mb(i.bytes_in),
                    mb(i.bytes_out),
                    psnr,
                    f"{i.seconds:.1f}" if i.seconds else "",
                    i.reason,
                )
            )
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
        count = {s: sum(i.status == s for i in self.items) for s in ("done", "skipped", "failed")}
        bytes_in = sum(i.bytes_in for i in self.items if i.status != "failed")
        bytes_out = sum(i.bytes_out or 0 for i in self.items if i.status != "failed")
        lines.append(
            f"{len(self.items)} files: {count['done']} done, {count['skipped']} skipped (already there), "
            f"{count['failed']} failed; {bytes_in / 1e6:.2f} MB in, {bytes_out / 1e6:.2f} MB out; {self.seconds:.1f} s"
        )
        if self.ignored:
            lines.append(f"not applicable to this task ({len(self.ignored)}): {', '.join(self.ignored)}")
        return "\n".join(lines)


def run_batch(
    in_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    settings: BatchSettings,
    runner: Runner | None = None,
    progress: bool = False,
) -> BatchReport:
    """Apply ``settings.task`` to every media file of ``in_dir`` (not its subfolders),
    writing into ``out_dir`` (created if missing); ``runner`` (entered) spreads the files."""
    start = time.perf_counter()
    settings.check()
    in_dir, out_dir = Path(in_dir).absolute(), Path(out_dir).absolute()  # the same paths on every worker
    pairs, ignored, refused = plan(in_dir, out_dir, settings.task)
    if in_dir.resolve() == out_dir.resolve():
        raise UsageError("OUT_DIR must differ from IN_DIR")
    out_dir.mkdir(parents=True, exist_ok=True)
    items = {src: BatchItem(src.name, "failed", src.stat().st_size, reason=why) for src, why in refused.items()}
    todo = []
    for src, dst in pairs:
        if dst.exists():
            items[src] = BatchItem(src.name, "skipped", src.stat().st_size, dst.stat().st_size)
        else:
            todo.append((src, dst))
    _remove_partial_outputs(todo)  # left by an earlier run that was killed
    job = functools.partial(process_one, settings)
    try:
        with progress_bar(len(todo), f"batch {settings.task}", progress, unit="file") as bar:
            for (src, _), result in zip(todo, (runner or Runner())(job, todo, errors="return")):
                if isinstance(result, BaseException):  # the task itself was lost (its worker died for good)
                    result = BatchItem(
                        src.name, "failed", src.stat().st_size, reason=str(result) or type(result).__name__
                    )
                items[src] = result
                bar.update(1)
    finally:
        _remove_partial_outputs(todo)
    ordered = [items[src] for src in sorted(items)]
    return BatchReport(ordered, [p.name for p in ignored], time.perf_counter() - start)
