"""Add a golden bitstream: ``python tests/golden/add.py NAME INPUT [ncodec encode options]``
codes INPUT with ``ncodec encode`` into tests/golden/NAME.bin and records in golden.json
the SHA-256 of its decoded pictures, the command and what it guards (codec, release,
weights). It never replaces a golden file: a change that alters one must add a new one.

``--bits FILE`` instead records an existing bitstream (one written by an older release).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from helpers import decoded_digest  # noqa: E402
from ncodec.codec import ContainerReader  # noqa: E402


def main(argv: list[str]) -> None:
    name, source, *options = argv
    out = HERE / f"{name}.bin"
    manifest = json.loads((HERE / "golden.json").read_text()) if (HERE / "golden.json").exists() else {}
    if out.exists() or name in manifest:
        sys.exit(f"{out.name} exists: golden files are never replaced")
    if source == "--bits":
        shutil.copyfile(options[0], out)
        made = f"copied from {options[0]}, " + " ".join(options[1:])
    else:
        command = ["ncodec", "encode", source, str(out), *options]
        subprocess.run(command, check=True)
        made = shlex.join(["ncodec", "encode", source, f"tests/golden/{out.name}", *options])
    digest, pictures = decoded_digest(out)
    with ContainerReader(out) as r:
        params = r.header.params
        codec = r.header.codec
    manifest[name] = {
        "file": out.name,
        "codec": codec,
        "bytes": out.stat().st_size,
        "pictures": pictures,
        "decoded_sha256": digest,
        "made": made,
        "release": params.get("release"),
        "weights": {  # the scale-1 network's and each reduced size's (x2_weights, x2_fingerprint, ...)
            k: v for k, v in params.items() if k in ("weights", "fingerprint", "generic") or re.fullmatch(r"x\d_\w+", k)
        },
    }
    (HERE / "golden.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(name, manifest[name])


if __name__ == "__main__":
    main(sys.argv[1:])
