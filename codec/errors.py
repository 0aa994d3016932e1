"""The error types a person sees. Each carries a one-line message saying what is wrong
and, where possible, what to do; the CLI prints it and exits non-zero."""


class NcodecError(Exception):
    """Base for every error ncodec reports to its user (no traceback needed)."""


class BitstreamError(NcodecError):
    """An ncodec bitstream is malformed, truncated, corrupted or exceeds a hard limit."""


class InputError(NcodecError):
    """An input file cannot be used (missing, unreadable, not media, no video stream...)."""


class UsageError(NcodecError):
    """The request itself is invalid (unknown codec, bad option, output equals input...)."""
