"""Bitstreams: the container format, the codec registry and one module per codec.

Importing it gives a registry that encodes and decodes with every codec. It knows
nothing about media files or containers on disk (``ncodec.video`` feeds it frames); the
classical codecs use PyAV's codec contexts, frames in and packets out.
"""

# the codecs join the registry as they are imported; torch loads on a neural codec's first use
from . import classical, hnerv, mlic, stdo  # noqa: E402,F401
from .container import Colour, ContainerReader, ContainerWriter, StreamHeader
from .errors import BitstreamError, InputError, NcodecError, UsageError
from .registry import Codec, by_tag, get, names, register

__all__ = [
    "BitstreamError",
    "Codec",
    "Colour",
    "ContainerReader",
    "ContainerWriter",
    "InputError",
    "NcodecError",
    "StreamHeader",
    "UsageError",
    "by_tag",
    "get",
    "names",
    "register",
]
