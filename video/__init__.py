"""PyAV streams: reading, writing, audio passthrough, colour, metrics, and the
file-to-file pipelines. Importing it registers the classical reference codecs."""

import os

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints a banner per encoder unless told errors only

from . import classical  # noqa: E402,F401  (registers x264, x265, av1)
from .pipeline import compare, decode_file, decode_frame, decode_frames, default_codec, describe, encode_file  # noqa: E402
from .reader import MediaInfo, MediaReader, probe  # noqa: E402
from .writer import VideoWriter  # noqa: E402

__all__ = ["MediaInfo", "MediaReader", "VideoWriter", "compare", "decode_file", "decode_frame", "decode_frames", "default_codec", "describe", "encode_file", "probe"]
