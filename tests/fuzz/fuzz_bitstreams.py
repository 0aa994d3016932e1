#!/usr/bin/env python3
"""Coverage-guided fuzzing of the container reader and every codec's decoder (atheris,
libFuzzer underneath).

    python tests/fuzz/fuzz_bitstreams.py [-max_total_time=60] [CORPUS_DIR]

The seed corpus is one small valid bitstream per codec, made on start and added to
CORPUS_DIR (CI passes a copy of tests/fuzz/corpus, the inputs longer campaigns kept). Every input has
its CRCs fixed up before decoding (harness.fix_crcs), so mutations reach the codecs'
parsers instead of stopping at the checksums. An input whose decode raises anything but
BitstreamError, runs past -timeout seconds or grows the process past -rss_limit_mb is a
finding: libFuzzer writes it as crash-*/timeout-*/oom-* and stops; store
harness.fix_crcs() of it in tests/fuzz/crashers/ (the replay decodes the bytes as they
are) so that tests/test_fuzz.py replays it for ever.

Every 2,000 inputs one line reports the split: "fuzz: N inputs, M decoded, K rejected";
libFuzzer's own last line ("Done N runs in S second(s)") gives the total.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

with atheris.instrument_imports(include=["ncodec"]):
    import harness

    import ncodec.codec  # noqa: F401
    import ncodec.video  # noqa: F401

COUNTS = {"ok": 0, "rejected": 0}


def one_input(data: bytes) -> None:
    COUNTS[harness.check_bytes(harness.fix_crcs(data))] += 1
    total = sum(COUNTS.values())
    if total % 2000 == 0:
        print(
            f"fuzz: {total} inputs, {COUNTS['ok']} decoded, {COUNTS['rejected']} rejected", file=sys.stderr, flush=True
        )


def main() -> None:
    import torch

    torch.set_num_threads(1)  # many tiny decodes: threads only add overhead
    args = list(sys.argv)
    corpus = next((a for a in args[1:] if not a.startswith("-")), None)
    if corpus is None:
        corpus = tempfile.mkdtemp(prefix="ncodec-fuzz-corpus-")
        args.append(corpus)
    # fresh seeds beside the kept corpus (tests/fuzz/corpus), so a changed format is fuzzed too
    if not all((Path(corpus) / f"seed-{name}").exists() for name in harness.seed_names()):
        for name, path in harness.make_seeds(Path(tempfile.mkdtemp(prefix="ncodec-fuzz-seeds-"))).items():
            (Path(corpus) / f"seed-{name}").write_bytes(path.read_bytes())
    defaults = {"-rss_limit_mb": harness.RSS_LIMIT_MB, "-timeout": 30, "-max_len": 262144}
    args += [f"{flag}={value}" for flag, value in defaults.items() if not any(a.startswith(flag + "=") for a in args)]
    atheris.Setup(args, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
