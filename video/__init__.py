"""PyAV streams: reading, writing, audio passthrough, metrics, and the file-to-file
pipelines (encode, decode, upscale, dereflect)."""

from .pipeline import compare, decode_file, decode_frame, decode_frames, default_codec, describe, encode_file
from .reader import MediaInfo, MediaReader, probe
from .writer import VideoWriter

__all__ = [
    "MediaInfo",
    "MediaReader",
    "VideoWriter",
    "compare",
    "decode_file",
    "decode_frame",
    "decode_frames",
    "default_codec",
    "describe",
    "encode_file",
    "probe",
]
