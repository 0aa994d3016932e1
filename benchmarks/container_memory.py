"""Memory and time to open a hostile container: a file of the most sections the format
admits (MAX_SECTIONS empty sections, 12 bytes each, ~600 MB), opened by ContainerReader
and described by `ncodec info`'s ``describe``, each in a fresh process.

Prints a table of peak resident memory (the process's own high-water mark) and seconds,
beside the same for a file of 1,000 sections.

    python benchmarks/container_memory.py [--sections N] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import datetime
import struct
import subprocess
import sys
import tempfile
import zlib
from fractions import Fraction
from pathlib import Path

from ncodec.codec.container import MAX_SECTIONS, StreamHeader

PROBE = """
import resource, sys, time
from ncodec.codec.container import ContainerReader
from ncodec.video.pipeline import describe
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
if sys.argv[2] == "open":
    with ContainerReader(sys.argv[1]) as r:
        count = r.section_count
else:
    count = sum(s["count"] for s in describe(sys.argv[1])["sections"].values())
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(count, seconds, before, peak)
"""


def write_empty_sections(path: Path, count: int) -> None:
    header = StreamHeader(codec="x264", width=64, height=64, fps=Fraction(25), frame_count=1)
    one, end = struct.pack("<4sII", b"VPKT", 0, zlib.crc32(b"")), struct.pack("<I", count)
    with open(path, "wb") as f:
        f.write(header.pack())
        for done in range(0, count, 1 << 20):
            f.write(one * min(1 << 20, count - done))
        f.write(struct.pack("<4sII", b"END ", 4, zlib.crc32(end)) + end)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", type=int, default=MAX_SECTIONS)
    ap.add_argument("--dir", default=tempfile.gettempdir())
    args = ap.parse_args()
    print(f"# opening a container of empty sections, {datetime.date.today().isoformat()}\n")
    print("| sections | file MB | step | peak RSS MB | before MB | seconds |\n|---:|---:|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for count in (1000, args.sections):
            path = Path(tmp) / f"{count}.bin"
            write_empty_sections(path, count)
            for step in ("open", "describe"):
                out = subprocess.run(
                    [sys.executable, "-c", PROBE, str(path), step], capture_output=True, text=True, check=True
                )
                found, seconds, before, peak = out.stdout.split()
                assert int(found) == count, (found, count)
                print(
                    f"| {count:,} | {path.stat().st_size / 1e6:.1f} | {step} | {int(peak) / 1024:.0f} | "
                    f"{int(before) / 1024:.0f} | {float(seconds):.1f} |",
                    flush=True,
                )
            path.unlink()


if __name__ == "__main__":
    main()
