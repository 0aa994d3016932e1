"""The neural core: nn.Modules, training recipes and shipped weights.

Knows nothing about files, PyAV or bitstreams.
"""


def _load_triton_interruptibly() -> None:
    """Load triton (where torch's build has it) before torch does.

    torch imports it lazily, at the first optimiser or torch.compile, inside
    ``try: import triton / except ImportError``; triton is a pybind11 module, and
    pybind11 turns a Ctrl-C or SIGTERM that lands while the module loads into an
    ImportError, which torch then drops: the job ran on (seen in the interrupt tests).
    Loaded here, such an interrupt is raised again as itself."""
    try:
        import triton  # noqa: F401
    except ImportError as e:
        if isinstance(e.__cause__, KeyboardInterrupt):
            raise e.__cause__ from None


_load_triton_interruptibly()
