"""Bitstreams: the container format, the codec registry and one module per codec.

Knows nothing about PyAV or media files; ``ncodec.video`` feeds it frames.
"""

from .container import Colour, ContainerReader, ContainerWriter, StreamHeader
from .errors import BitstreamError, InputError, NcodecError, UsageError
from .registry import Codec, by_tag, get, names, register
from . import hnerv, image, stdo  # noqa: E402,F401  (register the neural codecs; torch loads on first use)

__all__ = [
    "BitstreamError", "Codec", "Colour", "ContainerReader", "ContainerWriter", "InputError",
    "NcodecError", "StreamHeader", "UsageError", "by_tag", "get", "names", "register",
]  # fmt: skip
