"""ncodec: neural media codec and video-processing toolkit.

Subpackages: ``ncodec.codec`` (bitstreams), ``ncodec.video`` (PyAV streams and
file pipelines), ``ncodec.models`` (neural networks), ``ncodec.app`` (CLI, web app).
"""

__version__ = "1.4.0"
