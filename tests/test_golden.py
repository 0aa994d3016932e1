"""Files decode forever, to the same pixels everywhere.

- Golden bitstreams (tests/golden/, added with tests/golden/add.py, never replaced): one
  for every codec and every shipped weights version, each with the SHA-256 of the
  pictures it decodes to. A change that alters any decoded pixel fails here.
- The same digests under other kernel paths of this machine: PyTorch's CPU capability
  (default = no vector ISA, AVX2, native), oneDNN's ISA cap, MKL's, 1 and 2 threads.
- Shipped weights are immutable: every file matches the SHA-256 that
  models/weights/index.json records, and every file is listed there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import decoded_digest
from ncodec.models import zoo

GOLDEN = Path(__file__).parent / "golden"
MANIFEST = json.loads((GOLDEN / "golden.json").read_text())

# kernel paths: environment variables each read when the process starts
KERNEL_PATHS = {
    "1 thread": {"NCODEC_TEST_THREADS": "1"},
    "ATen default (no vector ISA)": {"ATEN_CPU_CAPABILITY": "default"},
    "ATen AVX2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "oneDNN AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "oneDNN native": {"ONEDNN_MAX_CPU_ISA": "ALL"},
    "MKL AVX2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "default, 1 thread, oneDNN and MKL AVX2": {
        "ATEN_CPU_CAPABILITY": "default",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "NCODEC_TEST_THREADS": "1",
    },
}

DECODE_ALL = """
import json, os, sys
import torch
torch.set_num_threads(int(os.environ.get("NCODEC_TEST_THREADS", "2")))
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from helpers import decoded_digest
golden = Path(sys.argv[1]) / "golden"
manifest = json.loads((golden / "golden.json").read_text())
print(json.dumps({name: decoded_digest(golden / entry["file"])[0] for name, entry in manifest.items()}))
"""


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_golden_file_decodes_to_its_recorded_pixels(name):
    entry = MANIFEST[name]
    digest, pictures = decoded_digest(GOLDEN / entry["file"])
    assert pictures == entry["pictures"]
    assert digest == entry["decoded_sha256"], f"{name} no longer decodes to the pixels it did: {entry['made']}"


@pytest.mark.parametrize("path", sorted(KERNEL_PATHS))
def test_golden_pixels_do_not_depend_on_the_kernel_path(path):
    env = os.environ | KERNEL_PATHS[path]
    out = subprocess.run(
        [sys.executable, "-c", DECODE_ALL, str(Path(__file__).parent)], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    digests = json.loads(out.stdout)
    changed = [name for name, entry in MANIFEST.items() if digests[name] != entry["decoded_sha256"]]
    assert not changed, f"under {path} these decode to other pixels: {changed}"


def test_shipped_weights_are_listed_and_unchanged():
    listed = set()
    for name, versions in zoo.index().items():
        assert versions, name
        for v in versions:
            assert v.path.is_file() and zoo.card_path(v.path).is_file(), v.path
            assert zoo.file_fingerprint(v.path) == (v.fingerprint, v.sha256), f"{v.path.name} was changed in place"
            listed.add(v.path.name)
    on_disk = {p.name for p in zoo.WEIGHTS_DIR.glob("*.safetensors")}
    assert on_disk == listed, f"not in models/weights/index.json: {sorted(on_disk - listed)}"


def test_every_weights_version_a_bitstream_can_name_has_a_golden_file():
    named = {fp for entry in MANIFEST.values() for fp in entry["weights"].values()}
    for name in sorted(set(zoo.index()) - {"rrformer"}):  # the dereflection weights are in no bitstream
        for v in zoo.index()[name]:
            assert v.fingerprint in named, f"no golden file names {name} {v.fingerprint}"


def test_every_codec_has_a_golden_file():
    from ncodec.codec import by_tag, names

    covered = {by_tag(entry["codec"]).name for entry in MANIFEST.values()}
    assert set(names()) <= covered, sorted(set(names()) - covered)


def test_encoders_name_the_newest_weights_and_their_release():
    import ncodec
    from ncodec.codec import get

    p = get("stdo").params(64, 48, 25, {})
    assert p["fingerprint"] == zoo.index()["enhance_av1"][-1].fingerprint and p["release"] == ncodec.__version__
    assert get("mlic").params(64, 48, 25, {})["weights"] == zoo.index()["mlic"][-1].fingerprint


def test_golden_files_and_weights_are_not_ignored_by_git():
    """A golden file or weights file that .gitignore hides passes here and is missing from
    every clean clone (this happened once: *.bin hid the first golden files)."""
    root = Path(__file__).parent.parent
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    paths = [GOLDEN / e["file"] for e in MANIFEST.values()] + sorted(zoo.WEIGHTS_DIR.iterdir())
    out = subprocess.run(
        ["git", "check-ignore", "--no-index", *map(str, paths)], cwd=root, capture_output=True, text=True
    )
    assert out.returncode == 1 and not out.stdout, f"ignored by .gitignore: {out.stdout.split()}"
