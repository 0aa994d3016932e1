"""The neural core: nn.Modules, training recipes and shipped weights.

Knows nothing about files, PyAV or bitstreams.
"""
